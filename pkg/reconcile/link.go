package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// EventName is the event name of the synthetic events through which the
// sweep applies Klavi's consent states.
const EventName = "reconcile"

// outcome is how the handling of one link ended.
type outcome int

const (
	done        outcome = iota // handled; its attention is as it should be
	failed                     // an error; its attention is kept (unless given up)
	interrupted                // the run's deadline came; left for the next run
)

// sweep is the state of one run.
type sweep struct {
	*Reconciler
	now time.Time
	sum *Summary
}

// link reconciles one due link; see the package documentation for the
// steps.
func (w *sweep) link(ctx context.Context, att linkstore.Attention) (outcome, error) {
	id := att.LinkID
	l, err := w.store.GetLink(ctx, id)
	switch {
	case errors.Is(err, linkstore.ErrNotFound):
		w.act(ctx, ActionLinkMissing, id, "due link not found")
		return done, nil
	case err != nil:
		return w.fail(ctx, att, ActionStoreFailed, "reading the link failed", err)
	case l.DeletionRequested():
		// Whatever kind of entry brought the link here (a later
		// authorisation or a purge mark replaces DELETION_REQUESTED): the
		// fintech asked for its erasure, and nothing else is done for it.
		return w.finishDeletion(ctx, att, l)
	case l.Pending.Work == linkstore.WorkPurge:
		// Before anything else: a link whose purge is pending must get no
		// report request, and its purge may have stopped half-way.
		return w.purge(ctx, att)
	case !l.PurgedAt.IsZero():
		return w.clear(ctx, att, "link purged")
	case len(l.Reports) > 0 && !w.lacksRequest(l):
		return w.clear(ctx, att, "reports received")
	}
	if ready := w.readyAt(l); w.now.Before(ready) {
		w.act(ctx, ActionDeferred, id, "too early to act; looked at again in a later run", "readyAt", ready)
		return done, nil
	}
	filter, ok := consentFilter(l)
	if !ok {
		w.act(ctx, ActionNoTaxID, id, "link has no tax id, so Klavi cannot be asked for its consents")
		return w.clear(ctx, att, "no tax id")
	}
	consents, err := w.klavi.ListConsents(ctx, filter)
	if err != nil {
		return w.fail(ctx, att, ActionKlaviFailed, "asking Klavi for the consents failed", err)
	}
	changed, err := w.apply(ctx, l, consents)
	if err != nil {
		return w.fail(ctx, att, ActionStoreFailed, "fixing a consent failed", err)
	}
	if changed {
		if l, err = w.store.GetLink(ctx, id); err != nil {
			return w.fail(ctx, att, ActionStoreFailed, "reading the fixed link failed", err)
		}
	}
	return w.settle(ctx, att, l)
}

// lacksRequest reports whether an authorised consent of l still waits for
// the automatic request the sweep would make. A report of another consent
// does not settle it: its own request may have failed and been left to the
// sweep. Without AutoRequest the sweep requests nothing, so nothing waits.
func (w *sweep) lacksRequest(l *linkstore.Link) bool {
	if !w.cfg.AutoRequest {
		return false
	}
	for _, c := range l.Consents {
		if c.Status == klavi.ConsentAuthorised && c.RequestID == "" {
			return true
		}
	}
	return false
}

// readyAt is when the sweep may act on l: ReconcileAfter after its latest
// authorisation or report request, zero when it has neither.
func (w *sweep) readyAt(l *linkstore.Link) time.Time {
	var last time.Time
	for _, c := range l.Consents {
		if c.Status == klavi.ConsentAuthorised && c.UpdatedAt.After(last) {
			last = c.UpdatedAt
		}
	}
	for _, r := range l.ReportRequests {
		if r.RequestedAt.After(last) {
			last = r.RequestedAt
		}
	}
	if last.IsZero() {
		return time.Time{}
	}
	return last.Add(w.cfg.ReconcileAfter)
}

