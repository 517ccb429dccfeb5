package faults_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstream"
)

const institutionDataPath = "/data/v1/personal/institution-data"

// fakeClock is the report-request handler's clock, which the consent's
// lease is measured on.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type requestEnv struct {
	h         *reportstream.Handler
	svc       *reports.Service
	klavi     *klaviSide
	check     *linkstore.DynamoStore
	clock     *fakeClock
	linkID    string
	consentID string
	record    events.DynamoDBEvent // the consent becoming AUTHORISED
}

// newRequestEnv has a link with one consent authorised both at Klavi (the
// simulator) and in the table, and the stream record of that change.
func newRequestEnv(t *testing.T) *requestEnv {
	t.Helper()
	_, cfg := awsProxy(t)
	table, check := newTable(t)
	k := newKlaviSide(t)

	link, err := k.direct.CreateLink(t.Context(), klavi.CreateLinkRequest{
		PersonalTaxID:       fixtureCPF,
		InstitutionCode:     "260",
		ProductsCallbackURL: map[string]string{"all": "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"},
	})
	if err != nil {
		t.Fatalf("create link at Klavi: %v", err)
	}
	consent, err := k.sim.AuthoriseConsent(link.LinkID, "260")
	if err != nil {
		t.Fatalf("authorise consent at Klavi: %v", err)
	}
	err = check.CreateLink(t.Context(), linkstore.Link{
		LinkID: link.LinkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: fixtureCPF, InstitutionCode: "260",
		ReportWebhookURL: "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports",
		Origin:           linkstore.OriginAPI, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(30 * time.Minute),
	})
	if err != nil {
		t.Fatalf("store link: %v", err)
	}
	_, err = check.ApplyEvent(t.Context(), linkstore.EventChange{
		EventID: "ev-authorised", EventName: "consent_authorised", EventTime: now, ReceivedAt: now,
		LinkID: link.LinkID, ConsentID: consent.ID, InstitutionCode: "260", ConsentStatus: klavi.ConsentAuthorised,
	})
	if err != nil {
		t.Fatalf("store consent: %v", err)
	}

	clk := &fakeClock{t: now}
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), table, linkstore.WithClock(clk.Now))
	// Only a purge touches the bucket, and none happens here.
	objects := reportstore.New(s3.NewFromConfig(cfg), "unused-bucket", reportstore.Options{})
	svc := reports.New(k.client, store, objects, reports.Config{Now: clk.Now})
	h := reportstream.New(svc, reportstream.Config{AutoRequest: true})

	image := func(status string) map[string]events.DynamoDBAttributeValue {
		s := events.NewStringAttribute
		return map[string]events.DynamoDBAttributeValue{
			"pk": s("LINK#" + link.LinkID), "sk": s("CONSENT#" + consent.ID), "type": s("consent"),
			"linkId": s(link.LinkID), "consentId": s(consent.ID), "institutionCode": s("260"), "status": s(status),
		}
	}
	record := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		EventID: "1", EventName: "MODIFY", EventSource: "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			NewImage:       image(string(klavi.ConsentAuthorised)),
			OldImage:       image("AWAITING_AUTHORISATION"),
			SequenceNumber: "100",
			StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}}}
	return &requestEnv{h: h, svc: svc, klavi: k, check: check, clock: clk, linkID: link.LinkID, consentID: consent.ID, record: record}
}

