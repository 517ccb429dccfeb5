// Package reportrequest asks Klavi for a link's product reports once a
// consent is AUTHORISED, and purges a link's data when its user asks Klavi
// to delete it (LGPD). It is the logic of the report-request function:
//
//   - HandleStream consumes the links table's DynamoDB stream;
//   - HandleHTTP serves POST /links/{linkId}/reports;
//   - RequestForConsent makes the automatic request for one consent, for
//     the stream and for the reconciliation sweep.
//
// # Stream
//
// A record matters only when its new image is a consent item that just
// became AUTHORISED (the old image is absent or not AUTHORISED), or that
// just became DELETED_BY_USER. Everything else (REMOVE records, link,
// request, report and event items, the handler's own lease and request
// writes on an already AUTHORISED consent) changes nothing. The table's
// stream must carry NEW_AND_OLD_IMAGES; with new images only every write to
// an authorised consent looks like an authorisation, which the claim below
// makes harmless but costly.
//
// A record that fails is reported in BatchItemFailures by its sequence
// number, so one bad record does not fail the batch. Lambda resumes a
// stream from the lowest failed sequence number, so later records are sent
// again in any case; the handler also reports as failed, without acting on
// them, the later records of the same link, so that a link's changes are
// never applied out of order (an authorisation retried after the purge
// that followed it, for example). Once less of the invocation is left than
// one record may need (Config.MinCallTime plus Config.RecordReserve), or
// its context is done, the remaining records are reported as failed
// without being started, and counted in StreamRecordsDeferred: they come
// back in the retry of the batch, which starts after the records that
// succeeded.
//
// # Exactly one automatic request per consent
//
// RequestForConsent first claims the consent in the store with a lease (one
// conditional write): the claim fails with linkstore.ErrDuplicate when the
// consent already has its request, and with linkstore.ErrLeaseHeld while
// another caller's lease runs. Only the claim holder calls Klavi and then
// records the request (which sets the consent's request id and ends the
// lease in one transaction). So a batch delivered twice, or two invocations
// racing on the same record, call Klavi once.
//
// A held lease is success for the stream: the holder finishes, and if it
// fails or crashes, the consent is left without a request id and the
// reconciliation sweep (trigger "reconcile") claims it again once the lease
// has run out. The same holds for a retried stream record: its retry most
// likely finds the lease of its own failed attempt still running and ends
// there. A failure is still reported for the attempt that failed with a
// retryable error, so that it shows in the StreamRecordsFailed metric and
// a retry that comes after the lease does make the request.
//
// The Klavi call is bounded to three quarters of the lease, so that the
// request is recorded before the lease runs out and nobody else can claim
// the consent while a call is in flight. It is also bounded to end
// Config.RecordReserve (default 3 s) before the invocation's deadline, so
// that a request Klavi accepted is recorded before Lambda ends the
// invocation; with less than Config.MinCallTime (default 2 s) left for the
// call, none is made and RequestForConsent returns an error matching
// ErrDeadlineNear. That is checked before the claim, so that no lease is
// taken, and again just before the call: when the store took the time in
// between, the consent stays claimed and its request is made once the lease
// has run out, as after any failure. The recording of every accepted
// request, manual ones included, is detached from the invocation's context
// and bounded by Config.RecordTimeout (default 5 s); a transient store
// failure is tried twice more, shortly after (a repeat of a write that did
// land is a duplicate, which is success). The window left is a crash or a
// store outage between Klavi's answer and the write.
//
// Klavi documents no idempotency key: a call that failed after Klavi acted
// on it (a 500, a connection lost after the request was written) can lead
// to a second request when it is made again. The Klavi client retries only what provably had no effect; this
// package never repeats a call by itself.
//
// # Failures
//
// RequestForConsent returns no error and no request id when there is
// nothing to do: the request was made before, the consent is no longer
// AUTHORISED in the store, or the consent or its link is gone. Its errors
// match ErrPermanent when trying again cannot help until something else
// changes: Klavi no longer accepts the consent (4001, which records
// nothing), Klavi rejects what is sent (products, callback URL, another
// 4xx), the link has no known tax id type, or no report webhook URL or
// institution is known. The stream logs them and moves on; the
// reconciliation sweep may try them again later. ErrInProgress means
// another caller holds the claim. ErrDeadlineNear means too little of the
// invocation was left to call Klavi (see above); it is temporary, counted
// under the reason deadline_near. Every other error (Klavi 408, 429 and
// 5xx, a 401 that survived the client's token refresh, network, token
// source, store) is temporary. Each outcome is counted in the
// ReportRequestsSent{Trigger}, ReportRequestsSkipped{Reason} or
// ReportRequestsFailed{Reason} metric.
//
// When Klavi answers 2xx without a requestId (or with a body that cannot be
// read), the request did take effect: it is recorded under a generated id
// starting with "unidentified-", so that it is not made a second time.
//
// # Manual requests
//
// POST /links/{linkId}/reports makes one request per AUTHORISED consent of
// the link, with trigger "manual". These are explicit user actions and are
// not deduplicated by the claim; each creates a new request record and
// leaves the consent's automatic request untouched. The optional body
// {"products":[...]} (at most 30 names matching ^[a-z0-9_]+$, or "all"
// alone; repeats dropped) replaces the configured products.
//
// Answers: 202 {"requests":[{"requestId","consentId","institutionCode",
// "products"}]}, plus "failures" (consentId, institutionCode, error) when
// some consents failed and others did not; a request Klavi accepted is
// listed even if recording it failed, since asking again would duplicate
// it. 404 link_not_found, 410 link_deleted for a purged link (the id is
// right, the data is gone), 409 no_authorised_consent, 409 tax_id_unknown;
// 400/413/415 for the body as in the link routes. When every request
// failed, the answer is that of a temporary failure if there was one
// (503 klavi_busy or klavi_unavailable, 502 klavi_error), else of the
// first: 409 consent_not_authorised (Klavi 4001), 400
// klavi_rejected_products (4002, 4005), 502 klavi_error.
//
// # LGPD purge
//
// A consent that became DELETED_BY_USER purges its whole link: the stored
// reports (every object under reportstore.LinkPrefix) are deleted first,
// then the store turns the link into a tombstone, then the prefix is swept
// once more for a report that landed in between. A crash between the steps
// fails the record, and the stream runs the purge again; every step is
// idempotent, and purging an unknown link is a no-op. Logs carry the link
// id and counts only.
//
// Tax ids never appear in logs, errors or responses of this package.
package reportrequest
