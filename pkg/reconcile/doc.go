// Package reconcile is the scheduled sweep that catches up on what Klavi's
// webhooks failed to tell us. Klavi retries a webhook for seconds, not days
// (design §4): an event lost during a deploy or an outage is never sent
// again, so a link can sit in the store as CREATED although its user
// authorised the consent at the bank, or as AUTHORISED with no report
// request and no report. Klavi's GET /data/v1/consents is the truth the
// sweep repairs the store from.
//
// # What is due
//
// The store keeps one attention entry per link (linkstore.ListAttention):
// AWAITING_CONSENT, due at the link's expiry, AWAITING_REPORTS, due a
// grace period after a consent was authorised, PENDING_WORK, due when work
// failed, and DELETION_REQUESTED, due when the fintech asked for the link's
// deletion. A run reads every kind due before now, earliest first, and
// takes up at most Config.Limit links in all, so that no kind can crowd out
// the others for long. It works on
// them one at a time and stops starting new ones Config.Reserve before the
// invocation's deadline; what is left stays due for the next run.
//
// # One link
//
//  1. The link is read. A link whose deletion the fintech asked for and
//     that is not purged yet (linkstore.Link.DeletionRequested: a Klavi
//     failure on a consent stopped DELETE /links/{linkId} before the
//     purge) is no live link, whatever entry brought it here: its consents
//     are not looked up and no report is requested for it. Config.Deleter
//     (revocation.Service, as the route uses it) revokes its authorised
//     consents again and then purges it; until that succeeds the link
//     stays due and is never given up on (deletion_failed). A purge marked
//     pending is redone the same way, through Config.Purger. A purged
//     link needs nothing: its attention is cleared. So does a link that
//     received a report, once every AUTHORISED
//     consent has its automatic request (any consent, with
//     Config.AutoRequest off): one consent's report says nothing about
//     another whose request failed and was left to the sweep, which goes on
//     to step 5 for it.
//  2. An authorised consent or a report request younger than
//     Config.ReconcileAfter defers the link to a later run: the stream or
//     Klavi may still be at work, and nothing is asked of Klavi yet.
//  3. A link without a known tax id cannot be looked up (Klavi lists
//     consents by CPF or CNPJ only) and no report could be requested for it
//     either: counted as no_tax_id, attention cleared.
//  4. Klavi is asked for the consents of the link's tax id and link id.
//     Consents of other links are ignored (the linkId filter is not part of
//     Klavi's documented contract, so it is applied here too). Each consent
//     whose status differs from the store's is applied with
//     linkstore.ApplyEvent as a synthetic event with the deterministic id
//     "reconcile:<consentId>:<status>:<updatedAt>", event name "reconcile"
//     and Klavi's updatedAt as event time: the store's eventTime guard
//     keeps a newer webhook from being overwritten by an older Klavi state,
//     and a repeated sweep is a duplicate that changes nothing. An
//     authorisation applied this way also reaches the report-request
//     function through the table's stream.
//  5. With Config.AutoRequest, every AUTHORISED consent without a request
//     gets one through RequestForConsent with trigger "reconcile". The
//     request is made here rather than left to the stream, so that a link
//     whose authorisation was lost gets its reports in this run; the claim
//     on the consent makes sure Klavi is asked once however the sweep and
//     the stream interleave.
//  6. The attention is then kept, to look at the link again in a later
//     run, when a request was just made (or turned out to be made, or is
//     in flight elsewhere), when a request failed in a way that may pass,
//     or when a consent is still on its way (STARTED, AWAITING_*).
//     Otherwise it is cleared: the link ended without an authorised
//     consent (its status, such as EXPIRED or REJECTED, already tells),
//     Klavi refused the request for good (request_rejected), reports came,
//     or the reports never came (reports_missing).
//
// Clearing is conditional on the due time the run listed: an authorisation
// applied while the run worked on the link (by the event webhook, or by
// step 4) moves the due time, and the entry is then left for that later
// look (attention_rearmed).
//
// A kept link keeps its due time (the store offers no way to move it
// later), so it is read again by every run until ReconcileAfter has passed
// since its request; that costs one read of the link and no Klavi call.
//
// # No second request
//
// A consent whose request was made but whose reports never arrived is not
// asked for again. Klavi documents no idempotency key, so every further
// request is a further request at Klavi (and possibly a further charge),
// and the store keeps one automatic request per consent on purpose: its
// claim refuses a second one. The link is counted as reports_missing, with
// a warning naming it, for an operator to look at (a manual
// POST /links/{linkId}/reports remains available), and its attention is
// cleared so that it does not come back every run.
//
// # Failures
//
// A failure on one link is logged and counted, keeps that link's attention
// (it is due again next run) and does not stop the others. A link still
// kept Config.GiveUpAfter past its due time (failing all along, or with a
// consent that never finishes) has its attention cleared (gave_up), so that
// links that cannot be helped never fill a run's Limit for good. Run returns an error only when due links
// existed and none could be reconciled (the store or Klavi is down, or the
// deadline came first), so that the function's Errors alarm fires.
//
// # Metrics and logs
//
// Every action is one ReconcileActions count with an Action dimension (the
// Action constants) and one log line carrying the link id; a run ends with
// ReconcileLinks counts by Outcome and one summary line. Tax ids never
// appear in logs, metrics or errors.
package reconcile
