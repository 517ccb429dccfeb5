package reports

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

// reportRequester is the Klavi call the service makes.
type reportRequester interface {
	RequestInstitutionData(ctx context.Context, kind klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error)
}

// store is the part of the link store the service uses.
type store interface {
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	ClaimAutoRequest(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error
	Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error)
	ClaimManualRequest(ctx context.Context, linkID, consentID string, products []string, cooldown time.Duration, now time.Time) error
	ReleaseManualRequest(ctx context.Context, linkID, consentID string, products []string, until time.Time) error
}

// objectDeleter deletes stored reports (reportstore.Store). Only Purge
// uses it; a service that never purges may be given nil.
type objectDeleter interface {
	DeletePrefix(ctx context.Context, prefix string) (int, error)
}

// DefaultLease is how long a claim on a consent's automatic request lasts
// when Config.Lease is zero. It must be longer than one Klavi call with the
// client's retries, and is best set above the function's timeout.
const DefaultLease = 2 * time.Minute

// Defaults of the Config fields that keep an accepted request from going
// unrecorded when the invocation's deadline comes.
const (
	// DefaultRecordReserve leaves room for a store write or two, with the
	// retries of record, before the function's deadline.
	DefaultRecordReserve = 3 * time.Second
	// DefaultMinCallTime is below which a Klavi call is not worth starting:
	// one that times out may still have been acted on.
	DefaultMinCallTime = 2 * time.Second
	// DefaultRecordTimeout bounds the recording of an accepted request,
	// its retries included.
	DefaultRecordTimeout = 5 * time.Second
)

// DefaultManualCooldown is Config.ManualCooldown's default
// (REPORT_REQUEST_COOLDOWN).
const DefaultManualCooldown = 10 * time.Minute

// DefaultRecordBackoff is the first wait between attempts to record a
// request when Config.RecordBackoff is zero; it doubles after each attempt.
const DefaultRecordBackoff = 100 * time.Millisecond

// Config is what the service needs besides its dependencies.
type Config struct {
	// Products are requested automatically (REPORT_PRODUCTS) and by a
	// manual request without products; default ["all"].
	Products []string
	// Lease bounds a claim on a consent's automatic request; default
	// DefaultLease.
	Lease time.Duration
	// RecordReserve is kept back from the invocation's deadline for
	// recording a request Klavi accepted: an automatic Klavi call ends at
	// the latest that long before the deadline. Default
	// DefaultRecordReserve.
	RecordReserve time.Duration
	// MinCallTime is the least time an automatic Klavi call is given. With
	// less left before the deadline (less RecordReserve), no call is made:
	// the consent is not claimed, or is left to its lease, and CallBudget
	// tells callers to stop starting requests. Default DefaultMinCallTime.
	MinCallTime time.Duration
	// RecordTimeout bounds the recording of a request Klavi accepted,
	// retries included. The recording is not cancelled with the
	// invocation's context. Default DefaultRecordTimeout.
	RecordTimeout time.Duration
	// RecordBackoff is the first wait between attempts to record an
	// accepted request; default DefaultRecordBackoff.
	RecordBackoff time.Duration
	// ManualCooldown is how long a manual request for a consent and a set
	// of products holds off the same request (REPORT_REQUEST_COOLDOWN);
	// default DefaultManualCooldown.
	ManualCooldown time.Duration
	// ReportWebhookURL (REPORT_WEBHOOK_URL), when set, is the
	// productsCallbackURL for links that carry none (links first seen in
	// an event). A manual request otherwise derives it from its own domain.
	ReportWebhookURL string
	Logger           *slog.Logger
	Metrics          *metrics.Recorder
	Now              func() time.Time
}

// Service requests reports and purges links.
type Service struct {
	klavi    reportRequester
	store    store
	objects  objectDeleter
	products []string
	lease    time.Duration
	webhook  string
	log      *slog.Logger
	metric   *metrics.Recorder
	now      func() time.Time

	recordReserve time.Duration
	minCall       time.Duration
	recordTimeout time.Duration
	recordBackoff time.Duration
	cooldown      time.Duration
}

// New returns a Service.
func New(k reportRequester, s store, objects objectDeleter, cfg Config) *Service {
	h := &Service{
		klavi:    k,
		store:    s,
		objects:  objects,
		products: slices.Clone(cfg.Products),
		lease:    cfg.Lease,
		webhook:  cfg.ReportWebhookURL,
		log:      cfg.Logger,
		metric:   cfg.Metrics,
		now:      cfg.Now,

		recordReserve: cfg.RecordReserve,
		minCall:       cfg.MinCallTime,
		recordTimeout: cfg.RecordTimeout,
		recordBackoff: cfg.RecordBackoff,
		cooldown:      cfg.ManualCooldown,
	}
	if h.cooldown <= 0 {
		h.cooldown = DefaultManualCooldown
	}
	if len(h.products) == 0 {
		h.products = []string{"all"}
	}
	if h.lease <= 0 {
		h.lease = DefaultLease
	}
	if h.recordReserve <= 0 {
		h.recordReserve = DefaultRecordReserve
	}
	if h.minCall <= 0 {
		h.minCall = DefaultMinCallTime
	}
	if h.recordTimeout <= 0 {
		h.recordTimeout = DefaultRecordTimeout
	}
	if h.recordBackoff <= 0 {
		h.recordBackoff = DefaultRecordBackoff
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}
