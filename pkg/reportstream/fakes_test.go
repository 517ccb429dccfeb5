package reportstream

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

// Ids used by the events/report-request-*.json fixtures.
const (
	fixtureLinkID    = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureConsentID = "9b1f6c2e-8a16-11ee-a1c3-0242ac120002"
)

// Valid test tax ids (check digits correct).
const (
	testCPF = reportstest.CPF
	// testOwner is the caller the links-api-*.json events carry (JWT sub).
	testOwner      = reportstest.Owner
	testCPFMasked  = reportstest.CPFMasked
	testCNPJ       = reportstest.CNPJ
	testCNPJMasked = reportstest.CNPJMasked
	testWebhookURL = reportstest.WebhookURL
)

var testStart = reportstest.Start

// env is the stream handler over the report service, over fakes; api is
// the links API over the same service, for tests that drive both callers.
type env struct {
	h       *Handler
	svc     *reports.Service
	api     *linkapi.Handler
	klavi   *reportstest.Klavi
	store   *reportstest.Store
	objects *reportstest.Objects
	clock   *reportstest.Clock
	metrics *metricstest.Capture
	logs    *syncBuffer
}

// newEnv builds a stream handler with AutoRequest on over a service with products ["all"];
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
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = reports.New(e.klavi, e.store, e.objects, reports.Config{
		Logger:  logger,
		Metrics: e.metrics.Recorder,
		Now:     e.clock.Now,
		// Record retries need no real pause against an in-memory store.
		RecordBackoff: time.Millisecond,
	})
	cfg := Config{AutoRequest: true, Logger: logger, Metrics: e.metrics.Recorder}
	if mod != nil {
		mod(&cfg)
	}
	e.h = New(e.svc, cfg)
	e.api = linkapi.New(nil, e.store, e.svc, linkapi.Config{Logger: logger, Metrics: e.metrics.Recorder, Now: e.clock.Now})
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

func loadStream(t *testing.T, name string) events.DynamoDBEvent {
	t.Helper()
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(readFixture(t, name), &ev); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return ev
}

func loadHTTP(t *testing.T, name string) httpapi.Request {
	t.Helper()
	var req httpapi.Request
	if err := json.Unmarshal(readFixture(t, name), &req); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return req
}

// consentImage is a consent item as the stream shows it; "" status means
// no image.
func consentImage(linkID, consentID, institution string, status klavi.ConsentStatus) map[string]events.DynamoDBAttributeValue {
	if status == "" {
		return nil
	}
	s := events.NewStringAttribute
	return map[string]events.DynamoDBAttributeValue{
		"pk":              s("LINK#" + linkID),
		"sk":              s("CONSENT#" + consentID),
		"type":            s("consent"),
		"linkId":          s(linkID),
		"consentId":       s(consentID),
		"institutionCode": s(institution),
		"status":          s(string(status)),
		"eventTime":       s("2026-11-24T12:01:58.412Z"),
		"eventRank":       events.NewNumberAttribute("4"),
	}
}

// consentRecord is a stream record of a consent item going from oldStatus
// to newStatus ("" for no image).
func consentRecord(seq, eventName, linkID, consentID string, oldStatus, newStatus klavi.ConsentStatus) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{
		EventID:        "id-" + seq,
		EventName:      eventName,
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		AWSRegion:      "sa-east-1",
		EventSourceArn: "arn:aws:dynamodb:sa-east-1:123456789012:table/links/stream/2026-11-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			Keys: map[string]events.DynamoDBAttributeValue{
				"pk": events.NewStringAttribute("LINK#" + linkID),
				"sk": events.NewStringAttribute("CONSENT#" + consentID),
			},
			NewImage:       consentImage(linkID, consentID, "260", newStatus),
			OldImage:       consentImage(linkID, consentID, "260", oldStatus),
			SequenceNumber: seq,
			StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}
}

func batch(records ...events.DynamoDBEventRecord) events.DynamoDBEvent {
	return events.DynamoDBEvent{Records: records}
}

// failedSeqs lists the sequence numbers reported as failed.
func failedSeqs(resp events.DynamoDBEventResponse) []string {
	var out []string
	for _, f := range resp.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
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
