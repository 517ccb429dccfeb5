package reportstream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func TestStreamAuthorisedFixture(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised(fixtureConsentID, "260"))
	ev := loadStream(t, "report-request-stream-authorised.json")

	resp, err := e.h.Handle(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
	}
	calls := e.klavi.Calls()
	if len(calls) != 1 {
		t.Fatalf("klavi calls = %d, want 1 (the second record is the claim's own write)", len(calls))
	}
	if calls[0].Kind != klavi.Personal || calls[0].Req.LinkID != fixtureLinkID ||
		!cmp.Equal(calls[0].Req.ConsentIDs, []string{fixtureConsentID}) || calls[0].Req.InstitutionCode != "260" {
		t.Errorf("klavi call = %+v, want the fixture's consent on the personal endpoint", calls[0])
	}
	l := getLink(t, e.store.MemoryStore, fixtureLinkID)
	if len(l.ReportRequests) != 1 || l.ReportRequests[0].Trigger != linkstore.TriggerStream {
		t.Errorf("requests = %+v, want one with trigger stream", l.ReportRequests)
	}
	checkNoTaxID(t, "logs", e.logs.String())
}

func TestStreamBatchTwice(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised(fixtureConsentID, "260"))
	ev := loadStream(t, "report-request-stream-authorised.json")
	for i := range 2 {
		resp, err := e.h.Handle(t.Context(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d: Handle = %+v, %v; want no failures", i+1, resp, err)
		}
	}
	if n := len(e.klavi.Calls()); n != 1 {
		t.Errorf("klavi calls = %d, want 1", n)
	}
	if n := len(getLink(t, e.store.MemoryStore, fixtureLinkID).ReportRequests); n != 1 {
		t.Errorf("recorded requests = %d, want 1", n)
	}
}

func TestStreamConcurrentDuplicates(t *testing.T) {
	const invocations = 8
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised(fixtureConsentID, "260"))
	ev := loadStream(t, "report-request-stream-authorised.json")

	// The first Klavi call stays in flight until every other invocation
	// has finished, so they all run while the claim is held. A second
	// call would not block, so a bug shows as a count, not a hang.
	release := make(chan struct{})
	e.klavi.Answer = func(n int, _ klavi.TaxIDKind, _ klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		if n == 1 {
			<-release
		}
		return &klavi.ReportRequestAccepted{RequestID: "req-1"}, nil
	}
	type result struct {
		resp events.DynamoDBEventResponse
		err  error
	}
	results := make(chan result, invocations)
	var wg sync.WaitGroup
	for range invocations {
		wg.Go(func() {
			resp, err := e.h.Handle(t.Context(), ev)
			results <- result{resp, err}
		})
	}
	for range invocations - 1 {
		r := <-results
		if r.err != nil || len(r.resp.BatchItemFailures) != 0 {
			t.Errorf("concurrent invocation = %+v, %v; want no failures", r.resp, r.err)
		}
	}
	close(release)
	wg.Wait()
	if r := <-results; r.err != nil || len(r.resp.BatchItemFailures) != 0 {
		t.Errorf("claim holder = %+v, %v; want no failures", r.resp, r.err)
	}
	if n := len(e.klavi.Calls()); n != 1 {
		t.Errorf("klavi calls = %d, want 1", n)
	}
	if n := len(getLink(t, e.store.MemoryStore, fixtureLinkID).ReportRequests); n != 1 {
		t.Errorf("recorded requests = %d, want 1", n)
	}
}

