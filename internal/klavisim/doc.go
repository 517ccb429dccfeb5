// Package klavisim simulates Klavi as an http.Handler, for tests
// (httptest.NewServer(sim)) and as a local sandbox: the data API
// (/data/v1), the hosted consent page, and the signed event and report
// webhooks Klavi sends to a partner.
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
// are created by the hosted consent page, by AuthoriseConsent and
// RejectConsent, because the real flow authorises them at the bank, not
// through the API.
//
// # Consent page
//
// The linkURL that POST /links returns opens a self-contained HTML page
// (consent_page.go):
//
//	GET  /link/{linkId}?v=<linkToken>   institutions (or the pre-selected one), Autorizar / Recusar
//	POST /link/{linkId}/decision        form: v, institutionCode, decision=authorise|reject
//
// A decision moves the consent to AUTHORISED or REJECTED, then answers 303
// to the link's redirectURL with link_id and external_info (and error,
// error_description on rejection), or renders a result page when the link
// has none. Elements carry stable ids and data attributes (#authorise,
// #reject, [data-institution="260"], #result[data-status]) for browser
// tests. A bad token, an unknown, expired or tax-id-less link gets an
// error page with a 4xx status.
//
// # Webhooks
//
// With Options.EventWebhookURL every event is POSTed as Klavi sends it: a
// one-element JSON array of the envelope, signed with X-Klavi-Signature
// (HMAC-SHA256 of the body, keyed with SecretKey) and X-Klavi-Timestamp.
// With Options.GenerateReports an accepted report request is turned, in
// the background, into one signed common-format report per product
// (reports.go), routed by productsCallbackURL, with product_generated_*
// events. Deliveries follow Klavi's policy (10 s per attempt, 5 retries,
// 250 ms exponential backoff, 3 redirects, 2xx is success; see
// DeliveryPolicy) and every attempt is recorded (Deliveries). Events of
// one link are delivered in order unless chaos says otherwise.
//
// Wait blocks until the background work is done; Close cancels it. A
// simulator with neither option set starts no background work.
//
// # Failure injection
//
// FailNext arms a Rule that applies to the next matching requests before
// routing and authentication, like a failing proxy in front of Klavi would:
// an error status (with Retry-After), a garbage body, a slow answer that
// gives up when the client cancels, or a connection closed without answer.
//
// Chaos (chaos.go) misbehaves continuously and reproducibly for a seed:
// duplicated, reordered, dropped webhook deliveries, failed reports, and a
// slow or failing data API.
//
// # Determinism
//
// Report data and chaos decisions follow Options.Seed. A non-zero seed
// also fixes the ids in webhook bodies, so two simulators fed the same
// calls in the same order (waiting for background work between steps)
// send the same bytes. Link tokens are always random.
//
// # Extension points
//
// Every state change produces an Event named after Klavi's webhook events
// (link_created, consent_authorised, product_request_received, ...). Events
// go to Options.OnEvent and to internal observers registered in New (webhook
// delivery and report generation hook in there without touching the API
// code). The router (api.go) is a table; the consent page adds its rows.
package klavisim
