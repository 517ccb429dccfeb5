package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

// store is the part of the link store the sweep uses.
type store interface {
	ListAttention(ctx context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error)
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	ApplyEvent(ctx context.Context, e linkstore.EventChange) (linkstore.Outcome, error)
	ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error
}

// consentLister is the Klavi call that tells a link's consents.
type consentLister interface {
	ListConsents(ctx context.Context, f klavi.ConsentFilter) ([]klavi.Consent, error)
}

// reportRequester makes a consent's automatic report request, once
// (reports.Service).
type reportRequester interface {
	RequestForConsent(ctx context.Context, linkID, consentID, trigger string) (requestID string, err error)
}

// purger purges a link's data (reports.Service.Purge).
type purger interface {
	Purge(ctx context.Context, linkID string) error
}

// deleter finishes a deletion the fintech asked for: it revokes the link's
// authorised consents at Klavi and then purges it (revocation.Service).
type deleter interface {
	Delete(ctx context.Context, link *linkstore.Link) (string, error)
}

// Defaults of Config.
const (
	DefaultLimit          = 200
	DefaultReconcileAfter = 15 * time.Minute
	DefaultGiveUpAfter    = 7 * 24 * time.Hour
	DefaultReserve        = 10 * time.Second
)

// Config is what a Reconciler needs besides its dependencies.
type Config struct {
	// Limit bounds the links taken up by one run; default DefaultLimit.
	Limit int
	// ReconcileAfter is how long an authorised consent or a report request
	// may wait for what should follow before the sweep acts
	// (RECONCILE_AFTER); default DefaultReconcileAfter.
	ReconcileAfter time.Duration
	// GiveUpAfter is how long past its due time a link that keeps failing
	// stays on the list; default DefaultGiveUpAfter.
	GiveUpAfter time.Duration
	// Reserve is kept back from the invocation's deadline: no link is
	// started, and calls in flight are cancelled, that long before it, so
	// that the run can still report what it did. Default DefaultReserve.
	Reserve time.Duration
	// AutoRequest makes the sweep request reports for authorised consents
	// that have none (AUTO_REQUEST_REPORTS). When false, Klavi is expected
	// to push reports by itself and missing ones are only reported.
	AutoRequest bool
	// Purger carries out a purge marked pending on a link
	// (linkstore.WorkPurge); without it such a link fails, and stays due.
	Purger purger
	// Deleter finishes a deletion the fintech asked for and that stopped
	// before the purge (linkstore.Link.DeletionRequested), through the
	// same revocation and purge as DELETE /links/{linkId}; without it such
	// a link fails, and stays due.
	Deleter deleter
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *metrics.Recorder
}

// Reconciler runs the reconciliation sweep. It is safe for concurrent use,
// though one run at a time is what the schedule makes.
type Reconciler struct {
	store     store
	klavi     consentLister
	requester reportRequester
	cfg       Config
	log       *slog.Logger
	metric    *metrics.Recorder
	now       func() time.Time
}

