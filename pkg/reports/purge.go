package reports

import (
	"context"
	"errors"
	"fmt"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// errNoDeleter: the service was built without a report deleter, as for
// callers that never purge.
var errNoDeleter = errors.New("reports: no report deleter")

// Purge deletes what is held about the link's user (LGPD): the stored
// reports, then the link's items (the store leaves a tombstone), then any
// report stored in between. Each step is idempotent, so a failed purge is
// simply run again; purging an unknown link is a no-op.
func (h *Service) Purge(ctx context.Context, linkID string) error {
	if h.objects == nil {
		return fmt.Errorf("purge link %s: %w", linkID, errNoDeleter)
	}
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
func (h *Service) deleteReports(ctx context.Context, linkID string) (int, error) {
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
