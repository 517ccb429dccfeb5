// Package klavi is a client for the Klavi Open Finance data API (/data/v1):
// access tokens, links, report requests and consents.
//
// # Authentication
//
// [Client.Auth] exchanges the application's accessKey/secretKey for an access
// token and sends no Authorization header. [Client.Refresh] exchanges a
// still-valid token for a new one. Every other call sends
// "Authorization: Bearer <token>" with a token taken from the [TokenSource]
// given to [WithTokenSource]; the client never caches tokens itself, so one
// shared source (for example one backed by Secrets Manager) serves every
// instance.
//
// When Klavi answers a Bearer call with 401, the client calls
// [TokenSource.Invalidate] with the token it sent, asks the source for a
// fresh token and repeats the call exactly once. A second 401 is returned as
// an [*APIError] matching [ErrUnauthorized]. Auth and Refresh never do this:
// their 401 means the credentials or the token passed in are wrong.
//
// # Retries and idempotency
//
// Klavi documents no idempotency key for the data API, and repeating
// POST /data/v1/links or a report request creates a second link or a second
// requestId. The client therefore splits calls in two groups.
//
// Calls that can be repeated without a visible effect — Auth, Refresh,
// ListConsents, GetConsent and RevokeConsent — are retried on 429, 502, 503,
// 504 and on network errors (a timeout included).
//
// CreateLink, RequestInstitutionData and RequestUserData are retried only
// when the request provably did not take effect: on 429 (Klavi refused the
// request before acting on it) and on network errors raised before the
// request reached any connection (DNS failure, connection refused, TLS
// handshake failure). The client learns this through net/http/httptrace: once
// a connection was handed to the request (GotConn) or the request was
// written (WroteRequest), a later failure is ambiguous and is returned, not
// retried. A transport that does not report httptrace events is treated the
// same way unless its error is a dial error.
//
// No call is retried on 500 or on any other 4xx: a 500 may come after the
// request took effect, and a 4xx will not change by repeating it.
//
// Waits use exponential backoff with full jitter: before retry n the client
// sleeps a random duration in [0, min(MaxDelay, BaseDelay*2^(n-1))]. A
// Retry-After header (delay in seconds or an HTTP date) replaces the computed
// wait when it is at most MaxDelay; a longer Retry-After ends the retries at
// once and the caller gets the 429/503 as an [*APIError] with RetryAfter set,
// because a Lambda invocation should not idle that long and a retry sooner
// than asked would be refused again. The context deadline bounds everything:
// the client never starts a wait that would end after the deadline, and
// returns the last error instead. [RetryPolicy.MaxAttempts] counts every
// attempt including the first; the one extra attempt after a 401 does not
// count against it.
//
// # Errors
//
// A non-2xx answer becomes an [*APIError]; use [errors.As] to read it, or
// [errors.Is] with the sentinels ([ErrBadRequest], [ErrUnauthorized],
// [ErrBusiness], [ErrConsentLimit], ...) to branch on the outcome. Klavi's
// business errors come as HTTP 416 with a numeric statusCode (4001..4009) in
// the body. A 2xx whose body cannot be decoded matches [ErrMalformedResponse].
// Invalid arguments are refused before any request with an error matching
// [ErrInvalidRequest].
//
// Errors never carry the request body, the access token, the credentials,
// the request URL (ListConsents puts tax ids in its query string) or the
// response body. Klavi's own error message is kept, because it is the most
// useful part, but only after removing anything that looks like a CPF, CNPJ,
// phone number or token and capping its length.
//
// # Lenient decoding
//
// Klavi's documentation disagrees with itself in places, so responses are
// decoded leniently: expireIn is accepted as a number, a numeric string or a
// float; the consent list is accepted as a bare array or wrapped in
// {"consents": [...]} or {"data": [...]}, and a single consent bare or
// wrapped in {"consent": {...}} or {"data": {...}}; consent timestamps that
// do not parse are left zero instead of failing the whole response; consent
// statuses are upper-cased.
package klavi
