// Package klavisim simulates the Klavi data API (/data/v1) as an
// http.Handler, for tests (httptest.NewServer(sim)) and, later, a local
// sandbox.
//
// It is written from the integration reference, not from our client, so that
// a client mistake (wrong field casing, masked tax id, missing products, a
// wrong path) fails here the way it would most likely fail at Klavi instead of
// being mirrored. It is deliberately stricter than Klavi is known to be where
// our backend must never send something: unknown or mis-cased JSON fields,
// null values and empty strings for optional fields are rejected with 400
// instead of being silently ignored.
//
// # Endpoints
//
//	POST   /data/v1/auth                        {accessKey, secretKey} -> {accessToken, expireIn}
//	GET    /data/v1/refresh                     Bearer -> {accessToken, expireIn}
//	POST   /data/v1/links                       -> {linkId, linkURL, linkToken, expireIn}
//	POST   /data/v1/personal/institution-data   -> {requestId, message}
//	POST   /data/v1/business/institution-data
//	POST   /data/v1/personal/user-data
//	POST   /data/v1/business/user-data
//	GET    /data/v1/consents?personalTaxId=|businessTaxId=[&linkId=]
//	GET    /data/v1/consents/{consentId}
//	DELETE /data/v1/consents/{consentId}/revoke -> {message: "ok"}
//
// Errors use Klavi's shape {"statusCode", "error", "message"}; business
// errors answer HTTP 416 with the business code (4001, 4002, 4005, 4006) in
// statusCode. Messages never carry tax ids, tokens or keys.
//
// # State
//
// Links, consents and report requests live in memory (state.go). Consents
// are created by AuthoriseConsent (and, later, by the hosted consent page),
// because the real flow authorises them at the bank, not through the API.
//
// # Failure injection
//
// FailNext arms a Rule that applies to the next matching requests before
// routing and authentication, like a failing proxy in front of Klavi would:
// an error status (with Retry-After), a garbage body, a slow answer that
// gives up when the client cancels, or a connection closed without answer.
//
// # Extension points
//
// Every state change produces an Event named after Klavi's webhook events
// (link_created, consent_authorised, product_request_received, ...). Events
// go to Options.OnEvent and to internal observers registered in New; webhook
// delivery and report generation hook in there without touching the API
// code. The router (api.go) is a table, so the hosted consent page
// (GET /link/{linkId}) and the linkToken endpoints are further rows.
package klavisim
