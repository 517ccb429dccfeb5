package perf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstream"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// reportSize is the size of each report delivered to the report webhook:
// large enough to be a real report, small enough to keep iterations short.
// Memory for a 5 MB report is BenchmarkReportDelivery5MB's subject.
const reportSize = 64 << 10

// driver sends one kind of request to one instance's handler.
type driver interface {
	// prepare makes the next request's input. Whatever it writes to the
	// emulator or the simulator goes around the proxies, so it is not
	// counted.
	prepare(ctx context.Context, tb testing.TB)
	// send makes the request and fails tb unless it did its work.
	send(ctx context.Context, tb testing.TB)
}

// route is one function route with a warm-path bar.
type route struct {
	name string
	new  func(tb testing.TB, d *deployment, in *instance) driver
}

var routes = []route{
	{"links-api", newCreateLink},
	{"event-webhook", newEventWebhook},
	{"report-webhook", newReportWebhook},
	{"report-request", newReportRequest},
}

// loadEvent reads an API Gateway event from events/.
func loadEvent(tb testing.TB, name string) httpapi.Request {
	tb.Helper()
	raw, err := os.ReadFile("../../events/" + name)
	if err != nil {
		tb.Fatalf("read event: %v", err)
	}
	var req httpapi.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		tb.Fatalf("decode event %s: %v", name, err)
	}
	return req
}

// signed returns req carrying body, signed as Klavi signs it at now.
func signed(req httpapi.Request, body []byte, now time.Time) httpapi.Request {
	sig, ts := webhooksig.Sign([]byte(simSecretKey), body, now)
	headers := make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		headers[k] = v
	}
	headers["x-klavi-signature"], headers["x-klavi-timestamp"] = sig, ts
	req.Headers = headers
	req.Body = string(body)
	req.IsBase64Encoded = false
	return req
}

type httpHandler interface {
	Handle(ctx context.Context, req httpapi.Request) (httpapi.Response, error)
}

// handle sends req to h and decodes the JSON answer, failing tb unless the
// status is want.
func handle(ctx context.Context, tb testing.TB, h httpHandler, req httpapi.Request, want int) map[string]any {
	tb.Helper()
	resp, err := h.Handle(ctx, req)
	if err != nil {
		tb.Fatalf("Handle: %v", err)
	}
	if resp.StatusCode != want {
		tb.Fatalf("answer = %d %s, want %d", resp.StatusCode, resp.Body, want)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		tb.Fatalf("answer %q is not JSON: %v", resp.Body, err)
	}
	return body
}

// newLink stores an API-created link for a new id, around the proxies, as
// links-api left it.
func (d *deployment) newLink(ctx context.Context, tb testing.TB, linkID string) {
	tb.Helper()
	now := d.now()
	err := d.check.CreateLink(ctx, linkstore.Link{
		LinkID: linkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: fixtureCPF, InstitutionCode: institution,
		ReportWebhookURL: webhookURL, Origin: linkstore.OriginAPI,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(30 * time.Minute),
	})
	if err != nil {
		tb.Fatalf("store link: %v", err)
	}
}

// createLink is POST /links: the frontend's request from events/.
type createLink struct {
	h   *linkapi.Handler
	req httpapi.Request
}

func newCreateLink(tb testing.TB, d *deployment, in *instance) driver {
	return &createLink{
		h: linkapi.New(in.klavi, in.links, nil, linkapi.Config{
			AllowedRedirectHosts: []string{"app.example.com"},
			Now:                  d.now,
		}),
		req: loadEvent(tb, "links-api-post.json"),
	}
}

func (*createLink) prepare(context.Context, testing.TB) {}

func (c *createLink) send(ctx context.Context, tb testing.TB) {
	tb.Helper()
	body := handle(ctx, tb, c.h, c.req, http.StatusCreated)
	if id, _ := body["linkId"].(string); id == "" {
		tb.Fatalf("create link answered no linkId: %v", body)
	}
}

// eventWebhook is POST /webhooks/klavi/events: each request a new signed
// consent_authorised event for a link links-api stored.
type eventWebhook struct {
	d    *deployment
	h    *eventwebhook.Handler
	tmpl httpapi.Request
	next httpapi.Request
}

func newEventWebhook(tb testing.TB, d *deployment, in *instance) driver {
	return &eventWebhook{
		d: d,
		h: eventwebhook.New(in.tokens, in.links, eventwebhook.Config{
			Verifier: webhooksig.Verifier{Now: d.now},
			Now:      d.now,
		}),
		tmpl: loadEvent(tb, "event-webhook-consent-authorised.json"),
	}
}

func (e *eventWebhook) prepare(ctx context.Context, tb testing.TB) {
	tb.Helper()
	linkID := newID()
	e.d.newLink(ctx, tb, linkID)
	now := e.d.now()
	// Klavi's shape: a one-element array of the envelope.
	body, err := json.Marshal([]map[string]any{{
		"partnerAppId": "12345678",
		"eventId":      strconv.FormatInt(now.UnixMilli(), 10) + "-" + newID(),
		"eventType":    "api",
		"eventName":    "consent_authorised",
		"eventTime":    now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"payload": map[string]any{
			"personalTaxId": fixtureCPF,
			"businessTaxId": "",
			"linkId":        linkID,
			"consents": map[string]any{
				"consentId":       newID(),
				"externalTrackId": "trk-" + linkID[:8],
				"institutionCode": institution,
			},
		},
		"externalInfo": map[string]any{"applicationId": "app-42"},
	}})
	if err != nil {
		tb.Fatalf("encode event: %v", err)
	}
	e.next = signed(e.tmpl, body, now)
}

