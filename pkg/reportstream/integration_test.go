package reportstream

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	simAccessKey = "ak-integration"
	simSecretKey = "sk-integration-secret"
)

// staticTokens hands out one access token obtained from the simulator.
type staticTokens struct{ token string }

func (s staticTokens) Token(context.Context) (string, error) { return s.token, nil }
func (staticTokens) Invalidate(string)                       {}

// world is the report service with its callers, the stream handler and
// the links API, over DynamoDB and S3 in the emulator and the Klavi
// simulator on a local server.
type world struct {
	h       *Handler
	svc     *reports.Service
	api     *linkapi.Handler
	sim     *klavisim.Simulator
	kc      *klavi.Client
	db      *dynamodb.Client
	table   string
	s3      *s3.Client
	bucket  string
	reports *reportstore.Store
	store   *linkstore.DynamoStore
	logs    *syncBuffer
	token   string
	seq     int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	cfg := awstest.Config(t)
	w := &world{logs: &syncBuffer{}}

	w.sim = klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey})
	srv := httptest.NewServer(w.sim)
	t.Cleanup(srv.Close)
	w.sim.SetPublicURL(srv.URL)
	authClient, err := klavi.New(srv.URL, klavi.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := authClient.Auth(t.Context(), klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		t.Fatalf("auth with the simulator: %v", err)
	}
	w.token = tok.AccessToken
	w.kc, err = klavi.New(srv.URL, klavi.WithHTTPClient(srv.Client()), klavi.WithTokenSource(staticTokens{tok.AccessToken}))
	if err != nil {
		t.Fatal(err)
	}

	w.db = dynamodb.NewFromConfig(cfg)
	w.table = awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), w.db, w.table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	w.store = linkstore.NewDynamo(w.db, w.table)

	w.s3 = s3.NewFromConfig(cfg)
	w.bucket = awstest.Name(t, "reports")
	if _, err := w.s3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(w.bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	w.reports = reportstore.New(w.s3, w.bucket, reportstore.Options{})

	logger := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metricstest.NewCapture("report-request")
	w.svc = reports.New(w.kc, w.store, w.reports, reports.Config{Logger: logger, Metrics: m.Recorder})
	w.h = New(w.svc, Config{AutoRequest: true, Logger: logger, Metrics: m.Recorder})
	w.api = linkapi.New(w.kc, w.store, w.svc, linkapi.Config{Logger: logger, Metrics: m.Recorder})
	return w
}

// simLink creates the link at the simulator and in our store, as the
// links-api function does, and returns its id.
func (w *world) simLink(t *testing.T, kind linkstore.TaxIDType, taxID string) string {
	t.Helper()
	req := klavi.CreateLinkRequest{
		InstitutionCode:     "260",
		ProductsCallbackURL: map[string]string{"all": testWebhookURL},
		ExternalInfo:        json.RawMessage(`{"customerRef":"cus_42"}`),
	}
	if kind == linkstore.TaxIDPersonal {
		req.PersonalTaxID = taxID
	} else {
		req.BusinessTaxID = taxID
	}
	link, err := w.kc.CreateLink(t.Context(), req)
	if err != nil {
		t.Fatalf("create link at the simulator: %v", err)
	}
	now := time.Now().UTC()
	if err := w.store.CreateLink(t.Context(), linkstore.Link{
		LinkID:           link.LinkID,
		TaxIDType:        kind,
		TaxID:            taxID,
		Owner:            testOwner,
		InstitutionCode:  "260",
		ReportWebhookURL: testWebhookURL,
		ExternalInfo:     req.ExternalInfo,
		ExpiresAt:        now.Add(30 * time.Minute),
		CreatedAt:        now,
	}); err != nil {
		t.Fatalf("store link: %v", err)
	}
	return link.LinkID
}

// consentEvent applies a consent event to the store, as the event webhook
// does, and returns the stream record DynamoDB produces for it: the
// consent item before and after, in Lambda's JSON shape.
func (w *world) consentEvent(t *testing.T, linkID, consentID string, status klavi.ConsentStatus, at time.Time) events.DynamoDBEventRecord {
	t.Helper()
	old := w.consentItem(t, linkID, consentID)
	out, err := w.store.ApplyEvent(t.Context(), linkstore.EventChange{
		EventID:         "ev-" + strconv.Itoa(w.seq) + "-" + consentID,
		EventName:       "consent_" + strings.ToLower(string(status)),
		EventTime:       at,
		LinkID:          linkID,
		ConsentID:       consentID,
		InstitutionCode: "260",
		ConsentStatus:   status,
	})
	if err != nil || out != linkstore.Applied {
		t.Fatalf("apply %s: outcome %q, error %v", status, out, err)
	}
	w.seq++
	name := "MODIFY"
	if old == nil {
		name = "INSERT"
	}
	rec := events.DynamoDBEventRecord{
		EventID:        "rec-" + strconv.Itoa(w.seq),
		EventName:      name,
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		AWSRegion:      awstest.Region,
		EventSourceArn: "arn:aws:dynamodb:" + awstest.Region + ":123456789012:table/" + w.table + "/stream/2026-11-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			Keys: map[string]events.DynamoDBAttributeValue{
				"pk": events.NewStringAttribute("LINK#" + linkID),
				"sk": events.NewStringAttribute("CONSENT#" + consentID),
			},
			NewImage:       awstest.StreamImage(w.consentItem(t, linkID, consentID)),
			OldImage:       awstest.StreamImage(old),
			SequenceNumber: strconv.Itoa(100000 + w.seq),
			StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}
	// Through JSON, as Lambda delivers it.
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got events.DynamoDBEventRecord
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func (w *world) consentItem(t *testing.T, linkID, consentID string) map[string]types.AttributeValue {
	t.Helper()
	out, err := w.db.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(w.table),
		ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "LINK#" + linkID},
			"sk": &types.AttributeValueMemberS{Value: "CONSENT#" + consentID},
		},
	})
	if err != nil {
		t.Fatalf("get consent item: %v", err)
	}
	return out.Item
}

