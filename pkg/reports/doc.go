// Package reports is the report service: it asks Klavi for a link's
// product reports once a consent is AUTHORISED, or when a caller asks, and
// purges a link's data when its user asks Klavi to delete it (LGPD). Its
// callers are thin:
//
//   - the report-request function (package reportstream) calls
//     RequestForConsent when the links table's stream shows a consent
//     that became AUTHORISED, and Purge when one became DELETED_BY_USER;
//   - the reconciliation sweep (package reconcile) calls RequestForConsent
//     for a consent whose request went missing;
//   - POST /links/{linkId}/reports (package linkapi) calls RequestForLink.
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
// CallBudget tells a caller with more requests to make (a stream batch, a
// sweep) whether there is time left in the invocation for one more.
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
// RequestForLink makes one request per AUTHORISED consent of a link, with
// trigger "manual". These are explicit user actions and are not
// deduplicated by the claim; each creates a new request record and leaves
// the consent's automatic request untouched. A request Klavi accepted is
// returned with its id even if recording it failed, since asking again
// would duplicate it.
//
// # LGPD purge
//
// Purge deletes a whole link: the stored reports (every object under
// reportstore.LinkPrefix and reportstore.UnmatchedPrefix) are deleted
// first, then the store turns the link into a tombstone, then the prefixes
// are swept once more for a report that landed in between. A crash between
// the steps fails the call, and the caller runs the purge again; every
// step is idempotent, and purging an unknown link is a no-op. Logs carry the link
// id and counts only.
//
// Tax ids never appear in logs, errors or responses of this package.
package reports