// consentFilter selects the link's consents at Klavi by its tax id; false
// when the link has none Klavi could be asked with.
func consentFilter(l *linkstore.Link) (klavi.ConsentFilter, bool) {
	if l.TaxID == "" {
		return klavi.ConsentFilter{}, false
	}
	switch l.TaxIDType {
	case linkstore.TaxIDPersonal:
		return klavi.ConsentFilter{PersonalTaxID: l.TaxID, LinkID: l.LinkID}, true
	case linkstore.TaxIDBusiness:
		return klavi.ConsentFilter{BusinessTaxID: l.TaxID, LinkID: l.LinkID}, true
	default:
		return klavi.ConsentFilter{}, false
	}
}

// apply writes Klavi's state of each of the link's consents that the store
// holds differently, and reports whether any consent changed.
func (w *sweep) apply(ctx context.Context, l *linkstore.Link, consents []klavi.Consent) (bool, error) {
	stored := make(map[string]klavi.ConsentStatus, len(l.Consents))
	for _, c := range l.Consents {
		stored[c.ConsentID] = c.Status
	}
	changed := false
	for _, kc := range consents {
		status := klavi.ParseConsentStatus(string(kc.Status))
		// Klavi lists by tax id; a consent of another link of the same
		// person, or one that names no link, is not this link's.
		if kc.LinkID != l.LinkID || kc.ConsentID == "" || status == "" {
			continue
		}
		was, known := stored[kc.ConsentID]
		if known && was == status {
			continue
		}
		out, err := w.store.ApplyEvent(ctx, linkstore.EventChange{
			EventID:         syntheticEventID(kc.ConsentID, string(status), kc.UpdatedAt),
			EventName:       EventName,
			EventTime:       kc.UpdatedAt,
			ReceivedAt:      w.now,
			LinkID:          l.LinkID,
			ConsentID:       kc.ConsentID,
			InstitutionCode: kc.InstitutionCode,
			ConsentStatus:   status,
		})
		if err != nil {
			return changed, fmt.Errorf("apply Klavi's state of consent %s: %w", kc.ConsentID, err)
		}
		attrs := []any{"consentId", kc.ConsentID, "institutionCode", kc.InstitutionCode,
			"storedStatus", was, "klaviStatus", status, "klaviUpdatedAt", kc.UpdatedAt}
		switch out {
		case linkstore.Applied:
			changed = true
			w.act(ctx, ActionConsentFixed, l.LinkID, "consent state taken from Klavi", attrs...)
		case linkstore.Stale:
			w.act(ctx, ActionConsentStale, l.LinkID, "Klavi told an older consent state than the store holds; kept the store's", attrs...)
		}
		// Duplicate: a run before this one applied the same state already.
		// Recorded: the link was purged meanwhile; settle sees it.
	}
	return changed, nil
}

// syntheticEventID is the same for the same Klavi state of a consent, so a
// repeated sweep is a duplicate in the store.
func syntheticEventID(consentID, status string, updatedAt time.Time) string {
	return EventName + ":" + consentID + ":" + status + ":" + updatedAt.UTC().Format(time.RFC3339Nano)
}

// requestResult is how one report request attempt ended.
type requestResult int

const (
	requestMade requestResult = iota
	requestSkipped
	requestInProgress
	requestRejected
	requestFailed
	requestInterrupted
)