// institutionRequests returns the report requests the simulator received.
func (w *world) institutionRequests() []klavisim.Request {
	var out []klavisim.Request
	for _, r := range w.sim.Requests() {
		if strings.HasSuffix(r.Path, "/institution-data") {
			out = append(out, r)
		}
	}
	return out
}

func TestIntegrationStreamRequestsReports(t *testing.T) {
	tests := []struct {
		name     string
		kind     linkstore.TaxIDType
		taxID    string
		wantPath string
	}{
		{"personal", linkstore.TaxIDPersonal, testCPF, "/data/v1/personal/institution-data"},
		{"business", linkstore.TaxIDBusiness, testCNPJ, "/data/v1/business/institution-data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			linkID := w.simLink(t, tc.kind, tc.taxID)
			consent, err := w.sim.AuthoriseConsent(linkID, "260")
			if err != nil {
				t.Fatalf("authorise at the simulator: %v", err)
			}
			at := time.Now().UTC().Add(-time.Minute)
			w.consentEvent(t, linkID, consent.ID, klavi.ConsentAwaitingLGPDAuthorisation, at)
			rec := w.consentEvent(t, linkID, consent.ID, klavi.ConsentAuthorised, at.Add(time.Second))
			ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}}

			// The batch delivered twice, and twice at the same time.
			for range 2 {
				resp, err := w.h.Handle(t.Context(), ev)
				if err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
				}
			}
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if resp, err := w.h.Handle(t.Context(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
						t.Errorf("concurrent Handle = %+v, %v; want no failures", resp, err)
					}
				})
			}
			wg.Wait()

			got := w.institutionRequests()
			if len(got) != 1 {
				t.Fatalf("simulator received %d report requests, want exactly 1", len(got))
			}
			r := got[0]
			if r.Method != http.MethodPost || r.Path != tc.wantPath || r.Status != http.StatusOK {
				t.Errorf("request = %s %s -> %d, want POST %s -> 200", r.Method, r.Path, r.Status, tc.wantPath)
			}
			if auth := r.Header.Get("Authorization"); auth != "Bearer "+w.token {
				t.Errorf("Authorization header is not the Bearer token")
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("request body is not a JSON object: %v", err)
			}
			wantFields := []string{"consentIds", "externalInfo", "institutionCode", "linkId", "products", "productsCallbackURL", "taxId"}
			if diff := cmp.Diff(wantFields, slices.Sorted(maps.Keys(body))); diff != "" {
				t.Errorf("body field names mismatch (-want +got):\n%s", diff)
			}
			var fields struct {
				TaxID               string            `json:"taxId"`
				InstitutionCode     string            `json:"institutionCode"`
				LinkID              string            `json:"linkId"`
				ConsentIDs          []string          `json:"consentIds"`
				Products            []string          `json:"products"`
				ProductsCallbackURL map[string]string `json:"productsCallbackURL"`
				ExternalInfo        json.RawMessage   `json:"externalInfo"`
			}
			if err := json.Unmarshal(r.Body, &fields); err != nil {
				t.Fatal(err)
			}
			if fields.TaxID != tc.taxID {
				t.Errorf("taxId is not the bare %s tax id", tc.name)
			}
			if fields.InstitutionCode != "260" || fields.LinkID != linkID || !cmp.Equal(fields.ConsentIDs, []string{consent.ID}) ||
				!cmp.Equal(fields.Products, []string{"all"}) || !cmp.Equal(fields.ProductsCallbackURL, map[string]string{"all": testWebhookURL}) ||
				string(fields.ExternalInfo) != `{"customerRef":"cus_42"}` {
				t.Errorf("body fields = %+v (tax id omitted), want institution 260, link %s, consent %s, products [all], callback all", fields.ConsentIDs, linkID, consent.ID)
			}

			accepted := w.sim.ReportRequests()
			if len(accepted) != 1 {
				t.Fatalf("simulator accepted %d requests, want 1", len(accepted))
			}
			l, err := w.store.GetLink(t.Context(), linkID)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.ReportRequests) != 1 || l.ReportRequests[0].RequestID != accepted[0].ID || l.ReportRequests[0].Trigger != linkstore.TriggerStream {
				t.Errorf("recorded requests = %+v, want one with Klavi's id %s and trigger stream", l.ReportRequests, accepted[0].ID)
			}
			if len(l.Consents) != 1 || l.Consents[0].RequestID != accepted[0].ID || !l.Consents[0].LeaseUntil.IsZero() {
				t.Errorf("consent = %+v, want request id %s and no lease", l.Consents, accepted[0].ID)
			}
			checkNoTaxID(t, "logs", w.logs.String())
		})
	}
}