// stream delivers the authorisation record and returns the sequence
// numbers reported as failed.
func (e *requestEnv) stream(t *testing.T) []string {
	t.Helper()
	resp, err := e.h.Handle(t.Context(), e.record)
	if err != nil {
		t.Fatalf("Handle returned error %v; failures are reported per record", err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

// klaviRequests lists the ids of the report requests Klavi accepted.
func (e *requestEnv) klaviRequests() []string {
	var ids []string
	for _, r := range e.klavi.sim.ReportRequests() {
		ids = append(ids, r.ID)
	}
	return ids
}

func (e *requestEnv) link(t *testing.T) *linkstore.Link {
	t.Helper()
	l, err := e.check.GetLink(t.Context(), e.linkID)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	return l
}

// TestReportRequestKlavi429ThenOK: Klavi refuses the first attempt for its
// rate; 429 means it did not act, so the client retries, and Klavi ends up
// with one request, recorded once.
func TestReportRequestKlavi429ThenOK(t *testing.T) {
	e := newRequestEnv(t)
	e.klavi.proxy.Inject(faultproxy.Rule{Match: faultproxy.KlaviPath(institutionDataPath), Times: 1, Fault: faultproxy.Throttle()})

	if failed := e.stream(t); len(failed) != 0 {
		t.Fatalf("failed records = %v, want none", failed)
	}

	if got := e.klavi.proxy.Count(faultproxy.KlaviPath(institutionDataPath)); got != 2 {
		t.Errorf("report requests sent = %d, want 2 (the refused one and the retry)", got)
	}
	accepted := e.klaviRequests()
	if len(accepted) != 1 {
		t.Fatalf("report requests at Klavi = %v, want exactly 1", accepted)
	}
	l := e.link(t)
	if len(l.ReportRequests) != 1 || l.ReportRequests[0].RequestID != accepted[0] || l.Consents[0].RequestID != accepted[0] {
		t.Errorf("recorded requests %+v, consent request %q; want one, Klavi's %s", l.ReportRequests, l.Consents[0].RequestID, accepted[0])
	}

	// A redelivery of the batch finds the request made.
	if failed := e.stream(t); len(failed) != 0 {
		t.Errorf("redelivery: failed records = %v, want none", failed)
	}
	if got := len(e.klaviRequests()); got != 1 {
		t.Errorf("report requests at Klavi after redelivery = %d, want 1", got)
	}
}

// TestReportRequestAnswerLostAfterKlaviAccepted pins the one window in which
// Klavi gets a second request for the same consent.
//
// Klavi accepts the request and the answer is lost. Klavi documents no
// idempotency key, and the client cannot tell an accepted request from one
// that never arrived, so it does not repeat the POST: the stream record
// fails with the consent still claimed (lease) and no request recorded.
// While the lease runs, a retry of the record ends without calling Klavi.
// Once the lease has run out, the reconciliation sweep (or a late retry of
// the record) claims the consent again and asks Klavi again: Klavi then has
// two requests for one consent and delivers a second set of reports, each
// stored under its own productReportId and listed on the link. Without an
// idempotency key at Klavi this window cannot be closed from our side; the
// alternative, never asking again, would lose the reports whenever the
// first request did not arrive. The link records only the request it could
// record (the second).
func TestReportRequestAnswerLostAfterKlaviAccepted(t *testing.T) {
	e := newRequestEnv(t)
	klaviCall := faultproxy.KlaviPath(institutionDataPath)
	e.klavi.proxy.Inject(faultproxy.Rule{Match: klaviCall, Times: 1, Fault: faultproxy.ResetAfterForward()})

	if failed := e.stream(t); !slices.Equal(failed, []string{"100"}) {
		t.Fatalf("failed records = %v, want [100] so that it is retried", failed)
	}
	if got := e.klavi.proxy.Count(klaviCall); got != 1 {
		t.Errorf("report requests sent = %d, want 1: a POST that may have taken effect is not repeated", got)
	}
	if got := e.klavi.received(institutionDataPath); got != 1 || len(e.klaviRequests()) != 1 {
		t.Errorf("requests at Klavi = %d, accepted %d; want 1, 1", got, len(e.klaviRequests()))
	}
	l := e.link(t)
	if len(l.ReportRequests) != 0 || l.Consents[0].RequestID != "" || l.Consents[0].LeaseUntil.IsZero() {
		t.Errorf("after the lost answer: requests %+v, consent %+v; want none recorded and the consent still claimed", l.ReportRequests, l.Consents[0])
	}
	due, err := e.check.ListAttention(t.Context(), linkstore.AwaitingReports, now.Add(24*time.Hour), 10)
	if err != nil {
		t.Fatalf("ListAttention: %v", err)
	}
	if !slices.ContainsFunc(due, func(a linkstore.Attention) bool { return a.LinkID == e.linkID }) {
		t.Errorf("reconciliation list = %+v, want the link on it", due)
	}

	// Lambda retries the record at once: the lease of the failed attempt
	// still runs, so the retry succeeds without calling Klavi.
	if failed := e.stream(t); len(failed) != 0 {
		t.Errorf("retry within the lease: failed records = %v, want none", failed)
	}
	if got := e.klavi.proxy.Count(klaviCall); got != 1 {
		t.Errorf("report requests sent after the retry within the lease = %d, want 1", got)
	}

	// The sweep comes after the lease.
	e.clock.Advance(reports.DefaultLease + time.Second)
	id, err := e.svc.RequestForConsent(t.Context(), e.linkID, e.consentID, linkstore.TriggerReconcile)
	if err != nil {
		t.Fatalf("reconciliation: %v", err)
	}

	accepted := e.klaviRequests()
	if got := e.klavi.received(institutionDataPath); got != 2 || len(accepted) != 2 {
		t.Fatalf("requests at Klavi = %d, accepted %v; want 2 and 2 (the at-least-once window)", got, accepted)
	}
	l = e.link(t)
	if len(l.ReportRequests) != 1 || l.ReportRequests[0].RequestID != id || id != accepted[1] ||
		l.ReportRequests[0].Trigger != linkstore.TriggerReconcile || l.Consents[0].RequestID != id {
		t.Errorf("recorded %+v, consent request %q, sweep's id %q; want one request, Klavi's second (%s), trigger reconcile",
			l.ReportRequests, l.Consents[0].RequestID, id, accepted[1])
	}

	// From now on the consent has its request: nothing asks again.
	e.clock.Advance(reports.DefaultLease + time.Second)
	if failed := e.stream(t); len(failed) != 0 {
		t.Errorf("late redelivery: failed records = %v, want none", failed)
	}
	if _, err := e.svc.RequestForConsent(t.Context(), e.linkID, e.consentID, linkstore.TriggerReconcile); err != nil {
		t.Errorf("second sweep: %v", err)
	}
	if got := len(e.klaviRequests()); got != 2 {
		t.Errorf("requests at Klavi = %d, want still 2", got)
	}
}

// TestReportRequestKlavi5xxIsRetriedByTheStream: a 500 may come after
// Klavi acted, so the client does not repeat it; the record fails and is
// left to a later attempt, like a lost answer.
func TestReportRequestKlavi5xxIsRetriedByTheStream(t *testing.T) {
	e := newRequestEnv(t)
	klaviCall := faultproxy.KlaviPath(institutionDataPath)
	e.klavi.proxy.Inject(faultproxy.Rule{Match: klaviCall, Times: 1, Fault: faultproxy.Status(http.StatusInternalServerError)})

	if failed := e.stream(t); !slices.Equal(failed, []string{"100"}) {
		t.Fatalf("failed records = %v, want [100]", failed)
	}
	if got := e.klavi.proxy.Count(klaviCall); got != 1 {
		t.Errorf("report requests sent = %d, want 1", got)
	}

	// A redelivery after the lease makes the request, once.
	e.clock.Advance(reports.DefaultLease + time.Second)
	if failed := e.stream(t); len(failed) != 0 {
		t.Fatalf("redelivery after the lease: failed records = %v, want none", failed)
	}
	accepted := e.klaviRequests()
	if len(accepted) != 1 {
		t.Fatalf("requests at Klavi = %v, want 1", accepted)
	}
	if l := e.link(t); len(l.ReportRequests) != 1 || l.ReportRequests[0].RequestID != accepted[0] {
		t.Errorf("recorded %+v, want Klavi's request %s", l.ReportRequests, accepted[0])
	}
}
