package reportrequest

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// actionKind is what a stream record asks of the handler.
type actionKind int

const (
	actNone actionKind = iota
	actRequest
	actPurge
)

type action struct {
	kind      actionKind
	linkID    string
	consentID string
}

// HandleStream processes a batch of the links table's stream. It never
// returns an error: records that failed, and the records of the same link
// after them, are listed in the response's BatchItemFailures by sequence
// number (the function's event source mapping must report batch item
// failures). A record without a sequence number makes Lambda retry the
// whole batch, which is the safe side. Once too little of the invocation
// is left for one more record (Config.MinCallTime plus RecordReserve), or
// its context is done, the remaining records are reported as failed
// without being started.
func (h *Handler) HandleStream(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	failedLinks := map[string]bool{}
	var acted, ignored, deferred int
	var outOfTime error
	for _, rec := range ev.Records {
		act := classify(rec)
		if act.kind == actNone {
			ignored++
			continue
		}
		acted++
		fail := func() {
			failedLinks[act.linkID] = true
			resp.BatchItemFailures = append(resp.BatchItemFailures,
				events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
		}
		if failedLinks[act.linkID] {
			// Kept for the retry so that the link's changes stay in order.
			fail()
			continue
		}
		if outOfTime == nil {
			outOfTime = ctx.Err()
		}
		if outOfTime == nil {
			// A record started now could call Klavi too late to record
			// what Klavi accepted (see RequestForConsent).
			_, outOfTime = h.callBudget(ctx)
		}
		if outOfTime != nil {
			deferred++
			fail()
			continue
		}
		if err := h.apply(ctx, act); err != nil {
			h.log.ErrorContext(ctx, "stream record failed; it will be retried",
				"linkId", act.linkID, "consentId", act.consentID, "eventId", rec.EventID,
				"reason", reasonOf(err), "error", err)
			fail()
		}
	}
	if n := len(resp.BatchItemFailures); n > 0 {
		h.metric.Count("StreamRecordsFailed", n)
	}
	if deferred > 0 {
		h.metric.Count("StreamRecordsDeferred", deferred)
		h.log.WarnContext(ctx, "stream records left for the retry: the invocation's deadline is near",
			"deferred", deferred, "error", outOfTime)
	}
	h.log.InfoContext(ctx, "stream batch processed",
		"records", len(ev.Records), "acted", acted, "ignored", ignored, "failed", len(resp.BatchItemFailures), "deferred", deferred)
	return resp, nil
}

// classify tells what a record asks for: only a consent item that just
// became AUTHORISED or DELETED_BY_USER asks for anything.
func classify(rec events.DynamoDBEventRecord) action {
	switch events.DynamoDBOperationType(rec.EventName) {
	case events.DynamoDBOperationTypeInsert, events.DynamoDBOperationTypeModify:
	default:
		return action{}
	}
	linkID, c, ok := linkstore.ConsentFromStreamImage(rec.Change.NewImage)
	if !ok {
		return action{}
	}
	var oldStatus klavi.ConsentStatus
	if _, old, ok := linkstore.ConsentFromStreamImage(rec.Change.OldImage); ok {
		oldStatus = old.Status
	}
	became := func(status klavi.ConsentStatus) bool {
		return isStatus(c.Status, status) && !isStatus(oldStatus, status)
	}
	switch {
	case became(klavi.ConsentAuthorised):
		return action{kind: actRequest, linkID: linkID, consentID: c.ConsentID}
	case became(klavi.ConsentDeletedByUser):
		return action{kind: actPurge, linkID: linkID, consentID: c.ConsentID}
	default:
		return action{}
	}
}

// apply carries out one action; an error means the record must be retried.
func (h *Handler) apply(ctx context.Context, act action) error {
	switch act.kind {
	case actPurge:
		return h.purge(ctx, act.linkID)
	case actRequest:
		if !h.auto {
			h.skipped(ctx, act.linkID, act.consentID, linkstore.TriggerStream, reasonAutoRequestOff)
			return nil
		}
		_, err := h.RequestForConsent(ctx, act.linkID, act.consentID, linkstore.TriggerStream)
		switch {
		case err == nil, errors.Is(err, ErrInProgress):
			return nil
		case errors.Is(err, ErrPermanent):
			// Retrying the record cannot help; the reconciliation sweep
			// looks at the consent again later.
			h.log.ErrorContext(ctx, "report request failed permanently",
				"linkId", act.linkID, "consentId", act.consentID, "reason", reasonOf(err), "error", err)
			return nil
		default:
			return err
		}
	}
	return nil
}

// purge deletes what is held about the link's user: the stored reports,
// then the link's items, then any report stored in between. Each step is
// idempotent, so a failed purge is simply run again.
func (h *Handler) purge(ctx context.Context, linkID string) error {
	before, err := h.deleteReports(ctx, linkID)
	if err != nil {
		h.metric.Count("PurgesFailed", 1)
		return fmt.Errorf("purge link %s: delete reports: %w", linkID, err)
	}
	was, err := h.store.Purge(ctx, linkID, h.now())
	found := err == nil
	switch {
	case errors.Is(err, linkstore.ErrNotFound):
		// Nothing was stored for the link: there is nothing to purge.
		was = &linkstore.Link{}
	case err != nil:
		h.metric.Count("PurgesFailed", 1)
		return fmt.Errorf("purge link %s: %w", linkID, err)
	}
	after, err := h.deleteReports(ctx, linkID)
	if err != nil {
		h.metric.Count("PurgesFailed", 1)
		return fmt.Errorf("purge link %s: delete reports stored during the purge: %w", linkID, err)
	}
	// The store returns the link as it was: a tombstone already carries
	// PurgedAt, so a repeated purge is not counted twice.
	purgedNow := found && was.PurgedAt.IsZero()
	if purgedNow {
		h.metric.Count("LinksPurged", 1)
	}
	if n := before + after; n > 0 {
		h.metric.Count("ReportObjectsDeleted", n)
	}
	h.log.InfoContext(ctx, "link purged on the user's request",
		"linkId", linkID, "found", found, "purgedNow", purgedNow, "objectsDeleted", before+after,
		"consents", len(was.Consents), "reportRequests", len(was.ReportRequests), "reports", len(was.Reports))
	return nil
}

// deleteReports deletes the link's reports: those stored on the link and
// those kept unmatched under its id (they arrived before the link was known).
func (h *Handler) deleteReports(ctx context.Context, linkID string) (int, error) {
	n := 0
	for _, prefix := range []string{reportstore.LinkPrefix(linkID), reportstore.UnmatchedPrefix(linkID)} {
		deleted, err := h.objects.DeletePrefix(ctx, prefix)
		n += deleted
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