// settle requests what is missing and decides whether the link stays on
// the list.
func (w *sweep) settle(ctx context.Context, att linkstore.Attention, l *linkstore.Link) (outcome, error) {
	if !l.PurgedAt.IsZero() {
		return w.clear(ctx, att, "link purged")
	}
	var (
		authorised, missing, rejected, recheck, pending bool
		failure                                         error
	)
	for _, c := range l.Consents {
		if c.Status != klavi.ConsentAuthorised {
			pending = pending || c.Status.Pending()
			continue
		}
		authorised = true
		if c.RequestID != "" || !w.cfg.AutoRequest {
			missing = true
			continue
		}
		res, err := w.request(ctx, l.LinkID, c.ConsentID)
		switch res {
		case requestMade, requestSkipped, requestInProgress:
			recheck = true
		case requestRejected:
			rejected = true
		case requestFailed:
			failure = firstError(failure, err)
		case requestInterrupted:
			return interrupted, err
		}
	}
	switch {
	case failure != nil:
		return w.keepOrGiveUp(ctx, att, failed, failure)
	case recheck:
		// Looked at again once ReconcileAfter has passed since the
		// request, to see whether its reports came.
		return done, nil
	case authorised:
		reason := "reports missing"
		switch {
		case len(l.Reports) > 0:
			reason = "reports received"
		case missing:
			w.act(ctx, ActionReportsMissing, l.LinkID, "no report arrived for the link's authorised consents; no further request is made",
				"autoRequest", w.cfg.AutoRequest, "reportRequests", len(l.ReportRequests))
		}
		if rejected {
			reason = "report request rejected"
		}
		return w.clear(ctx, att, reason)
	case pending:
		w.act(ctx, ActionConsentPending, l.LinkID, "a consent is still on its way at Klavi; looked at again next run")
		return w.keepOrGiveUp(ctx, att, done, nil)
	default:
		return w.clear(ctx, att, "link settled as "+l.Status(w.now))
	}
}

// request makes the consent's automatic report request and counts how it
// went.
func (w *sweep) request(ctx context.Context, linkID, consentID string) (requestResult, error) {
	requestID, err := w.requester.RequestForConsent(ctx, linkID, consentID, linkstore.TriggerReconcile)
	if requestID != "" {
		// Even with an error (recording it failed) the request was made.
		w.act(ctx, ActionReportRequested, linkID, "report request made", "consentId", consentID, "reportRequestId", requestID)
	}
	switch {
	case err == nil && requestID != "":
		return requestMade, nil
	case err == nil:
		w.act(ctx, ActionRequestSkipped, linkID, "report request not needed any more", "consentId", consentID)
		return requestSkipped, nil
	case errors.Is(err, reports.ErrInProgress):
		w.act(ctx, ActionRequestInProgress, linkID, "report request in progress elsewhere", "consentId", consentID)
		return requestInProgress, nil
	case errors.Is(err, reports.ErrPermanent):
		w.act(ctx, ActionRequestRejected, linkID, "report request cannot succeed as it stands", "consentId", consentID, "error", err)
		return requestRejected, nil
	case ctx.Err() != nil, errors.Is(err, reports.ErrDeadlineNear):
		// Out of time for this run, not a failure: the next run goes on.
		w.log.InfoContext(ctx, "reconcile: stopped by the deadline", "linkId", linkID, "consentId", consentID, "error", err)
		return requestInterrupted, err
	default:
		w.act(ctx, ActionRequestFailed, linkID, "report request failed; tried again next run", "consentId", consentID, "error", err)
		return requestFailed, fmt.Errorf("request reports for link %s: %w", linkID, err)
	}
}

// fail counts a failure on the link and keeps it on the list, unless the
// run's own deadline caused it.
func (w *sweep) fail(ctx context.Context, att linkstore.Attention, a Action, msg string, err error) (outcome, error) {
	if ctx.Err() != nil {
		w.log.InfoContext(ctx, "reconcile: stopped by the deadline", "linkId", att.LinkID, "error", err)
		return interrupted, err
	}
	w.act(ctx, a, att.LinkID, msg+"; tried again next run", "error", err)
	return w.keepOrGiveUp(ctx, att, failed, fmt.Errorf("reconcile link %s: %w", att.LinkID, err))
}

