package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
)

// Tax ids valid by their check digits. They must never show in a log line.
const (
	cpfA = "12345678909"
	cpfB = "76109277673"
	cnpj = "11222333000181"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeKlavi answers GET /consents from a list of every consent it knows.
// Like Klavi may, it ignores the linkId filter and returns every consent of
// the tax id.
type fakeKlavi struct {
	mu       sync.Mutex
	consents []klavi.Consent
	errFor   map[string]error // by tax id
	calls    []klavi.ConsentFilter
	onCall   func()
}

func (f *fakeKlavi) ListConsents(ctx context.Context, filter klavi.ConsentFilter) ([]klavi.Consent, error) {
	f.mu.Lock()
	f.calls = append(f.calls, filter)
	onCall := f.onCall
	f.mu.Unlock()
	if onCall != nil {
		onCall()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	taxID := filter.PersonalTaxID + filter.BusinessTaxID
	if err := f.errFor[taxID]; err != nil {
		return nil, err
	}
	var out []klavi.Consent
	for _, c := range f.consents {
		if (filter.PersonalTaxID != "" && c.PersonalTaxID == filter.PersonalTaxID) ||
			(filter.BusinessTaxID != "" && c.BusinessTaxID == filter.BusinessTaxID) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeKlavi) set(cs ...klavi.Consent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.consents = cs
}

func (f *fakeKlavi) failFor(taxID string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errFor == nil {
		f.errFor = map[string]error{}
	}
	f.errFor[taxID] = err
}

func (f *fakeKlavi) Calls() []klavi.ConsentFilter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// klaviConsent is a consent as Klavi lists it for a CPF.
func klaviConsent(linkID, consentID string, status klavi.ConsentStatus, updatedAt time.Time) klavi.Consent {
	return klavi.Consent{
		ConsentID:       consentID,
		LinkID:          linkID,
		PersonalTaxID:   cpfA,
		InstitutionCode: "001",
		Status:          status,
		CreatedAt:       t0,
		UpdatedAt:       updatedAt,
	}
}

type requestCall struct {
	LinkID, ConsentID, Trigger string
}

// fakeRequester behaves like reports.Service.RequestForConsent over
// the memory store: one claim per consent, then a recorded request. errFor
// makes the call for a consent fail instead.
type fakeRequester struct {
	store *linkstoretest.MemoryStore
	now   func() time.Time

	mu     sync.Mutex
	calls  []requestCall
	errFor map[string]error // by consent id
	n      int
}

func (f *fakeRequester) RequestForConsent(ctx context.Context, linkID, consentID, trigger string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, requestCall{linkID, consentID, trigger})
	if err := f.errFor[consentID]; err != nil {
		return "", err
	}
	err := f.store.ClaimAutoRequest(ctx, linkID, consentID, time.Minute, f.now())
	switch {
	case errors.Is(err, linkstore.ErrDuplicate), errors.Is(err, linkstore.ErrNotAuthorised), errors.Is(err, linkstore.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	f.n++
	id := fmt.Sprintf("req-%d", f.n)
	err = f.store.RecordReportRequest(ctx, linkID, linkstore.ReportRequest{
		RequestID: id, ConsentID: consentID, InstitutionCode: "001",
		Products: []string{"all"}, RequestedAt: f.now(), Trigger: trigger,
	})
	return id, err
}

func (f *fakeRequester) Calls() []requestCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// faultyStore fails the calls whose error is set.
type faultyStore struct {
	*linkstoretest.MemoryStore
	listErr, getErr, clearErr error
	// beforeClear runs at the start of ClearAttention, to write what a
	// concurrent caller would meanwhile.
	beforeClear func()
}

func (s *faultyStore) ListAttention(ctx context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error) {
	if s.listErr != nil {
		return nil, s.listErr
	}
	return s.MemoryStore.ListAttention(ctx, kind, before, limit)
}

func (s *faultyStore) GetLink(ctx context.Context, linkID string) (*linkstore.Link, error) {
	if s.getErr != nil {
		return nil, s.getErr
	}
	return s.MemoryStore.GetLink(ctx, linkID)
}

func (s *faultyStore) ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error {
	if s.beforeClear != nil {
		s.beforeClear()
	}
	if s.clearErr != nil {
		return s.clearErr
	}
	return s.MemoryStore.ClearAttention(ctx, linkID, seenDue)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is one deployment in memory: a store, Klavi, the requester and the
// sweep, all on one clock.
type env struct {
	now     time.Time
	mem     *linkstoretest.MemoryStore
	store   *faultyStore
	klavi   *fakeKlavi
	req     *fakeRequester
	metrics *metricstest.Capture
	logs    *syncBuffer
	cfg     Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{now: t0, klavi: &fakeKlavi{}, metrics: metricstest.NewCapture("reconcile"), logs: &syncBuffer{}}
	e.mem = linkstoretest.NewMemory(linkstoretest.WithClock(e.clock))
	e.store = &faultyStore{MemoryStore: e.mem}
	e.req = &fakeRequester{store: e.mem, now: e.clock}
	e.cfg = Config{
		ReconcileAfter: 15 * time.Minute,
		AutoRequest:    true,
		Now:            e.clock,
		Logger:         slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:        e.metrics.Recorder,
	}
	t.Cleanup(func() {
		for _, secret := range []string{cpfA, cpfB, cnpj} {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("logs carry a tax id:\n%s", e.logs.String())
			}
		}
	})
	return e
}

func (e *env) clock() time.Time { return e.now }

func (e *env) reconciler() *Reconciler {
	return New(e.store, e.klavi, e.req, e.cfg)
}

func (e *env) run(t *testing.T) (Summary, error) {
	t.Helper()
	return e.reconciler().Run(t.Context())
}

// createLink stores a link created through the API at t0 that expires
// 30 minutes later.
func (e *env) createLink(t *testing.T, id string, kind linkstore.TaxIDType, taxID string) {
	t.Helper()
	err := e.mem.CreateLink(t.Context(), linkstore.Link{
		LinkID: id, TaxIDType: kind, TaxID: taxID, InstitutionCode: "001",
		ReportWebhookURL: "https://api.example.com/webhooks/klavi/reports",
		CreatedAt:        t0, ExpiresAt: t0.Add(30 * time.Minute),
	})
	if err != nil {
		t.Fatalf("create link %s: %v", id, err)
	}
}

// event applies a webhook consent event received at.
func (e *env) event(t *testing.T, linkID, consentID string, status klavi.ConsentStatus, at time.Time) {
	t.Helper()
	_, err := e.mem.ApplyEvent(t.Context(), linkstore.EventChange{
		EventID: "evt-" + consentID + "-" + string(status), EventName: "consent_" + strings.ToLower(string(status)),
		EventTime: at, ReceivedAt: at, LinkID: linkID, ConsentID: consentID,
		InstitutionCode: "001", ConsentStatus: status,
	})
	if err != nil {
		t.Fatalf("apply event: %v", err)
	}
}

// requested records the consent's automatic request made at.
func (e *env) requested(t *testing.T, linkID, consentID, requestID string, at time.Time) {
	t.Helper()
	err := e.mem.RecordReportRequest(t.Context(), linkID, linkstore.ReportRequest{
		RequestID: requestID, ConsentID: consentID, InstitutionCode: "001",
		Products: []string{"all"}, RequestedAt: at, Trigger: linkstore.TriggerStream,
	})
	if err != nil {
		t.Fatalf("record request: %v", err)
	}
}

func (e *env) report(t *testing.T, linkID, requestID string, at time.Time) {
	t.Helper()
	err := e.mem.RecordReport(t.Context(), linkID, linkstore.Report{
		ProductReportID: "rep-" + requestID, ProductName: "pf_checking_account",
		RequestID: requestID, ObjectKey: "reports/" + linkID + "/x.json", Code: 200, Bytes: 10, ReceivedAt: at,
	})
	if err != nil {
		t.Fatalf("record report: %v", err)
	}
}

// attention is the link's attention entry as "KIND" (due time ignored), or
// "" when it has none.
func (e *env) attention(t *testing.T, linkID string) string {
	t.Helper()
	for _, kind := range []linkstore.AttentionKind{linkstore.AwaitingConsent, linkstore.AwaitingReports} {
		all, err := e.mem.ListAttention(t.Context(), kind, t0.Add(100*24*time.Hour), 0)
		if err != nil {
			t.Fatalf("list attention: %v", err)
		}
		for _, a := range all {
			if a.LinkID == linkID {
				return string(kind)
			}
		}
	}
	return ""
}

func (e *env) link(t *testing.T, id string) *linkstore.Link {
	t.Helper()
	l, err := e.mem.GetLink(t.Context(), id)
	if err != nil {
		t.Fatalf("get link %s: %v", id, err)
	}
	return l
}

// consentView is what a test checks of a stored consent.
type consentView struct {
	Status    klavi.ConsentStatus
	RequestID string
}

func (e *env) consents(t *testing.T, id string) map[string]consentView {
	t.Helper()
	out := map[string]consentView{}
	for _, c := range e.link(t, id).Consents {
		out[c.ConsentID] = consentView{c.Status, c.RequestID}
	}
	return out
}
