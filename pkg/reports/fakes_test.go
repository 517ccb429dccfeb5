package reports

import (
	"log/slog"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
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

// env is a handler over fakes.
type env struct {
	h       *Service
	klavi   *reportstest.Klavi
	store   *reportstest.Store
	objects *reportstest.Objects
	clock   *reportstest.Clock
	metrics *metricstest.Capture
	logs    *syncBuffer
}

// newEnv builds a service with products ["all"];
// mod adjusts the configuration.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{
		klavi:   &reportstest.Klavi{},
		clock:   reportstest.NewClock(testStart),
		objects: reportstest.NewObjects(),
		metrics: metricstest.NewCapture("report-request"),
		logs:    &syncBuffer{},
	}
	e.store = &reportstest.Store{MemoryStore: linkstoretest.NewMemory(linkstoretest.WithClock(e.clock.Now))}
	cfg := Config{

		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: e.metrics.Recorder,
		Now:     e.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.h = New(e.klavi, e.store, e.objects, cfg)
	// Record retries need no real pause against an in-memory store.
	e.h.recordBackoff = time.Millisecond
	return e
}

// The seeding helpers and tax-id scan shared by the report tests.
var (
	personalLink = reportstest.PersonalLink
	seed         = reportstest.Seed
	setConsent   = reportstest.SetConsent
	authorised   = reportstest.Authorised
	getLink      = reportstest.GetLink
	checkNoTaxID = reportstest.CheckNoTaxID
)

type syncBuffer = reportstest.SyncBuffer