func TestStreamIgnores(t *testing.T) {
	linkItem := consentRecord("10", "INSERT", "l-1", "", "", "")
	linkItem.Change.NewImage = map[string]events.DynamoDBAttributeValue{
		"pk":   events.NewStringAttribute("LINK#l-1"),
		"sk":   events.NewStringAttribute("#LINK"),
		"type": events.NewStringAttribute("link"),
	}
	requestItem := consentRecord("11", "INSERT", "l-1", "c-1", "", klavi.ConsentAuthorised)
	requestItem.Change.NewImage["type"] = events.NewStringAttribute("request")
	wrongType := consentRecord("12", "INSERT", "l-1", "c-1", "", klavi.ConsentAuthorised)
	wrongType.Change.NewImage["type"] = events.NewNumberAttribute("1")

	ev := batch(
		consentRecord("1", "REMOVE", "l-1", "c-1", klavi.ConsentAuthorised, ""),
		consentRecord("2", "REMOVE", "l-1", "c-1", klavi.ConsentAuthorised, klavi.ConsentAuthorised),
		consentRecord("3", "MODIFY", "l-1", "c-1", klavi.ConsentAuthorised, klavi.ConsentAuthorised),
		consentRecord("4", "INSERT", "l-1", "c-1", "", klavi.ConsentStarted),
		consentRecord("5", "MODIFY", "l-1", "c-1", klavi.ConsentAuthorised, klavi.ConsentRevoked),
		consentRecord("6", "MODIFY", "l-1", "c-1", klavi.ConsentDeletedByUser, klavi.ConsentDeletedByUser),
		consentRecord("7", "UNKNOWN", "l-1", "c-1", "", klavi.ConsentAuthorised),
		linkItem, requestItem, wrongType,
	)
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	e.objects.Reset(reportstore.ReportKey("l-1", "pf_credit_card", "r-1"))

	resp, err := e.h.Handle(t.Context(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
	if len(e.objects.Prefixes()) != 0 {
		t.Errorf("DeletePrefix calls = %q, want none", e.objects.Prefixes())
	}
	l := getLink(t, e.store.MemoryStore, "l-1")
	if !l.PurgedAt.IsZero() || len(l.ReportRequests) != 0 || l.Consents[0].LeaseUntil != (time.Time{}) {
		t.Errorf("link changed: %+v", l)
	}
}

func TestStreamInsertAuthorised(t *testing.T) {
	// A consent first seen already AUTHORISED has no old image.
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	resp, _ := e.h.Handle(t.Context(), batch(consentRecord("1", "INSERT", "l-1", "c-1", "", "authorised")))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures = %+v, want none", resp.BatchItemFailures)
	}
	if n := len(e.klavi.Calls()); n != 1 {
		t.Errorf("klavi calls = %d, want 1", n)
	}
}

func TestStreamAutoRequestOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoRequest = false })
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"), authorised("c-2", "341"))
	key := reportstore.ReportKey("l-2", "pf_credit_card", "r-1")
	e.objects.Put(key)
	seed(t, e.store.MemoryStore, personalLink("l-2"), authorised("c-3", "260"))

	resp, err := e.h.Handle(t.Context(), batch(
		consentRecord("1", "MODIFY", "l-1", "c-1", klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised),
		consentRecord("2", "MODIFY", "l-2", "c-3", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser),
	))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
	if got := e.metrics.Sum("ReportRequestsSkipped", map[string]string{"Reason": reports.ReasonAutoRequestOff}); got != 1 {
		t.Errorf("ReportRequestsSkipped{auto_request_disabled} = %v, want 1", got)
	}
	if l := getLink(t, e.store.MemoryStore, "l-1"); l.Consents[0].LeaseUntil != (time.Time{}) {
		t.Errorf("consent was claimed with auto requests off: %+v", l.Consents[0])
	}
	if l := getLink(t, e.store.MemoryStore, "l-2"); l.PurgedAt.IsZero() || e.objects.Has(key) {
		t.Errorf("purge did not happen with auto requests off: purgedAt %v, object kept %v", l.PurgedAt, e.objects.Has(key))
	}
}

func TestStreamDeletedFixture(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised(fixtureConsentID, "260"))
	if _, err := e.svc.RequestForConsent(t.Context(), fixtureLinkID, fixtureConsentID, linkstore.TriggerStream); err != nil {
		t.Fatal(err)
	}
	setConsent(t, e.store.MemoryStore, fixtureLinkID, linkstore.Consent{ConsentID: fixtureConsentID, Status: klavi.ConsentDeletedByUser})
	mine := []string{
		reportstore.ReportKey(fixtureLinkID, "pf_checking_account", "pr-1"),
		reportstore.ReportKey(fixtureLinkID, "pf_credit_card", "pr-2"),
	}
	// A link whose id starts with the same characters keeps its reports.
	other := reportstore.ReportKey(fixtureLinkID+"0", "pf_credit_card", "pr-3")
	e.objects.Reset(append(mine, other)...)
	ev := loadStream(t, "report-request-stream-deleted.json")

	for i := range 2 { // a redelivered batch purges again, harmlessly
		resp, err := e.h.Handle(t.Context(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d: Handle = %+v, %v; want no failures", i+1, resp, err)
		}
	}
	for _, k := range mine {
		if e.objects.Has(k) {
			t.Errorf("report %s was not deleted", k)
		}
	}
	if !e.objects.Has(other) {
		t.Errorf("another link's report %s was deleted", other)
	}
	l := getLink(t, e.store.MemoryStore, fixtureLinkID)
	if l.PurgedAt.IsZero() || l.TaxID != "" || len(l.Consents) != 0 || len(l.ReportRequests) != 0 || l.ExternalInfo != nil {
		t.Errorf("link after purge = %+v, want a tombstone", l)
	}
	if got := e.metrics.Sum("LinksPurged", nil); got != 1 {
		t.Errorf("LinksPurged = %v, want 1 over two deliveries", got)
	}
	if got := e.metrics.Sum("ReportObjectsDeleted", nil); got != 2 {
		t.Errorf("ReportObjectsDeleted = %v, want 2", got)
	}
	logs := e.logs.String()
	checkNoTaxID(t, "logs", logs)
	for _, k := range mine {
		if strings.Contains(logs, k) {
			t.Errorf("logs name a deleted object key %s", k)
		}
	}
}

