package reportwebhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// replayMargin separates a concurrent delivery of a report from a replay
// of one whose object is gone: a concurrent delivery records the report
// after this one started writing its object, so its record is never older
// than that write (give or take the clock difference of two instances); a
// replay finds a record from before the object's retention ran out, days
// old.
const replayMargin = time.Minute

// objectProduct is the product segment of a report's object key. A report
// without productName is kept rather than refused: one Klavi cannot
// redeliver must not be lost over a missing name.
func objectProduct(productName string) string {
	if productName == "" {
		return unknownProduct
	}
	return productName
}

// matchLink returns the first of the report's link ids this backend knows
// and that is still active ("" when none is), the first valid link id the
// report names, under which an unmatched report is kept, and the purged
// links it names. Every id is checked: a purged link wins over the others,
// active ones included, since its data must not be kept under any link.
func (h *Handler) matchLink(ctx context.Context, ids []string) (active, named string, purged []string, err error) {
	for _, id := range ids {
		if !linkstore.ValidLinkID(id) {
			continue
		}
		if named == "" {
			named = id
		}
		err := h.links.CheckLink(ctx, id)
		switch {
		case err == nil:
			if active == "" {
				active = id
			}
		case errors.Is(err, linkstore.ErrNotFound):
		case errors.Is(err, linkstore.ErrPurged):
			purged = append(purged, id)
		default:
			return "", named, nil, err
		}
	}
	return active, named, purged, nil
}

// discardPurged answers a report that names a purged link: nothing is
// kept, and the object an earlier delivery may have left under each purged
// link (one that landed while the purge ran, whose delete failed) is
// deleted now; when that fails, a 5xx makes Klavi try again.
func (h *Handler) discardPurged(ctx context.Context, log *slog.Logger, purged []string, product, productReportID string) httpapi.Response {
	for _, id := range purged {
		key := reportstore.ReportKey(id, product, productReportID)
		if err := h.objects.Delete(ctx, key); err != nil {
			log.ErrorContext(ctx, "report webhook: delete report of a purged link", "linkId", id, "objectKey", key, "error", err)
			h.metric.Count("PurgesFailed", 1, "Reason", "late_report")
			return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be handled. Retry.")
		}
	}
	log.InfoContext(ctx, "report for a purged link discarded", "linkId", purged[0], "purgedLinks", len(purged))
	h.metric.Count("ReportsDiscarded", 1, "Reason", "purged")
	return httpapi.JSON(http.StatusOK, result{ProductReportID: productReportID})
}

// checkReplay decides about a report already recorded on its link whose
// object this delivery had to write again (put at putAt). When the record
// is older than the write, the object had expired by the bucket's lifecycle
// rule (or was deleted): the delivery is a replay, and the object it wrote
// is deleted again, so that a replay cannot extend a report's retention.
// It returns nil for a concurrent delivery, which is a plain duplicate.
func (h *Handler) checkReplay(ctx context.Context, log *slog.Logger, linkID, objectKey, productReportID string, putAt time.Time) *httpapi.Response {
	recordedAt, err := h.recordedAt(ctx, linkID, productReportID)
	if err != nil {
		// Undecided: take the object back and let Klavi's retry decide
		// again; a concurrent delivery's retry writes it once more.
		log.ErrorContext(ctx, "report webhook: read the report's record", "linkId", linkID, "error", err)
		if derr := h.objects.Delete(ctx, objectKey); derr != nil {
			log.ErrorContext(ctx, "report webhook: delete undecided report", "linkId", linkID, "objectKey", objectKey, "error", derr)
		}
		resp := httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be recorded. Retry.")
		return &resp
	}
	if !recordedAt.Before(putAt.Add(-replayMargin)) {
		return nil
	}
	if err := h.objects.Delete(ctx, objectKey); err != nil {
		log.ErrorContext(ctx, "report webhook: delete replayed report", "linkId", linkID, "objectKey", objectKey, "error", err)
		h.metric.Count("ReportStoreFailures", 1)
		resp := httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be handled. Retry.")
		return &resp
	}
	log.WarnContext(ctx, "replay of a report whose object expired refused", "linkId", linkID, "recordedAt", recordedAt)
	h.metric.Count("ReportsDiscarded", 1, "Reason", "expired_replay")
	resp := httpapi.JSON(http.StatusOK, result{ProductReportID: productReportID, Duplicate: true, Matched: true})
	return &resp
}

// recordedAt is when the link's record of the report was written.
func (h *Handler) recordedAt(ctx context.Context, linkID, productReportID string) (time.Time, error) {
	l, err := h.links.GetLink(ctx, linkID)
	if err != nil {
		return time.Time{}, err
	}
	for _, r := range l.Reports {
		if r.ProductReportID == productReportID {
			return r.ReceivedAt, nil
		}
	}
	return time.Time{}, fmt.Errorf("report %s not on link %s", productReportID, linkID)
}