func (e *eventWebhook) send(ctx context.Context, tb testing.TB) {
	tb.Helper()
	body := handle(ctx, tb, e.h, e.next, http.StatusOK)
	if applied, _ := body["applied"].(float64); applied != 1 {
		tb.Fatalf("event answer = %v, want applied 1", body)
	}
}

// reportWebhook is POST /webhooks/klavi/reports: each request a new signed
// report of reportSize bytes for one stored link.
type reportWebhook struct {
	d      *deployment
	h      *reportwebhook.Handler
	tmpl   httpapi.Request
	linkID string
	seq    int64
	next   httpapi.Request
}

func newReportWebhook(tb testing.TB, d *deployment, in *instance) driver {
	r := &reportWebhook{
		d: d,
		h: reportwebhook.New(in.tokens, in.reports, in.links, reportwebhook.Config{
			Verifier: webhooksig.Verifier{Now: d.now},
			Now:      d.now,
		}),
		tmpl:   loadEvent(tb, "report-webhook-report.json"),
		linkID: newID(),
	}
	d.newLink(context.Background(), tb, r.linkID)
	return r
}

func (r *reportWebhook) prepare(_ context.Context, tb testing.TB) {
	tb.Helper()
	r.seq++
	body := klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size:            reportSize,
		Seed:            r.seq,
		ProductName:     "pf_checking_account",
		RequestID:       newID(),
		ProductReportID: newID(),
		LinkID:          r.linkID,
		InstitutionCode: institution,
		EnquiryCPF:      fixtureCPF,
	})
	r.next = signed(r.tmpl, body, r.d.now())
}

func (r *reportWebhook) send(ctx context.Context, tb testing.TB) {
	tb.Helper()
	body := handle(ctx, tb, r.h, r.next, http.StatusOK)
	if stored, _ := body["stored"].(bool); !stored || body["duplicate"] != false || body["matched"] != true {
		tb.Fatalf("report answer = %v, want stored, matched, not a duplicate", body)
	}
}

// reportRequest is the report-request function's stream trigger: each
// request the stream record of a newly authorised consent, authorised at
// Klavi and in the table.
type reportRequest struct {
	d    *deployment
	h    *reportstream.Handler
	seq  int
	next events.DynamoDBEvent
}

func newReportRequest(_ testing.TB, d *deployment, in *instance) driver {
	return &reportRequest{
		d: d,
		h: reportstream.New(reports.New(in.klavi, in.links, in.reports, reports.Config{
			Products: []string{"all"},
			Now:      d.now,
		}), reportstream.Config{AutoRequest: true}),
	}
}

func (r *reportRequest) prepare(ctx context.Context, tb testing.TB) {
	tb.Helper()
	link, err := r.d.setupKlavi.CreateLink(ctx, klavi.CreateLinkRequest{
		PersonalTaxID:       fixtureCPF,
		InstitutionCode:     institution,
		ProductsCallbackURL: map[string]string{"all": webhookURL},
	})
	if err != nil {
		tb.Fatalf("create link at Klavi: %v", err)
	}
	consent, err := r.d.sim.AuthoriseConsent(link.LinkID, institution)
	if err != nil {
		tb.Fatalf("authorise consent at Klavi: %v", err)
	}
	r.d.newLink(ctx, tb, link.LinkID)
	now := r.d.now()
	_, err = r.d.check.ApplyEvent(ctx, linkstore.EventChange{
		EventID: "ev-" + consent.ID, EventName: "consent_authorised", EventTime: now, ReceivedAt: now,
		LinkID: link.LinkID, ConsentID: consent.ID, InstitutionCode: institution, ConsentStatus: klavi.ConsentAuthorised,
	})
	if err != nil {
		tb.Fatalf("store consent: %v", err)
	}
	image := func(status string) map[string]events.DynamoDBAttributeValue {
		s := events.NewStringAttribute
		return map[string]events.DynamoDBAttributeValue{
			"pk": s("LINK#" + link.LinkID), "sk": s("CONSENT#" + consent.ID), "type": s("consent"),
			"linkId": s(link.LinkID), "consentId": s(consent.ID), "institutionCode": s(institution), "status": s(status),
		}
	}
	r.seq++
	r.next = events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		EventID: strconv.Itoa(r.seq), EventName: "MODIFY", EventSource: "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			NewImage:       image(string(klavi.ConsentAuthorised)),
			OldImage:       image("AWAITING_AUTHORISATION"),
			SequenceNumber: fmt.Sprintf("%021d", r.seq),
			StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}}}
}

func (r *reportRequest) send(ctx context.Context, tb testing.TB) {
	tb.Helper()
	before := len(r.d.sim.ReportRequests())
	resp, err := r.h.Handle(ctx, r.next)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		tb.Fatalf("stream batch: error %v, failed records %v; want none", err, resp.BatchItemFailures)
	}
	if got := len(r.d.sim.ReportRequests()) - before; got != 1 {
		tb.Fatalf("report requests at Klavi = %d, want 1", got)
	}
}
