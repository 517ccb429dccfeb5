// Package reportstream consumes the links table's DynamoDB stream for the
// report service (package reports): a consent that just became AUTHORISED
// gets its automatic report request, one that just became DELETED_BY_USER
// purges its link. It is the logic of the report-request function, whose
// only trigger is the stream.
//
// A record matters only when its new image is a consent item that just
// became AUTHORISED (the old image is absent or not AUTHORISED), or that
// just became DELETED_BY_USER. Everything else (REMOVE records, link,
// request, report and event items, the service's own lease and request
// writes on an already AUTHORISED consent) changes nothing. The table's
// stream must carry NEW_AND_OLD_IMAGES; with new images only every write to
// an authorised consent looks like an authorisation, which the service's
// claim makes harmless but costly.
//
// A record that fails is reported in BatchItemFailures by its sequence
// number, so one bad record does not fail the batch. Lambda resumes a
// stream from the lowest failed sequence number, so later records are sent
// again in any case; the handler also reports as failed, without acting on
// them, the later records of the same link, so that a link's changes are
// never applied out of order (an authorisation retried after the purge
// that followed it, for example). Once the service says too little of the
// invocation is left for one more request (reports.Service.CallBudget), or
// the context is done, the remaining records are reported as failed
// without being started, and counted in StreamRecordsDeferred: they come
// back in the retry of the batch, which starts after the records that
// succeeded.
//
// A request the service reports as in progress elsewhere (reports.ErrInProgress)
// or as permanently failed (reports.ErrPermanent) is not retried by the
// stream: the holder of the claim finishes, and the reconciliation sweep
// looks at the consent again later. Every other failure is retried.
package reportstream