func TestStreamPurgeFailures(t *testing.T) {
	tests := []struct {
		name        string
		objectsErr  error
		purgeErr    error
		wantPurged  bool // store purged before the retry
		wantObjects bool // objects still there before the retry
	}{
		{name: "reports cannot be deleted", objectsErr: errors.New("s3: access denied"), wantObjects: true},
		{name: "store cannot purge", purgeErr: errors.New("dynamodb: throttled")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			key := reportstore.ReportKey("l-1", "pf_credit_card", "pr-1")
			e.objects.Put(key)
			e.objects.Err, e.store.PurgeErr = tc.objectsErr, tc.purgeErr
			ev := batch(consentRecord("7", "MODIFY", "l-1", "c-1", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser))

			resp, err := e.h.Handle(t.Context(), ev)
			if err != nil || !cmp.Equal(failedSeqs(resp), []string{"7"}) {
				t.Fatalf("Handle = %+v, %v; want record 7 failed", resp, err)
			}
			l := getLink(t, e.store.MemoryStore, "l-1")
			if got := !l.PurgedAt.IsZero(); got != tc.wantPurged {
				t.Errorf("purged before the retry = %v, want %v", got, tc.wantPurged)
			}
			if got := e.objects.Has(key); got != tc.wantObjects {
				t.Errorf("object kept before the retry = %v, want %v", got, tc.wantObjects)
			}
			if got := e.metrics.Sum("PurgesFailed", nil); got != 1 {
				t.Errorf("PurgesFailed = %v, want 1", got)
			}

			// The stream delivers the record again; the purge completes.
			e.objects.Err, e.store.PurgeErr = nil, nil
			resp, err = e.h.Handle(t.Context(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("retry: Handle = %+v, %v; want no failures", resp, err)
			}
			if l := getLink(t, e.store.MemoryStore, "l-1"); l.PurgedAt.IsZero() || l.TaxID != "" || e.objects.Has(key) {
				t.Errorf("after the retry: purgedAt %v, tax id kept %v, object kept %v", l.PurgedAt, l.TaxID != "", e.objects.Has(key))
			}
		})
	}
}

func TestStreamPurgeOrder(t *testing.T) {
	// Reports (on the link and kept unmatched under its id) are deleted
	// before the link is purged, and both prefixes are swept again after it
	// for a report stored in between.
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	order := &orderStore{Store: e.store, objects: e.objects}
	h := New(reports.New(e.klavi, order, order, reports.Config{Now: e.clock.Now}), Config{AutoRequest: true})
	resp, _ := h.Handle(t.Context(), batch(consentRecord("1", "MODIFY", "l-1", "c-1", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser)))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures = %+v", resp.BatchItemFailures)
	}
	linked, unmatched := "delete "+reportstore.LinkPrefix("l-1"), "delete "+reportstore.UnmatchedPrefix("l-1")
	want := []string{linked, unmatched, "purge l-1", linked, unmatched}
	if diff := cmp.Diff(want, order.steps); diff != "" {
		t.Errorf("purge steps mismatch (-want +got):\n%s", diff)
	}
}

// orderStore records the order of purge steps.
type orderStore struct {
	*reportstest.Store
	objects *reportstest.Objects
	steps   []string
}

func (o *orderStore) Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error) {
	o.steps = append(o.steps, "purge "+linkID)
	return o.Store.Purge(ctx, linkID, now)
}

func (o *orderStore) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	o.steps = append(o.steps, "delete "+prefix)
	return o.objects.DeletePrefix(ctx, prefix)
}

