// Package load replays a realistic burst of traffic through the whole
// backend and checks that, afterwards, the store and the bucket hold exactly
// what they should; it measures throughput and latency per route on the way.
//
// The backend is the one `make run` serves (internal/devserver), configured from
// the functions' environment as a deployment is: the links table in DynamoDB,
// reports in S3 and the Klavi token source over Secrets Manager, all in the
// AWS emulator (internal/awstest), with automatic report requests off
// (AUTO_REQUEST_REPORTS=false: Klavi pushes the reports). Klavi is a
// simulator (internal/klavisim) reached over HTTP like an external Klavi, with no
// webhooks of its own: the test itself plays Klavi's side. Everything
// listens on 127.0.0.1, and the load client refuses to dial anything else.
//
// One burst:
//
//  1. POST /links for every link (16 at a time);
//  2. every link's signed event webhooks, as Klavi sends them (a
//     one-element JSON array): link_created, then consent_authorised (9 in
//     10 links) or consent_rejected, and for authorised links
//     product_request_received and one product_generated_success per
//     product; each delivered 3 times, all links' deliveries shuffled
//     together (fixed seed), 16 at a time;
//  3. each authorised link's product reports (1 to 3 products, 8 to 32 KB
//     each), signed, each delivered 3 times, shuffled, 16 at a time;
//  4. GET /links/{linkId} for every link.
//
// Then it checks: every answer was the route's success status (none
// other), the server logged no warning or error, each event was applied
// once and deduplicated twice, every link view is exactly what was sent
// (status REPORTS_RECEIVED with each delivered report listed once, or
// REJECTED), the table holds exactly one link, one consent and the
// delivered reports per link plus one marker per event change, and the
// bucket holds exactly one object per delivered report, byte for byte, and
// nothing else.
//
// Every HTTP call has a timeout and the whole burst a hard deadline; it
// stops by itself. It prints, per route, the count, the throughput over the
// route's phase and the latency percentiles measured at the client.
//
//	go test ./test/load/                                     # short burst (60 links), as CI runs it
//	LOAD_LINKS=500 go test -run TestLoadBurst -v ./test/load/ # the full burst, with the figures table
//	go test -run='^$' -bench=LoadBurst ./test/load/           # 500 links, req/s and ms per route as metrics
//
// The emulator is moto as internal/awstest runs it, with one difference: in
// moto 5, TransactWriteItems copies the whole table and Query sorts the
// whole table, on every call, so each call costs more with every item the
// table holds, which DynamoDB's do not. TestMain puts testdata/emulator on
// the emulator's PYTHONPATH, whose sitecustomize.py makes both calls work on
// the items they name (the partition, for Query) with the same outcomes.
// Without it the checks are the same but a burst slows down quadratically:
// 60 links did not finish in 2 minutes (they take 11 s with it), and 500
// links would take hours.
//
// The server, the emulator and the load generator share the machine's
// cores, so the figures are those of the whole set-up on that machine, not
// of the backend alone. The emulator serves one request at a time (see
// internal/awstest) and is what bounds them: the latencies are mostly waiting
// behind the other 15 requests in flight for its turn.
package load
