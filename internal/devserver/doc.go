// Package devserver runs the whole backend in one process for local
// development (`make run`): every function's routes on one HTTP server,
// through the same handlers the Lambda functions run, with embedded
// stand-ins for what a deployment gets from AWS and Klavi, and a demo page
// at / that does what a fintech's frontend does.
//
// # Same code paths as the deployment
//
// Each route turns the HTTP request into the API Gateway HTTP API payload
// 2.0 event (route key, path parameters, lower-cased headers, base64 body
// when it is not UTF-8, 413 above Lambda's 6 MB) and invokes the handler
// with a Lambda context carrying a request id, so log lines show requestId
// as in CloudWatch; the handler's response goes back as API Gateway would
// send it.
//
//	POST /links, GET /links/{linkId},
//	POST /links/{linkId}/reports,
//	GET /links/{linkId}/reports/{productReportId},
//	POST /links/{linkId}/revoke,
//	DELETE /links/{linkId}             pkg/linkapi          (links-api, the links API)
//	POST /webhooks/klavi/events        pkg/eventwebhook     (event-webhook)
//	POST /webhooks/klavi/reports       pkg/reportwebhook    (report-webhook)
//
// The in-memory link store's change feed stands in for the table's DynamoDB
// stream: each write of a consent, link, report request or report item
// becomes the stream record DynamoDB would carry (linkstoretest.StreamRecord and
// its siblings), and goes, filtered as each of the template's event source
// mappings filters and in batches with its retry rules, to the two
// functions on the stream: report-request (pkg/reportstream) and
// integration-events (pkg/integrationevents). The publisher puts its events
// into an in-process bus that keeps the last DefaultKeptEvents of them for
// GET /dev/events and the demo page, or, with EVENT_BUS_NAME, in front of
// that EventBridge bus. The token is renewed on a ticker, as the
// token-refresh schedule does.
//
// # Defaults and switches
//
// The zero Config runs everything embedded; FromEnv reads the functions'
// environment and switches parts to the real thing:
//
//	part          default                                  switched by
//	Klavi         simulator (internal/klavisim) at /klavi        KLAVI_BASE_URL (+ KLAVI_ACCESS_KEY/KLAVI_SECRET_KEY)
//	link store    in memory, with the change feed          LINKS_TABLE (DynamoDB; AWS_* settings)
//	reports       files under .local/reports (REPORTS_DIR) REPORTS_BUCKET (S3)
//	Klavi token   in memory from /auth, every 20 min        KLAVI_CREDENTIALS_SECRET + KLAVI_TOKEN_SECRET
//	event bus     in process (GET /dev/events)              EVENT_BUS_NAME (EventBridge, also listed)
//
// AWS parts use the standard SDK settings (AWS_REGION, AWS_ENDPOINT_URL for
// moto, credentials); against an emulator the table and bucket are created
// when missing. A DynamoDB table's stream cannot be read here, so with
// LINKS_TABLE the feed is replaced by a sweep that makes the automatic
// report request of authorised consents through the reconciliation path;
// LGPD purges then do not run, and no integration events are published. With a real Klavi, its webhooks must reach
// this server through a public URL (a tunnel) and REPORT_WEBHOOK_URL.
//
// # Local-only routes
//
//	GET /                              the demo page (embedded, no external assets)
//	GET /dev/links/{linkId}/reports    the link's reports with their storage keys
//	GET /dev/reports/{objectKey}       a stored report, byte for byte
//	GET /dev/info                      how the server is put together
//	GET /dev/events                    the integration events published, ?linkId= for one link
//	GET /dev/download/{objectKey}      a report download URL's bytes (disk store only; signed,
//	                                   expiring: the stand-in of S3's presigned GET)
//	/klavi/..., /link/...              the simulator's API and consent pages
//
// None of them exists in a deployment, and none needs a JWT: the deployed
// frontend routes sit behind API Gateway's JWT authorizer, which is not
// reproduced here. The /links routes get the identity such an authorizer
// would give, the subject LocalCaller, since the links API refuses a
// request without one. Keep the server on a loopback address.
package devserver
