package linkapi

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// Ids used by the events/report-request-*.json fixtures.
const (
	fixtureLinkID    = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureOwner     = reportstest.Owner // the sub claim of the events/ fixtures
	fixtureConsentID = "9b1f6c2e-8a16-11ee-a1c3-0242ac120002"
)

// Valid test tax ids (check digits correct).
const (
	testCPF        = reportstest.CPF
	testCPFMasked  = reportstest.CPFMasked
	testCNPJ       = reportstest.CNPJ
	testCNPJMasked = reportstest.CNPJMasked
	testWebhookURL = reportstest.WebhookURL
)

var testStart = reportstest.Start

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

// The seeding helpers and tax-id scan shared by the report tests.
var (
	personalLink = reportstest.PersonalLink
	seed         = reportstest.Seed
	authorised   = reportstest.Authorised
	getLink      = reportstest.GetLink
	checkNoTaxID = reportstest.CheckNoTaxID
)

type syncBuffer = reportstest.SyncBuffer
