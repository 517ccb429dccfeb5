// Package chaos runs many links through the whole backend while the Klavi
// simulator misbehaves on purpose (klavisim.Chaos): every webhook delivered
// twice at once, the events of a link held back and shuffled, first
// attempts dropped, some deliveries never sent at all, some product
// reports failing at Klavi, slow data API answers and a share of 503s. It
// shows that nothing is lost: every authorised consent ends with each of
// its reports stored exactly once, byte for byte as Klavi sent it, after
// exactly one report request at Klavi, and every rejected consent ends
// REJECTED.
//
// The backend is put together from the same handlers as the deployed
// functions and the local server (pkg/linkapi, pkg/eventwebhook,
// pkg/reportwebhook, pkg/reports, pkg/reportstream, pkg/reconcile), over the in-memory
// link store with its change feed standing in for the table's stream and
// the disk report store, each route served over HTTP as API Gateway would.
// The test owns the feed and the clock: the feed lags behind the webhooks
// while consents are given, as a stream can, and the reconciliation sweep
// runs on a clock moved past leases and grace periods instead of waiting
// for them.
//
//	go test -race ./test/chaos/
package chaos