// New returns a Reconciler. requester may be nil when cfg.AutoRequest is
// false; a nil requester turns automatic requests off.
func New(s store, k consentLister, requester reportRequester, cfg Config) *Reconciler {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.ReconcileAfter <= 0 {
		cfg.ReconcileAfter = DefaultReconcileAfter
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	if cfg.Reserve <= 0 {
		cfg.Reserve = DefaultReserve
	}
	if requester == nil {
		cfg.AutoRequest = false
	}
	r := &Reconciler{store: s, klavi: k, requester: requester, cfg: cfg, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Summary tells what one run did.
type Summary struct {
	// Due is the number of links taken up (at most Config.Limit).
	Due int
	// More reports that further links were due beyond Config.Limit.
	More bool
	// Reconciled links were handled to the end (including those deferred
	// to a later run on purpose).
	Reconciled int
	// Failed links met an error; they stay due unless given up.
	Failed int
	// Left links were not finished because the deadline came; they stay
	// due for the next run.
	Left int
	// Actions counts what was done, by action.
	Actions map[Action]int
}

// Handle is the Lambda entry point for the EventBridge schedule. The event
// carries nothing the sweep needs. A run that could reconcile nothing
// returns its error, so that Lambda counts an error and the alarm on it
// fires; the schedule itself is the retry.
func (r *Reconciler) Handle(ctx context.Context, ev events.EventBridgeEvent) error {
	if _, err := r.Run(ctx); err != nil {
		r.log.ErrorContext(ctx, "reconciliation failed", "error_code", "reconcile_failed", "scheduleEventId", ev.ID, "error", err)
		return fmt.Errorf("reconcile: %w", err)
	}
	return nil
}

// Run reconciles the links that are due now; see the package documentation.
func (r *Reconciler) Run(ctx context.Context) (Summary, error) {
	runCtx, cancel := r.bounded(ctx)
	defer cancel()
	sum := Summary{Actions: map[Action]int{}}
	w := &sweep{Reconciler: r, now: r.now(), sum: &sum}

	due, more, listErr := w.due(runCtx)
	sum.Due, sum.More = len(due), more
	if more {
		r.log.WarnContext(ctx, "more links are due than one run takes up; the rest wait for the next run", "limit", r.cfg.Limit)
	}

	var firstErr error
links:
	for i, att := range due {
		out, err := interrupted, error(nil)
		if runCtx.Err() == nil {
			out, err = w.link(runCtx, att)
		}
		switch out {
		case done:
			sum.Reconciled++
		case failed:
			sum.Failed++
			firstErr = firstError(firstErr, err)
		case interrupted:
			sum.Left = len(due) - i
			break links
		}
	}
	r.report(ctx, sum)

	if sum.Reconciled > 0 || (listErr == nil && sum.Failed == 0 && sum.Left == 0) {
		return sum, nil
	}
	switch {
	case listErr != nil:
		return sum, listErr
	case firstErr != nil:
		return sum, fmt.Errorf("no due link could be reconciled (%d failed): %w", sum.Failed, firstErr)
	default:
		return sum, fmt.Errorf("deadline reached before any of %d due links was reconciled: %w", sum.Due, context.DeadlineExceeded)
	}
}

// bounded returns ctx ending Config.Reserve before ctx's own deadline.
func (r *Reconciler) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-r.cfg.Reserve))
	}
	return context.WithCancel(ctx)
}

// due lists both kinds of attention due before now and keeps the Limit
// earliest. A failure to list one kind still lets the other be worked on;
// the error is returned for Run to report when nothing else got done.
func (w *sweep) due(ctx context.Context) ([]linkstore.Attention, bool, error) {
	var all []linkstore.Attention
	var errs []error
	kinds := []linkstore.AttentionKind{linkstore.DeletionRequested, linkstore.PendingWorkDue, linkstore.AwaitingReports, linkstore.AwaitingConsent}
	for _, kind := range kinds {
		// One more than the limit tells whether the run leaves links behind.
		got, err := w.store.ListAttention(ctx, kind, w.now, w.cfg.Limit+1)
		if err != nil {
			w.act(ctx, ActionStoreFailed, "", "listing due links failed", "kind", kind, "error", err)
			errs = append(errs, fmt.Errorf("list %s links: %w", kind, err))
			continue
		}
		all = append(all, got...)
	}
	slices.SortFunc(all, func(a, b linkstore.Attention) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.LinkID, b.LinkID))
	})
	more := len(all) > w.cfg.Limit
	if more {
		all = all[:w.cfg.Limit]
	}
	return all, more, errors.Join(errs...)
}

// report writes the run's summary as metrics and one log line.
func (r *Reconciler) report(ctx context.Context, sum Summary) {
	r.metric.Count(metricLinks, sum.Reconciled, dimOutcome, "reconciled")
	r.metric.Count(metricLinks, sum.Failed, dimOutcome, "failed")
	r.metric.Count(metricLinks, sum.Left, dimOutcome, "left")
	actions := make([]any, 0, len(sum.Actions))
	for _, a := range slices.Sorted(maps.Keys(sum.Actions)) {
		actions = append(actions, slog.Int(string(a), sum.Actions[a]))
	}
	r.log.InfoContext(ctx, "reconciliation run finished",
		"due", sum.Due, "more", sum.More, "reconciled", sum.Reconciled, "failed", sum.Failed, "left", sum.Left,
		slog.Group("actions", actions...))
}