// keepOrGiveUp leaves the link on the list, or takes it off once it has
// been due for longer than GiveUpAfter. It returns out and err as given.
func (w *sweep) keepOrGiveUp(ctx context.Context, att linkstore.Attention, out outcome, err error) (outcome, error) {
	if !att.Due.Before(w.now.Add(-w.cfg.GiveUpAfter)) {
		return out, err
	}
	w.act(ctx, ActionGaveUp, att.LinkID, "link has been due too long; taken off the reconciliation list", "dueSince", att.Due)
	if cleared, cerr := w.clear(ctx, att, "given up"); cleared != done {
		return cleared, firstError(err, cerr)
	}
	return out, err
}

// clear takes the link off the list, unless its entry changed since the
// run listed it: a consent authorised meanwhile made it due again later,
// and that look must still happen. A failure here is not given up on: the
// link is simply due again next run.
func (w *sweep) clear(ctx context.Context, att linkstore.Attention, reason string) (outcome, error) {
	err := w.store.ClearAttention(ctx, att.LinkID, att.Due)
	switch {
	case err == nil:
		w.act(ctx, ActionAttentionCleared, att.LinkID, "link taken off the reconciliation list", "kind", att.Kind, "reason", reason)
		return done, nil
	case errors.Is(err, linkstore.ErrAttentionChanged):
		w.act(ctx, ActionAttentionRearmed, att.LinkID, "link became due again meanwhile; left on the reconciliation list",
			"kind", att.Kind, "reason", reason)
		return done, nil
	case errors.Is(err, linkstore.ErrNotFound):
		w.act(ctx, ActionLinkMissing, att.LinkID, "due link not found")
		return done, nil
	case ctx.Err() != nil:
		return interrupted, err
	default:
		w.act(ctx, ActionStoreFailed, att.LinkID, "taking the link off the list failed; looked at again next run", "error", err)
		return failed, fmt.Errorf("reconcile link %s: %w", att.LinkID, err)
	}
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// purge redoes a purge marked pending on the link (a deletion of the whole
// link, or a purge the stream failed) and takes the link off the list.
func (w *sweep) purge(ctx context.Context, att linkstore.Attention) (outcome, error) {
	err := errNoPurger
	if w.cfg.Purger != nil {
		err = w.cfg.Purger.Purge(ctx, att.LinkID)
	}
	if err != nil {
		if ctx.Err() != nil {
			return interrupted, err
		}
		// Never given up on (unlike fail): the user's deletion must happen.
		w.act(ctx, ActionPurgeFailed, att.LinkID, "redoing the pending purge failed; tried again next run", "error", err)
		return failed, fmt.Errorf("reconcile link %s: %w", att.LinkID, err)
	}
	w.act(ctx, ActionPurged, att.LinkID, "pending purge done")
	// The purge removed the entry with the rest of the link; clearing is
	// for a link whose entry came back in between.
	return w.clear(ctx, att, "purged")
}

var errNoPurger = errors.New("reconcile: no purger")

// finishDeletion finishes a deletion the fintech asked for that stopped
// before the purge (a Klavi failure on a consent, a revocation in flight
// elsewhere, a failed purge): the link's authorised consents are revoked
// again and the link is purged, through the same service as
// DELETE /links/{linkId}. Like a pending purge it is never given up on.
func (w *sweep) finishDeletion(ctx context.Context, att linkstore.Attention, l *linkstore.Link) (outcome, error) {
	err := errNoDeleter
	if w.cfg.Deleter != nil {
		_, err = w.cfg.Deleter.Delete(ctx, l)
	}
	if err != nil {
		if ctx.Err() != nil {
			return interrupted, err
		}
		w.act(ctx, ActionDeletionFailed, att.LinkID, "finishing the requested deletion failed; tried again next run", "error", err)
		return failed, fmt.Errorf("reconcile link %s: %w", att.LinkID, err)
	}
	w.act(ctx, ActionDeleted, att.LinkID, "requested deletion finished")
	return w.clear(ctx, att, "deleted")
}

var errNoDeleter = errors.New("reconcile: no deleter")
