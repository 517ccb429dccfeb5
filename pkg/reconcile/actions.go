package reconcile

import (
	"context"
	"log/slog"
)

// Action is what the sweep did about a link; the Action dimension of the
// ReconcileActions metric. Few and fixed: never an id.
type Action string

// Actions.
const (
	// ActionConsentFixed: a consent's state was taken from Klavi because
	// the store had missed it.
	ActionConsentFixed Action = "consent_fixed"
	// ActionConsentStale: Klavi told an older state than the store holds;
	// the store kept its own.
	ActionConsentStale Action = "consent_stale"
	// ActionReportRequested: a report request was made for an authorised
	// consent that had none.
	ActionReportRequested Action = "report_requested"
	// ActionRequestSkipped: the request turned out not to be needed (made
	// meanwhile, or the consent is no longer authorised).
	ActionRequestSkipped Action = "request_skipped"
	// ActionRequestInProgress: another caller holds the consent's claim.
	ActionRequestInProgress Action = "request_in_progress"
	// ActionRequestFailed: the request failed in a way that may pass; it
	// is tried again next run.
	ActionRequestFailed Action = "request_failed"
	// ActionRequestRejected: the request cannot succeed until something
	// else changes (Klavi refused the consent, the products or the
	// callback URL); an operator must look.
	ActionRequestRejected Action = "request_rejected"
	// ActionReportsMissing: a request was made (or Klavi pushes reports by
	// itself) and no report came within ReconcileAfter; an operator must
	// look. No second request is made.
	ActionReportsMissing Action = "reports_missing"
	// ActionConsentPending: Klavi still has a consent on its way (STARTED,
	// AWAITING_*); the link is looked at again next run.
	ActionConsentPending Action = "consent_pending"
	// ActionDeferred: an authorisation or a request is younger than
	// ReconcileAfter; nothing was asked of Klavi yet.
	ActionDeferred Action = "deferred"
	// ActionNoTaxID: the link has no tax id, so Klavi cannot be asked.
	ActionNoTaxID Action = "no_tax_id"
	// ActionAttentionCleared: the link was taken off the list.
	ActionAttentionCleared Action = "attention_cleared"
	// ActionAttentionRearmed: the link would have been taken off the list,
	// but a consent authorised while the run worked on it made it due
	// again; it stays for that later look.
	ActionAttentionRearmed Action = "attention_rearmed"
	// ActionGaveUp: the link kept failing past GiveUpAfter and was taken
	// off the list.
	ActionGaveUp Action = "gave_up"
	// ActionKlaviFailed: Klavi could not be asked; tried again next run.
	ActionKlaviFailed Action = "klavi_failed"
	// ActionStoreFailed: the link store failed; tried again next run.
	ActionStoreFailed Action = "store_failed"
	// ActionLinkMissing: a due link could not be found (the attention
	// index lags the table); nothing to do.
	ActionLinkMissing Action = "link_missing"
	// ActionPurged: a purge marked pending on the link was done.
	ActionPurged Action = "purged"
	// ActionPurgeFailed: a pending purge failed; tried again next run.
	ActionPurgeFailed Action = "purge_failed"
	// ActionDeleted: a deletion the fintech asked for, left unfinished,
	// was finished (consents revoked, link purged).
	ActionDeleted Action = "deleted"
	// ActionDeletionFailed: finishing a requested deletion failed (Klavi
	// could not revoke a consent, or the purge failed); tried again next
	// run, never given up on.
	ActionDeletionFailed Action = "deletion_failed"
)

// Metric names and dimensions.
const (
	metricActions = "ReconcileActions"
	metricLinks   = "ReconcileLinks"
	dimAction     = "Action"
	dimOutcome    = "Outcome"
)

// warns reports whether a is one an operator may have to follow up: those
// are logged at warning level, the others at info level.
func warns(a Action) bool {
	switch a {
	case ActionRequestFailed, ActionRequestRejected, ActionReportsMissing, ActionNoTaxID,
		ActionGaveUp, ActionKlaviFailed, ActionStoreFailed, ActionLinkMissing, ActionDeletionFailed:
		return true
	}
	return false
}

// act counts one action and logs it with the link id ("" for an action
// on no particular link). attrs must never carry a tax id.
func (w *sweep) act(ctx context.Context, a Action, linkID, msg string, attrs ...any) {
	w.sum.Actions[a]++
	w.metric.Count(metricActions, 1, dimAction, string(a))
	level := slog.LevelInfo
	if warns(a) {
		level = slog.LevelWarn
	}
	head := []any{"action", a}
	if linkID != "" {
		head = append(head, "linkId", linkID)
	}
	w.log.Log(ctx, level, "reconcile: "+msg, append(head, attrs...)...)
}
