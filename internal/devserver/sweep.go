package devserver

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// attentionLister finds the links waiting for reports.
type attentionLister interface {
	ListAttention(ctx context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error)
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error
}

// consentRequester makes a consent's automatic report request.
type consentRequester interface {
	RequestForConsent(ctx context.Context, linkID, consentID, trigger string) (string, error)
}

// sweeper stands in for the reconciliation sweep, and for the table's stream
// when the link store is a DynamoDB table, whose stream cannot be read here:
// it looks, every
// interval, for links with an authorised consent that has no report
// request yet and makes it, through the same RequestForConsent the stream
// handler calls (with the reconciliation trigger). Purges on
// consent_deleted_by_user are not covered: they need the stream.
type sweeper struct {
	store    attentionLister
	requests consentRequester
	interval time.Duration
	log      *slog.Logger
	// givenUp holds "linkId/consentId" of requests that failed for good,
	// so that they are not tried again every interval. Run's goroutine
	// alone uses it.
	givenUp map[string]bool
}

// Run sweeps until ctx is done.
func (s *sweeper) Run(ctx context.Context) {
	s.givenUp = map[string]bool{}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

func (s *sweeper) sweep(ctx context.Context) {
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: newRequestID()})
	// Every link awaiting reports, whatever its due time: the grace period
	// is for the deployed sweep, not for a local run.
	due, err := s.store.ListAttention(ctx, linkstore.AwaitingReports, time.Now().Add(24*time.Hour), 50)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "sweep: list links awaiting reports", "error", err)
		}
		return
	}
	for _, a := range due {
		link, err := s.store.GetLink(ctx, a.LinkID)
		if err != nil {
			s.log.ErrorContext(ctx, "sweep: get link", "linkId", a.LinkID, "error", err)
			continue
		}
		settled := len(link.Reports) > 0
		for _, c := range link.Consents {
			if strings.EqualFold(string(c.Status), string(klavi.ConsentAuthorised)) && c.RequestID == "" {
				settled = false
			}
		}
		if settled {
			// Every authorised consent has its request and reports arrived:
			// the link leaves the list, so it never crowds newer ones out.
			if err := s.store.ClearAttention(ctx, link.LinkID, a.Due); err != nil && !errors.Is(err, linkstore.ErrAttentionChanged) {
				s.log.ErrorContext(ctx, "sweep: clear attention", "linkId", link.LinkID, "error", err)
			}
			continue
		}
		for _, c := range link.Consents {
			key := link.LinkID + "/" + c.ConsentID
			if !strings.EqualFold(string(c.Status), string(klavi.ConsentAuthorised)) || c.RequestID != "" || s.givenUp[key] {
				continue
			}
			_, err := s.requests.RequestForConsent(ctx, link.LinkID, c.ConsentID, linkstore.TriggerReconcile)
			if err != nil && !errors.Is(err, reports.ErrInProgress) {
				s.log.ErrorContext(ctx, "sweep: request reports", "linkId", link.LinkID, "consentId", c.ConsentID, "error", err)
				s.givenUp[key] = errors.Is(err, reports.ErrPermanent)
			}
		}
	}
}