func TestStreamPurgeUnknownLink(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.h.Handle(t.Context(), batch(consentRecord("1", "MODIFY", "l-x", "c-1", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser)))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
	}
	if got := e.metrics.Sum("LinksPurged", nil); got != 0 {
		t.Errorf("LinksPurged = %v, want 0 for a link never stored", got)
	}
}

func TestStreamFailureKeepsLinkOrder(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-a"), authorised("c-a", "260"))
	seed(t, e.store.MemoryStore, personalLink("l-b"), authorised("c-b", "260"))
	e.klavi.Answer = func(_ int, _ klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		if r.LinkID == "l-a" {
			return nil, reportstest.APIError(503, 503)
		}
		return &klavi.ReportRequestAccepted{RequestID: "req-b"}, nil
	}
	resp, err := e.h.Handle(t.Context(), batch(
		consentRecord("1", "MODIFY", "l-a", "c-a", klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised),
		consentRecord("2", "MODIFY", "l-b", "c-b", klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised),
		consentRecord("3", "MODIFY", "l-a", "c-a", klavi.ConsentAuthorised, klavi.ConsentAuthorised), // no-op
		consentRecord("4", "MODIFY", "l-a", "c-a", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser),
	))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1", "4"}, failedSeqs(resp)); diff != "" {
		t.Errorf("failed records mismatch (-want +got):\n%s", diff)
	}
	if l := getLink(t, e.store.MemoryStore, "l-a"); !l.PurgedAt.IsZero() {
		t.Errorf("link l-a purged ahead of its failed authorisation")
	}
	if len(e.objects.Prefixes()) != 0 {
		t.Errorf("DeletePrefix calls = %q, want none", e.objects.Prefixes())
	}
	if l := getLink(t, e.store.MemoryStore, "l-b"); len(l.ReportRequests) != 1 {
		t.Errorf("link l-b requests = %+v, want one", l.ReportRequests)
	}
	if got := e.metrics.Sum("StreamRecordsFailed", nil); got != 2 {
		t.Errorf("StreamRecordsFailed = %v, want 2", got)
	}
}

func TestStreamOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		klaviErr error
		setup    func(t *testing.T, e *env)
		linkID   string // default l-1
		wantFail bool
	}{
		{name: "accepted"},
		{name: "klavi 4001 is not retried", klaviErr: reportstest.APIError(416, 4001)},
		{name: "klavi 4002 is not retried", klaviErr: reportstest.APIError(416, 4002)},
		{name: "klavi 429 is retried", klaviErr: reportstest.APIError(429, 429), wantFail: true},
		{name: "klavi 500 is retried", klaviErr: reportstest.APIError(500, 500), wantFail: true},
		{name: "network failure is retried", klaviErr: errors.New("connection reset"), wantFail: true},
		{
			name: "lease held elsewhere is success",
			setup: func(t *testing.T, e *env) {
				if err := e.store.MemoryStore.ClaimAutoRequest(t.Context(), "l-1", "c-1", time.Minute, testStart); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "unknown tax id type is not retried",
			setup: func(t *testing.T, e *env) {
				l := personalLink("l-2")
				l.TaxIDType, l.TaxID = "", ""
				seed(t, e.store.MemoryStore, l, authorised("c-1", "260"))
			},
			linkID: "l-2",
		},
		{
			name:     "store unavailable is retried",
			setup:    func(_ *testing.T, e *env) { e.store.ClaimErr = errors.New("dynamodb: throttled") },
			wantFail: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			if tc.klaviErr != nil {
				e.klavi.FailWith(tc.klaviErr)
			}
			if tc.setup != nil {
				tc.setup(t, e)
			}
			linkID := tc.linkID
			if linkID == "" {
				linkID = "l-1"
			}
			resp, err := e.h.Handle(t.Context(), batch(
				consentRecord("9", "MODIFY", linkID, "c-1", klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised)))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if tc.wantFail {
				want = []string{"9"}
			}
			if diff := cmp.Diff(want, failedSeqs(resp)); diff != "" {
				t.Errorf("failed records mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamCanceledContext(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	resp, err := e.h.Handle(ctx, batch(
		consentRecord("1", "MODIFY", "l-1", "c-1", klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised),
		consentRecord("2", "REMOVE", "l-1", "c-1", klavi.ConsentAuthorised, ""),
		consentRecord("3", "MODIFY", "l-2", "c-2", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser),
	))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1", "3"}, failedSeqs(resp)); diff != "" {
		t.Errorf("failed records mismatch (-want +got):\n%s", diff)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
}
