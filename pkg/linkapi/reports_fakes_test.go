package linkapi

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// Ids used by the events/report-request-*.json fixtures.
const (
	fixtureLinkID    = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureOwner     = "user-123" // the sub claim of the events/ fixtures
	fixtureConsentID = "9b1f6c2e-8a16-11ee-a1c3-0242ac120002"
)

// Valid test tax ids (check digits correct).
const (
	testCPF        = "12345678909"
	testCPFMasked  = "123.456.789-09"
	testCNPJ       = "11222333000181"
	testCNPJMasked = "11.222.333/0001-81"
	testWebhookURL = "https://api.example.com/webhooks/klavi/reports"
)

var testStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// reportsEnv is the links API over the report service, over fakes.
type reportsEnv struct {
	h       *Handler
	svc     *reports.Service
	klavi   *reportstest.Klavi
	store   *reportstest.Store
	objects *reportstest.Objects
	clock   *reportstest.Clock
	metrics *metricstest.Capture
	logs    *syncBuffer
}

// newReportsEnv builds a handler whose report service requests products
// ["all"]; mod adjusts the service's configuration.
func newReportsEnv(t *testing.T, mod func(*reports.Config)) *reportsEnv {
	t.Helper()
	e := &reportsEnv{
		klavi:   &reportstest.Klavi{},
		clock:   reportstest.NewClock(testStart),
		objects: reportstest.NewObjects(),
		metrics: metricstest.NewCapture("report-request"),
		logs:    &syncBuffer{},
	}
	e.store = &reportstest.Store{MemoryStore: linkstoretest.NewMemory(linkstoretest.WithClock(e.clock.Now))}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := reports.Config{
		Logger:  logger,
		Metrics: e.metrics.Recorder,
		Now:     e.clock.Now,
		// Record retries need no real pause against an in-memory store.
		RecordBackoff: time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.svc = reports.New(e.klavi, e.store, e.objects, cfg)
	e.h = New(nil, e.store, e.svc, Config{Logger: logger, Metrics: e.metrics.Recorder, Now: e.clock.Now})
	return e
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// personalLink is a link created through the API for a CPF.
func personalLink(id string) linkstore.Link {
	return linkstore.Link{
		LinkID:           id,
		TaxIDType:        linkstore.TaxIDPersonal,
		TaxID:            testCPF,
		ReportWebhookURL: testWebhookURL,
		ExternalInfo:     json.RawMessage(`{"customerRef":"cus_42"}`),
		Owner:            fixtureOwner,
		CreatedAt:        testStart.Add(-time.Hour),
		ExpiresAt:        testStart.Add(-30 * time.Minute),
	}
}

// seed stores l and its consents, each set by an event.
func seed(t *testing.T, s *linkstoretest.MemoryStore, l linkstore.Link, consents ...linkstore.Consent) {
	t.Helper()
	if err := s.CreateLink(t.Context(), l); err != nil {
		t.Fatalf("seed link: %v", err)
	}
	for _, c := range consents {
		setConsent(t, s, l.LinkID, c)
	}
}

// setConsent applies a consent event moving c to its status, at
// c.EventTime or testStart. At the same time a later lifecycle state wins.
func setConsent(t *testing.T, s *linkstoretest.MemoryStore, linkID string, c linkstore.Consent) {
	t.Helper()
	at := c.EventTime
	if at.IsZero() {
		at = testStart
	}
	out, err := s.ApplyEvent(t.Context(), linkstore.EventChange{
		EventID:         "ev-" + rand.Text(),
		EventName:       "consent_" + strings.ToLower(string(c.Status)),
		EventTime:       at,
		ReceivedAt:      at,
		LinkID:          linkID,
		ConsentID:       c.ConsentID,
		InstitutionCode: c.InstitutionCode,
		ConsentStatus:   c.Status,
	})
	if err != nil || out != linkstore.Applied {
		t.Fatalf("seed consent %s: outcome %q, error %v", c.ConsentID, out, err)
	}
}

func authorised(id, institution string) linkstore.Consent {
	return linkstore.Consent{ConsentID: id, InstitutionCode: institution, Status: klavi.ConsentAuthorised}
}

func getLink(t *testing.T, s *linkstoretest.MemoryStore, id string) *linkstore.Link {
	t.Helper()
	l, err := s.GetLink(t.Context(), id)
	if err != nil {
		t.Fatalf("get link %s: %v", id, err)
	}
	return l
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func loadHTTP(t *testing.T, name string) httpapi.Request {
	t.Helper()
	var req httpapi.Request
	if err := json.Unmarshal(readFixture(t, name), &req); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return req
}

// checkNoTaxID fails t when text holds a test tax id, bare or masked.
func checkNoTaxID(t *testing.T, where, text string) {
	t.Helper()
	for _, id := range []string{testCPF, testCPFMasked, testCNPJ, testCNPJMasked} {
		if strings.Contains(text, id) {
			t.Errorf("%s contains a tax id:\n%s", where, text)
		}
	}
}