import (
	"context"
	"errors"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// service is what the stream asks of the report service
// (reports.Service).
type service interface {
	RequestForConsent(ctx context.Context, linkID, consentID, trigger string) (string, error)
	Purge(ctx context.Context, linkID string) error
	CallBudget(ctx context.Context) (time.Duration, error)
}

// marker leaves a durable mark of failed work on a link
// (linkstore.DynamoStore.MarkPending).
type marker interface {
	MarkPending(ctx context.Context, linkID string, w linkstore.PendingWork) error
}

// markTimeout bounds the writing of a batch's marks, which runs detached
// from the invocation's context: a batch cut short by its deadline is the
// one whose records most need their marks.
const markTimeout = 3 * time.Second

// Config is what the handler needs besides the service.
type Config struct {
	// Marks keeps the durable mark a failed record leaves on its link, for
	// the reconciliation sweep: the stream's own retries and its
	// dead-letter queue forget a record after the stream's 24 hours.
	Marks marker
	// AutoRequest makes the stream request reports when a consent is
	// authorised (AUTO_REQUEST_REPORTS). When false, authorisations are
	// only logged; purges happen either way.
	AutoRequest bool
	Logger      *slog.Logger
	Metrics     *metrics.Recorder
}

// Handler consumes the links table's stream.
type Handler struct {
	reports service
	marks   marker
	auto    bool
	log     *slog.Logger
	metric  *metrics.Recorder
}

// New returns a Handler that acts through svc.
func New(svc service, cfg Config) *Handler {
	h := &Handler{reports: svc, marks: cfg.Marks, auto: cfg.AutoRequest, log: cfg.Logger, metric: cfg.Metrics}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

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

// Handle processes a batch of the links table's stream. It never
// returns an error: records that failed, and the records of the same link
// after them, are listed in the response's BatchItemFailures by sequence
// number (the function's event source mapping must report batch item
// failures). A record without a sequence number makes Lambda retry the
// whole batch, which is the safe side. Once too little of the invocation
// is left for one more record (reports.Service.CallBudget), or
// its context is done, the remaining records are reported as failed
// without being started.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	failedLinks := map[string]bool{}
	var acted, ignored, deferred int
	var outOfTime error
	marks := map[string]linkstore.PendingWork{}
	for _, rec := range ev.Records {
		act := classify(rec)
		if act.kind == actNone {
			ignored++
			continue
		}
		acted++
		fail := func() {
			markWork(marks, act)
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
			_, outOfTime = h.reports.CallBudget(ctx)
		}
		if outOfTime != nil {
			deferred++
			fail()
			continue
		}
		if err := h.apply(ctx, act, marks); err != nil {
			h.log.ErrorContext(ctx, "stream record failed; it will be retried",
				"linkId", act.linkID, "consentId", act.consentID, "eventId", rec.EventID,
				"reason", reports.ReasonOf(err), "error", err)
			fail()
		}
	}
	h.writeMarks(ctx, marks)
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
	if l, ok := linkstore.LinkFromStreamImage(rec.Change.NewImage); ok {
		// A purge just marked pending: the user deleted the whole link, or
		// an earlier purge failed.
		old, _ := linkstore.LinkFromStreamImage(rec.Change.OldImage)
		if l.Pending.Work == linkstore.WorkPurge && old.Pending.Work != linkstore.WorkPurge {
			return action{kind: actPurge, linkID: l.LinkID}
		}
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
		return klavi.ParseConsentStatus(string(c.Status)) == status && klavi.ParseConsentStatus(string(oldStatus)) != status
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
func (h *Handler) apply(ctx context.Context, act action, marks map[string]linkstore.PendingWork) error {
	switch act.kind {
	case actPurge:
		return h.reports.Purge(ctx, act.linkID)
	case actRequest:
		if !h.auto {
			h.metric.Count("ReportRequestsSkipped", 1, "Reason", reports.ReasonAutoRequestOff)
			h.log.InfoContext(ctx, "report request skipped",
				"linkId", act.linkID, "consentId", act.consentID, "trigger", linkstore.TriggerStream, "reason", reports.ReasonAutoRequestOff)
			return nil
		}
		_, err := h.reports.RequestForConsent(ctx, act.linkID, act.consentID, linkstore.TriggerStream)
		switch {
		case err == nil, errors.Is(err, reports.ErrInProgress):
			return nil
		case errors.Is(err, reports.ErrPermanent):
			// Retrying the record cannot help; the reconciliation sweep
			// looks at the consent again later.
			h.log.ErrorContext(ctx, "report request failed permanently",
				"linkId", act.linkID, "consentId", act.consentID, "reason", reports.ReasonOf(err), "error", err)
			markWork(marks, act)
			return nil
		default:
			return err
		}
	}
	return nil
}

// markWork notes the work of a failed record for its link's mark; a purge
// outweighs a report request.
func markWork(marks map[string]linkstore.PendingWork, act action) {
	w := linkstore.PendingWork{Work: linkstore.WorkReportRequest, ConsentID: act.consentID}
	if act.kind == actPurge {
		w.Work = linkstore.WorkPurge
	}
	if held, ok := marks[act.linkID]; !ok || linkstore.MarkReplaces(held.Work, w.Work) {
		marks[act.linkID] = w
	}
}

// writeMarks leaves the batch's marks on their links. A mark that cannot
// be written is logged and counted (StreamMarksFailed, alarmed): the
// record is then only as durable as the stream's retries.
func (h *Handler) writeMarks(ctx context.Context, marks map[string]linkstore.PendingWork) {
	if h.marks == nil || len(marks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	for linkID, w := range marks {
		if err := h.marks.MarkPending(ctx, linkID, w); err != nil {
			h.log.ErrorContext(ctx, "stream: marking failed work on the link failed",
				"error_code", "mark_failed", "linkId", linkID, "consentId", w.ConsentID, "work", string(w.Work), "error", err)
			h.metric.Count("StreamMarksFailed", 1)
			continue
		}
		h.log.WarnContext(ctx, "failed work marked on the link for the reconciliation sweep",
			"linkId", linkID, "consentId", w.ConsentID, "work", string(w.Work))
		h.metric.Count("StreamWorkMarked", 1, "Work", string(w.Work))
	}
}