func TestIntegrationManualRequest(t *testing.T) {
	w := newWorld(t)
	linkID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	consent, err := w.sim.AuthoriseConsent(linkID, "260")
	if err != nil {
		t.Fatal(err)
	}
	w.consentEvent(t, linkID, consent.ID, klavi.ConsentAuthorised, time.Now().UTC())
	req := loadHTTP(t, "links-api-reports.json")
	req.PathParameters["linkId"] = linkID
	resp, err := w.api.Handle(t.Context(), req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Handle = %d %s, %v; want 202", resp.StatusCode, resp.Body, err)
	}
	accepted := w.sim.ReportRequests()
	if len(accepted) != 1 || !cmp.Equal(accepted[0].Products, []string{"pf_checking_account", "pf_credit_card"}) {
		t.Fatalf("simulator accepted %+v, want one request for the body's products", accepted)
	}
	var body struct {
		Requests []struct {
			RequestID string `json:"requestId"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("decode 202 body: %v", err)
	}
	if got := body.Requests; len(got) != 1 || got[0].RequestID != accepted[0].ID {
		t.Errorf("202 requests = %+v, want Klavi's id %s", got, accepted[0].ID)
	}
	checkNoTaxID(t, "response", resp.Body)
	checkNoTaxID(t, "logs", w.logs.String())
}

func TestIntegrationKlaviRefusesRevokedConsent(t *testing.T) {
	w := newWorld(t)
	linkID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	consent, err := w.sim.AuthoriseConsent(linkID, "260")
	if err != nil {
		t.Fatal(err)
	}
	rec := w.consentEvent(t, linkID, consent.ID, klavi.ConsentAuthorised, time.Now().UTC())
	// Klavi already knows the consent was revoked; our event is late.
	if _, err := w.sim.SetConsentStatus(consent.ID, klavi.ConsentRevoked); err != nil {
		t.Fatal(err)
	}
	resp, err := w.h.Handle(t.Context(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures: 4001 is not retried", resp, err)
	}
	if got := w.institutionRequests(); len(got) != 1 || got[0].Status != 416 {
		t.Errorf("simulator requests = %+v, want one answered 416", got)
	}
	l, err := w.store.GetLink(t.Context(), linkID)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.ReportRequests) != 0 || l.Consents[0].RequestID != "" {
		t.Errorf("a refused request was recorded: %+v", l.ReportRequests)
	}
}

func TestIntegrationPurge(t *testing.T) {
	w := newWorld(t)
	linkID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	otherID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	consent, err := w.sim.AuthoriseConsent(linkID, "260")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Minute)
	w.consentEvent(t, linkID, consent.ID, klavi.ConsentAuthorised, at)
	if _, err := w.svc.RequestForConsent(t.Context(), linkID, consent.ID, linkstore.TriggerStream); err != nil {
		t.Fatalf("request reports: %v", err)
	}
	mine := []string{
		reportstore.ReportKey(linkID, "pf_checking_account", "pr-1"),
		reportstore.ReportKey(linkID, "pf_credit_card", "pr-2"),
	}
	other := reportstore.ReportKey(otherID, "pf_credit_card", "pr-3")
	for _, key := range append(slices.Clone(mine), other) {
		if _, err := w.reports.Put(t.Context(), reportstore.Object{Key: key, Body: []byte(`{"report":true}`)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	rec := w.consentEvent(t, linkID, consent.ID, klavi.ConsentDeletedByUser, at.Add(time.Second))
	ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}}

	for i := range 2 {
		resp, err := w.h.Handle(t.Context(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d: Handle = %+v, %v; want no failures", i+1, resp, err)
		}
	}
	listed, err := w.s3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range listed.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if diff := cmp.Diff([]string{other}, keys); diff != "" {
		t.Errorf("objects left mismatch (-want +got):\n%s", diff)
	}
	l, err := w.store.GetLink(t.Context(), linkID)
	if err != nil {
		t.Fatal(err)
	}
	if l.PurgedAt.IsZero() || l.TaxID != "" || len(l.Consents) != 0 || len(l.ReportRequests) != 0 {
		t.Errorf("link after purge = %+v, want a tombstone", l)
	}
	if n := len(w.institutionRequests()); n != 1 {
		t.Errorf("simulator report requests = %d, want 1 (the purge makes none)", n)
	}
	checkNoTaxID(t, "logs", w.logs.String())
}
