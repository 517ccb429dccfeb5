package linkstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// Store is what both implementations offer; the conformance suite runs
// against it.
type Store interface {
	CreateLink(ctx context.Context, l linkstore.Link) error
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	CheckLink(ctx context.Context, linkID string) error
	ApplyEvent(ctx context.Context, e linkstore.EventChange) (linkstore.Outcome, error)
	ClaimAutoRequest(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error
	RecordReport(ctx context.Context, linkID string, r linkstore.Report) error
	Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error)
	RequestDeletion(ctx context.Context, linkID string, now time.Time) error
	ClaimRevoke(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordRevoke(ctx context.Context, linkID, consentID string, at time.Time) error
	ListAttention(ctx context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error)
	ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error
	ClaimManualRequest(ctx context.Context, linkID, consentID string, products []string, cooldown time.Duration, now time.Time) error
	ReleaseManualRequest(ctx context.Context, linkID, consentID string, products []string, until time.Time) error
	MarkPending(ctx context.Context, linkID string, w linkstore.PendingWork) error
}

var (
	_ Store = (*linkstoretest.MemoryStore)(nil)
	_ Store = (*linkstore.DynamoStore)(nil)
)

// t0 is the suite's clock: not UTC and finer than a millisecond, so that
// the stores' normalisation shows.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 123_456_789, time.FixedZone("BRT", -3*60*60))

const (
	testCPF   = "52998224725"
	testGrace = 15 * time.Minute
)

// testOptions are the options every store of the suite is built with.
func testOptions() []linkstore.Option {
	return []linkstore.Option{linkstore.WithClock(func() time.Time { return t0 }), linkstore.WithReportGrace(testGrace)}
}

// memoryOptions are testOptions for a MemoryStore.
func memoryOptions() []linkstoretest.Option {
	return []linkstoretest.Option{linkstoretest.WithClock(func() time.Time { return t0 }), linkstoretest.WithReportGrace(testGrace)}
}

// ms is t as the stores keep it.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func runConformance(t *testing.T, newStore func(t *testing.T) Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateDefaults", testCreateDefaults},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetUnknown", testGetUnknown},
		{"EventOutcomes", testEventOutcomes},
		{"EventSameTimeRank", testEventSameTimeRank},
		{"EventDeletedByUserWins", testEventDeletedByUserWins},
		{"EventUnknownLink", testEventUnknownLink},
		{"EventNonConsent", testEventNonConsent},
		{"EventConcurrentDuplicates", testEventConcurrentDuplicates},
		{"ClaimAutoRequest", testClaimAutoRequest},
		{"ClaimConcurrent", testClaimConcurrent},
		{"ReportRequests", testReportRequests},
		{"RecordReport", testRecordReport},
		{"Attention", testAttention},
		{"ClearAttentionConditional", testClearAttentionConditional},
		{"Purge", testPurge},
		{"CheckLink", testCheckLink},
		{"LinkDeletionWithoutConsent", testLinkDeletionWithoutConsent},
		{"UnplacedDeletionKept", testUnplacedDeletionKept},
		{"MarkPending", testMarkPending},
		{"ClaimRevoke", testClaimRevoke},
		{"ClaimRevokeConcurrent", testClaimRevokeConcurrent},
		{"RequestedDeletion", testRequestedDeletion},
		{"ManualCooldown", testManualCooldown},
		{"ManualCooldownConcurrent", testManualCooldownConcurrent},
		{"ManualCooldownPurged", testManualCooldownPurged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store { return linkstoretest.NewMemory(memoryOptions()...) })
}

// checkErr fails t unless err matches want (nil for success). Whatever the
// error, its text must not carry the tax id.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testCPF) {
		t.Errorf("%s: error %q carries the tax id", what, err)
	}
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

func mustGet(t *testing.T, s Store, linkID string) *linkstore.Link {
	t.Helper()
	l, err := s.GetLink(t.Context(), linkID)
	checkErr(t, "get link "+linkID, err, nil)
	return l
}

func mustCreate(t *testing.T, s Store, l linkstore.Link) {
	t.Helper()
	checkErr(t, "create link "+l.LinkID, s.CreateLink(t.Context(), l), nil)
}

func apply(t *testing.T, s Store, e linkstore.EventChange, want linkstore.Outcome) {
	t.Helper()
	got, err := s.ApplyEvent(t.Context(), e)
	checkErr(t, "apply event "+e.EventID, err, nil)
	if got != want {
		t.Fatalf("apply event %s (%s at %s): outcome = %q, want %q", e.EventID, e.ConsentStatus, e.EventTime.Format(time.RFC3339Nano), got, want)
	}
}

// consentEvent is a consent event received one second after it happened.
func consentEvent(eventID, linkID, consentID string, status klavi.ConsentStatus, at time.Time) linkstore.EventChange {
	return linkstore.EventChange{
		EventID:         eventID,
		EventName:       "consent_" + strings.ToLower(string(status)),
		EventTime:       at,
		ReceivedAt:      at.Add(time.Second),
		LinkID:          linkID,
		ConsentID:       consentID,
		InstitutionCode: "260",
		ConsentStatus:   status,
	}
}

func fullLink(id string) linkstore.Link {
	return linkstore.Link{
		LinkID:           id,
		TaxIDType:        linkstore.TaxIDPersonal,
		TaxID:            testCPF,
		InstitutionCode:  "001",
		RedirectURL:      "https://app.example.com/back",
		ReportWebhookURL: "https://api.example.com/webhooks/klavi/reports",
		ExternalInfo:     json.RawMessage(`{"myTraceId":"trace-1"}`),
		Owner:            "user-a",
		ExpiresAt:        t0.Add(30 * time.Minute),
		CreatedAt:        t0,
		UpdatedAt:        t0.Add(time.Second),
	}
}

func testCreateGetRoundTrip(t *testing.T, s Store) {
	in := fullLink("link-1")
	mustCreate(t, s, in)
	got := mustGet(t, s, "link-1")

	want := in
	want.Origin = linkstore.OriginAPI
	want.ExpiresAt, want.CreatedAt, want.UpdatedAt = ms(in.ExpiresAt), ms(in.CreatedAt), ms(in.UpdatedAt)
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("GetLink mismatch (-want +got):\n%s", diff)
	}
	for name, tm := range map[string]time.Time{"ExpiresAt": got.ExpiresAt, "CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("%s location = %v, want UTC", name, tm.Location())
		}
	}
	if got, want := got.Status(t0), linkstore.StatusCreated; got != want {
		t.Errorf("Status = %q, want %q", got, want)
	}
}

func testCreateDefaults(t *testing.T, s Store) {
	mustCreate(t, s, linkstore.Link{LinkID: "bare", TaxIDType: "", ExternalInfo: json.RawMessage("null")})
	got := mustGet(t, s, "bare")
	want := &linkstore.Link{LinkID: "bare", TaxIDType: linkstore.TaxIDUnknown, Origin: linkstore.OriginAPI, CreatedAt: ms(t0), UpdatedAt: ms(t0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetLink mismatch (-want +got):\n%s", diff)
	}
}

func testCreateDuplicate(t *testing.T, s Store) {
	mustCreate(t, s, fullLink("dup"))
	again := fullLink("dup")
	again.RedirectURL = "https://other.example.com"
	checkErr(t, "second create", s.CreateLink(t.Context(), again), linkstore.ErrDuplicate)
	if got := mustGet(t, s, "dup").RedirectURL; got != "https://app.example.com/back" {
		t.Errorf("RedirectURL after duplicate create = %q, want the first one", got)
	}
	checkErr(t, "create without id", s.CreateLink(t.Context(), linkstore.Link{TaxID: testCPF}), linkstore.ErrEmptyID)
}

func testGetUnknown(t *testing.T, s Store) {
	_, err := s.GetLink(t.Context(), "nope")
	checkErr(t, "get unknown", err, linkstore.ErrNotFound)
}

func testEventOutcomes(t *testing.T, s Store) {
	mustCreate(t, s, fullLink("L"))
	steps := []struct {
		name       string
		event      linkstore.EventChange
		want       linkstore.Outcome
		wantStatus string // of the link afterwards
	}{
		{"authorised", consentEvent("e1", "L", "C", klavi.ConsentAuthorised, t0.Add(5*time.Minute)), linkstore.Applied, linkstore.StatusAuthorised},
		{"authorised again", consentEvent("e1", "L", "C", klavi.ConsentAuthorised, t0.Add(5*time.Minute)), linkstore.Duplicate, linkstore.StatusAuthorised},
		{"older error", consentEvent("e2", "L", "C", klavi.ConsentError, t0.Add(4*time.Minute)), linkstore.Stale, linkstore.StatusAuthorised},
		{"older error redelivered", consentEvent("e2", "L", "C", klavi.ConsentError, t0.Add(4*time.Minute)), linkstore.Duplicate, linkstore.StatusAuthorised},
		{"newer revoked", consentEvent("e3", "L", "C", klavi.ConsentRevoked, t0.Add(10*time.Minute)), linkstore.Applied, linkstore.StatusRevoked},
		{"lower case status", consentEvent("e4", "L", "C", "deleted_by_user", t0.Add(11*time.Minute)), linkstore.Applied, linkstore.StatusDeletedByUser},
	}
	for _, st := range steps {
		apply(t, s, st.event, st.want)
		if got := mustGet(t, s, "L").Status(t0); got != st.wantStatus {
			t.Fatalf("after %s: link status = %q, want %q", st.name, got, st.wantStatus)
		}
	}
	got := mustGet(t, s, "L")
	last := steps[len(steps)-1].event
	want := []linkstore.Consent{{
		ConsentID: "C", InstitutionCode: "260", Status: klavi.ConsentDeletedByUser,
		EventTime: ms(last.EventTime), UpdatedAt: ms(last.ReceivedAt),
	}}
	if diff := cmp.Diff(want, got.Consents); diff != "" {
		t.Errorf("consents mismatch (-want +got):\n%s", diff)
	}
	if !got.UpdatedAt.Equal(ms(last.ReceivedAt)) {
		t.Errorf("link UpdatedAt = %v, want %v", got.UpdatedAt, ms(last.ReceivedAt))
	}
}

func testEventSameTimeRank(t *testing.T, s Store) {
	at := t0.Add(time.Minute)
	steps := []struct {
		status klavi.ConsentStatus
		want   linkstore.Outcome
	}{
		{klavi.ConsentAwaitingAuthorisation, linkstore.Applied},
		{klavi.ConsentStarted, linkstore.Stale},
		{klavi.ConsentAuthorised, linkstore.Applied},
		{klavi.ConsentAwaitingLGPDAuthorisation, linkstore.Stale},
		{klavi.ConsentRejected, linkstore.Applied},
		{klavi.ConsentError, linkstore.Stale}, // same rank as REJECTED
		{klavi.ConsentRevoked, linkstore.Applied},
	}
	for i, st := range steps {
		apply(t, s, consentEvent(fmt.Sprintf("r%d", i), "L", "C", st.status, at), st.want)
	}
	if got := mustGet(t, s, "L").Consents[0].Status; got != klavi.ConsentRevoked {
		t.Errorf("consent status = %q, want %q", got, klavi.ConsentRevoked)
	}
}

// testEventDeletedByUserWins: the user's deletion drives the LGPD purge, so
// it applies even when the consent holds a later event, and nothing
// replaces it afterwards.
func testEventDeletedByUserWins(t *testing.T, s Store) {
	mustCreate(t, s, fullLink("L"))
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	steps := []struct {
		name  string
		event linkstore.EventChange
		want  linkstore.Outcome
	}{
		{"revoked at T2", consentEvent("rev", "L", "C", klavi.ConsentRevoked, t2), linkstore.Applied},
		{"deleted at T1 < T2", consentEvent("del", "L", "C", klavi.ConsentDeletedByUser, t1), linkstore.Applied},
		{"deleted redelivered", consentEvent("del", "L", "C", klavi.ConsentDeletedByUser, t1), linkstore.Duplicate},
		{"deleted again, later", consentEvent("del2", "L", "C", klavi.ConsentDeletedByUser, t2.Add(time.Minute)), linkstore.Stale},
		{"reconcile-made expired, later", consentEvent("reconcile:C:EXPIRED", "L", "C", klavi.ConsentExpired, t2.Add(time.Hour)), linkstore.Stale},
	}
	for _, st := range steps {
		apply(t, s, st.event, st.want)
		if got := mustGet(t, s, "L").Consents[0].Status; got != klavi.ConsentRevoked && got != klavi.ConsentDeletedByUser {
			t.Fatalf("after %s: consent status = %q", st.name, got)
		}
	}
	l := mustGet(t, s, "L")
	if got := l.Consents[0].Status; got != klavi.ConsentDeletedByUser {
		t.Errorf("consent status = %q, want %q", got, klavi.ConsentDeletedByUser)
	}
	if got := l.Status(t0); got != linkstore.StatusDeletedByUser {
		t.Errorf("link status = %q, want %q", got, linkstore.StatusDeletedByUser)
	}
	// A deletion of a consent the store never saw applies too.
	apply(t, s, consentEvent("del-new", "L", "D", klavi.ConsentDeletedByUser, t0), linkstore.Applied)
}

func testEventUnknownLink(t *testing.T, s Store) {
	e := consentEvent("u1", "W", "C", klavi.ConsentStarted, t0)
	e.TaxIDType, e.TaxID = linkstore.TaxIDPersonal, testCPF
	e.ExternalInfo = json.RawMessage(`{"myTraceId":"t"}`)
	apply(t, s, e, linkstore.Applied)

	got := mustGet(t, s, "W")
	want := &linkstore.Link{
		LinkID: "W", TaxIDType: linkstore.TaxIDPersonal, TaxID: testCPF, ExternalInfo: json.RawMessage(`{"myTraceId":"t"}`),
		Origin: linkstore.OriginWebhook, CreatedAt: ms(e.ReceivedAt), UpdatedAt: ms(e.ReceivedAt),
		Consents: []linkstore.Consent{{ConsentID: "C", InstitutionCode: "260", Status: klavi.ConsentStarted, EventTime: ms(e.EventTime), UpdatedAt: ms(e.ReceivedAt)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("link from event mismatch (-want +got):\n%s", diff)
	}

	// A later event does not replace what the link already holds.
	e2 := consentEvent("u2", "W", "C", klavi.ConsentAuthorised, t0.Add(time.Minute))
	e2.TaxIDType, e2.TaxID, e2.ExternalInfo = linkstore.TaxIDBusiness, "11222333000181", json.RawMessage(`{"other":1}`)
	apply(t, s, e2, linkstore.Applied)
	got = mustGet(t, s, "W")
	if got.TaxID != testCPF || got.TaxIDType != linkstore.TaxIDPersonal || string(got.ExternalInfo) != `{"myTraceId":"t"}` || !got.CreatedAt.Equal(ms(e.ReceivedAt)) {
		t.Errorf("link after second event = %+v, want tax id, type, external info and CreatedAt of the first", got)
	}

	// Our own CreateLink, arriving after Klavi's event, takes the link over.
	created := fullLink("W")
	created.ExternalInfo = nil
	mustCreate(t, s, created)
	got = mustGet(t, s, "W")
	if got.Origin != linkstore.OriginAPI || got.RedirectURL != created.RedirectURL || got.Owner != created.Owner || !got.CreatedAt.Equal(ms(created.CreatedAt)) {
		t.Errorf("adopted link = %+v, want origin %q and the created fields", got, linkstore.OriginAPI)
	}
	if string(got.ExternalInfo) != `{"myTraceId":"t"}` {
		t.Errorf("adopted link ExternalInfo = %s, want the event's kept", got.ExternalInfo)
	}
	if len(got.Consents) != 1 || got.Consents[0].Status != klavi.ConsentAuthorised {
		t.Errorf("adopted link consents = %+v, want the authorised consent kept", got.Consents)
	}
	// Authorisation came first, so the link keeps waiting for reports.
	att, err := s.ListAttention(t.Context(), linkstore.AwaitingReports, t0.Add(24*time.Hour), 0)
	checkErr(t, "list attention", err, nil)
	if len(att) != 1 || att[0].LinkID != "W" {
		t.Errorf("AWAITING_REPORTS = %+v, want link W", att)
	}
	checkErr(t, "create again", s.CreateLink(t.Context(), fullLink("W")), linkstore.ErrDuplicate)
}

func testEventNonConsent(t *testing.T, s Store) {
	mustCreate(t, s, fullLink("N"))
	e := linkstore.EventChange{EventID: "n1", EventName: "link_created", EventTime: t0, ReceivedAt: t0.Add(time.Minute), LinkID: "N", TaxIDType: linkstore.TaxIDPersonal, TaxID: testCPF}
	apply(t, s, e, linkstore.Recorded)
	apply(t, s, e, linkstore.Duplicate)
	got := mustGet(t, s, "N")
	if !got.UpdatedAt.Equal(ms(e.ReceivedAt)) || len(got.Consents) != 0 {
		t.Errorf("link after link_created = %+v, want UpdatedAt %v and no consent", got, ms(e.ReceivedAt))
	}

	// A consent event that does not say which consent cannot be placed.
	noConsent := consentEvent("n2", "N", "", klavi.ConsentAuthorised, t0)
	apply(t, s, noConsent, linkstore.Recorded)
	if got := mustGet(t, s, "N"); len(got.Consents) != 0 {
		t.Errorf("consents = %+v, want none", got.Consents)
	}

	// An event without a link is only remembered.
	orphan := linkstore.EventChange{EventID: "n3", EventName: "page_view", ReceivedAt: t0}
	apply(t, s, orphan, linkstore.Recorded)
	apply(t, s, orphan, linkstore.Duplicate)

	_, err := s.ApplyEvent(t.Context(), linkstore.EventChange{LinkID: "N", TaxID: testCPF})
	checkErr(t, "event without id", err, linkstore.ErrEmptyID)
}

func testEventConcurrentDuplicates(t *testing.T, s Store) {
	const n = 20
	e := consentEvent("same", "P", "C", klavi.ConsentAuthorised, t0)
	e.TaxIDType, e.TaxID = linkstore.TaxIDPersonal, testCPF
	outcomes := make([]linkstore.Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { outcomes[i], errs[i] = s.ApplyEvent(t.Context(), e) })
	}
	wg.Wait()
	count := map[linkstore.Outcome]int{}
	for i := range n {
		checkErr(t, "concurrent apply", errs[i], nil)
		count[outcomes[i]]++
	}
	if diff := cmp.Diff(map[linkstore.Outcome]int{linkstore.Applied: 1, linkstore.Duplicate: n - 1}, count); diff != "" {
		t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
	}
}

// authorisedConsent creates link L with consent C authorised.
func authorisedConsent(t *testing.T, s Store) {
	t.Helper()
	mustCreate(t, s, fullLink("L"))
	apply(t, s, consentEvent("auth", "L", "C", klavi.ConsentAuthorised, t0), linkstore.Applied)
}

func testClaimAutoRequest(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	apply(t, s, consentEvent("started", "L", "D", klavi.ConsentStarted, t0), linkstore.Applied)
	lease := time.Minute

	checkErr(t, "claim unknown link", s.ClaimAutoRequest(ctx, "X", "C", lease, t0), linkstore.ErrNotFound)
	checkErr(t, "claim unknown consent", s.ClaimAutoRequest(ctx, "L", "X", lease, t0), linkstore.ErrNotFound)
	checkErr(t, "claim started consent", s.ClaimAutoRequest(ctx, "L", "D", lease, t0), linkstore.ErrNotAuthorised)

	checkErr(t, "first claim", s.ClaimAutoRequest(ctx, "L", "C", lease, t0), nil)
	if got := mustGet(t, s, "L").Consents[0].LeaseUntil; !got.Equal(ms(t0.Add(lease))) {
		t.Errorf("LeaseUntil = %v, want %v", got, ms(t0.Add(lease)))
	}
	checkErr(t, "claim during lease", s.ClaimAutoRequest(ctx, "L", "C", lease, t0.Add(lease-time.Second)), linkstore.ErrLeaseHeld)
	checkErr(t, "claim after lease", s.ClaimAutoRequest(ctx, "L", "C", lease, t0.Add(lease)), nil)

	r := linkstore.ReportRequest{RequestID: "req-1", ConsentID: "C", InstitutionCode: "260", Products: []string{"all"}, RequestedAt: t0.Add(lease + time.Second), Trigger: linkstore.TriggerStream}
	checkErr(t, "record request", s.RecordReportRequest(ctx, "L", r), nil)
	c := mustGet(t, s, "L").Consents[0]
	if c.RequestID != "req-1" || !c.LeaseUntil.IsZero() {
		t.Errorf("consent after request = %+v, want RequestID req-1 and no lease", c)
	}
	checkErr(t, "claim after request", s.ClaimAutoRequest(ctx, "L", "C", lease, t0.Add(time.Hour)), linkstore.ErrDuplicate)
}

func testClaimConcurrent(t *testing.T, s Store) {
	authorisedConsent(t, s)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.ClaimAutoRequest(t.Context(), "L", "C", time.Minute, t0) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		checkErr(t, "losing claim", err, linkstore.ErrLeaseHeld)
	}
	if won != 1 {
		t.Errorf("winning claims = %d, want 1", won)
	}
}

func testReportRequests(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	manual := linkstore.ReportRequest{RequestID: "m1", ConsentID: "C", InstitutionCode: "260", Products: []string{"pf_checking_account", "pf_credit_card"}, RequestedAt: t0.Add(time.Minute), Trigger: linkstore.TriggerManual}
	checkErr(t, "manual request", s.RecordReportRequest(ctx, "L", manual), nil)
	checkErr(t, "same request again", s.RecordReportRequest(ctx, "L", manual), linkstore.ErrDuplicate)
	checkErr(t, "request for unknown link", s.RecordReportRequest(ctx, "X", manual), linkstore.ErrNotFound)
	ghost := linkstore.ReportRequest{RequestID: "g1", ConsentID: "nope", Trigger: linkstore.TriggerReconcile}
	checkErr(t, "automatic request for unknown consent", s.RecordReportRequest(ctx, "L", ghost), linkstore.ErrNotFound)
	checkErr(t, "request without id", s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{}), linkstore.ErrEmptyID)
	noProducts := linkstore.ReportRequest{RequestID: "m2", Products: []string{}, Trigger: linkstore.TriggerManual}
	checkErr(t, "request with default time", s.RecordReportRequest(ctx, "L", noProducts), nil)

	got := mustGet(t, s, "L")
	want := []linkstore.ReportRequest{
		{RequestID: "m2", Trigger: linkstore.TriggerManual, RequestedAt: ms(t0)},
		{RequestID: "m1", ConsentID: "C", InstitutionCode: "260", Products: []string{"pf_checking_account", "pf_credit_card"}, RequestedAt: ms(manual.RequestedAt), Trigger: linkstore.TriggerManual},
	}
	if diff := cmp.Diff(want, got.ReportRequests); diff != "" {
		t.Errorf("report requests mismatch (-want +got):\n%s", diff)
	}
	if got.Consents[0].RequestID != "" {
		t.Errorf("consent RequestID after manual requests = %q, want none: a manual request must not stop the automatic one", got.Consents[0].RequestID)
	}
	if s := got.Status(t0); s != linkstore.StatusReportsRequested {
		t.Errorf("Status = %q, want %q", s, linkstore.StatusReportsRequested)
	}
	checkErr(t, "claim after manual request", s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0), nil)
}

func testRecordReport(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	r := linkstore.Report{ProductReportID: "pr-1", ProductName: "pf_checking_account", RequestID: "req-1", ObjectKey: "reports/L/pr-1.json", Code: 200, Bytes: 5 << 20, SHA256: strings.Repeat("ab", 32), ReceivedAt: t0.Add(time.Hour)}
	checkErr(t, "record report", s.RecordReport(ctx, "L", r), nil)
	checkErr(t, "record report again", s.RecordReport(ctx, "L", r), linkstore.ErrDuplicate)
	checkErr(t, "report for unknown link", s.RecordReport(ctx, "X", r), linkstore.ErrNotFound)
	checkErr(t, "report without id", s.RecordReport(ctx, "L", linkstore.Report{}), linkstore.ErrEmptyID)

	got := mustGet(t, s, "L")
	want := r
	want.ReceivedAt = ms(r.ReceivedAt)
	if diff := cmp.Diff([]linkstore.Report{want}, got.Reports); diff != "" {
		t.Errorf("reports mismatch (-want +got):\n%s", diff)
	}
	if !got.UpdatedAt.Equal(ms(r.ReceivedAt)) {
		t.Errorf("link UpdatedAt = %v, want %v", got.UpdatedAt, ms(r.ReceivedAt))
	}
	if s := got.Status(t0); s != linkstore.StatusReportsReceived {
		t.Errorf("Status = %q, want %q", s, linkstore.StatusReportsReceived)
	}
	// One consent's report does not end the link's reconciliation: another
	// consent may still lack its request. The sweep decides.
	att, err := s.ListAttention(ctx, linkstore.AwaitingReports, t0.Add(24*time.Hour), 0)
	checkErr(t, "list attention", err, nil)
	wantAtt := []linkstore.Attention{{LinkID: "L", Kind: linkstore.AwaitingReports, Due: ms(t0.Add(time.Second)).Add(testGrace)}}
	if diff := cmp.Diff(wantAtt, att); diff != "" {
		t.Errorf("AWAITING_REPORTS after a report mismatch (-want +got):\n%s", diff)
	}
}

func testAttention(t *testing.T, s Store) {
	ctx := t.Context()
	for id, expires := range map[string]time.Duration{"A": 30 * time.Minute, "B": 10 * time.Minute, "C": 20 * time.Minute} {
		l := fullLink(id)
		l.ExpiresAt = t0.Add(expires)
		mustCreate(t, s, l)
	}
	mustCreate(t, s, linkstore.Link{LinkID: "no-expiry"})
	list := func(kind linkstore.AttentionKind, before time.Time, limit int) []linkstore.Attention {
		t.Helper()
		got, err := s.ListAttention(ctx, kind, before, limit)
		checkErr(t, "list attention", err, nil)
		return got
	}
	due := func(id string, kind linkstore.AttentionKind, d time.Duration) linkstore.Attention {
		return linkstore.Attention{LinkID: id, Kind: kind, Due: ms(t0.Add(d))}
	}
	checks := []struct {
		name   string
		kind   linkstore.AttentionKind
		before time.Time
		limit  int
		want   []linkstore.Attention
	}{
		{"all due", linkstore.AwaitingConsent, t0.Add(time.Hour), 0, []linkstore.Attention{due("B", linkstore.AwaitingConsent, 10*time.Minute), due("C", linkstore.AwaitingConsent, 20*time.Minute), due("A", linkstore.AwaitingConsent, 30*time.Minute)}},
		{"limit", linkstore.AwaitingConsent, t0.Add(time.Hour), 2, []linkstore.Attention{due("B", linkstore.AwaitingConsent, 10*time.Minute), due("C", linkstore.AwaitingConsent, 20*time.Minute)}},
		{"before is exclusive", linkstore.AwaitingConsent, t0.Add(20 * time.Minute), 0, []linkstore.Attention{due("B", linkstore.AwaitingConsent, 10*time.Minute)}},
		{"none due yet", linkstore.AwaitingConsent, t0, 0, nil},
		{"other kind", linkstore.AwaitingReports, t0.Add(time.Hour), 0, nil},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, list(c.kind, c.before, c.limit)); diff != "" {
			t.Errorf("%s: attention mismatch (-want +got):\n%s", c.name, diff)
		}
	}

	// Authorising a consent of A moves it to AWAITING_REPORTS; a consent
	// event that authorises nothing leaves C where it is.
	auth := consentEvent("a1", "A", "C1", klavi.ConsentAuthorised, t0)
	apply(t, s, auth, linkstore.Applied)
	apply(t, s, consentEvent("c1", "C", "C1", klavi.ConsentRejected, t0), linkstore.Applied)
	wantReports := []linkstore.Attention{{LinkID: "A", Kind: linkstore.AwaitingReports, Due: ms(auth.ReceivedAt).Add(testGrace)}}
	if diff := cmp.Diff(wantReports, list(linkstore.AwaitingReports, t0.Add(time.Hour), 0)); diff != "" {
		t.Errorf("AWAITING_REPORTS mismatch (-want +got):\n%s", diff)
	}
	want := []linkstore.Attention{due("B", linkstore.AwaitingConsent, 10*time.Minute), due("C", linkstore.AwaitingConsent, 20*time.Minute)}
	if diff := cmp.Diff(want, list(linkstore.AwaitingConsent, t0.Add(time.Hour), 0)); diff != "" {
		t.Errorf("AWAITING_CONSENT after authorisation mismatch (-want +got):\n%s", diff)
	}

	checkErr(t, "clear B", s.ClearAttention(ctx, "B", t0.Add(10*time.Minute)), nil)
	checkErr(t, "clear unknown", s.ClearAttention(ctx, "X", t0), linkstore.ErrNotFound)
	want = []linkstore.Attention{due("C", linkstore.AwaitingConsent, 20*time.Minute)}
	if diff := cmp.Diff(want, list(linkstore.AwaitingConsent, t0.Add(time.Hour), 0)); diff != "" {
		t.Errorf("AWAITING_CONSENT after clear mismatch (-want +got):\n%s", diff)
	}
}

// testClearAttentionConditional: the sweep clears only the entry it saw; a
// consent authorised meanwhile re-arms the link with a new due time, and
// that entry survives.
func testClearAttentionConditional(t *testing.T, s Store) {
	ctx := t.Context()
	mustCreate(t, s, fullLink("L"))
	seen := fullLink("L").ExpiresAt // AWAITING_CONSENT due at expiry
	auth := consentEvent("a1", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute))
	apply(t, s, auth, linkstore.Applied)
	rearmed := linkstore.Attention{LinkID: "L", Kind: linkstore.AwaitingReports, Due: ms(auth.ReceivedAt).Add(testGrace)}

	checkErr(t, "clear with the old due time", s.ClearAttention(ctx, "L", seen), linkstore.ErrAttentionChanged)
	got, err := s.ListAttention(ctx, linkstore.AwaitingReports, t0.Add(24*time.Hour), 0)
	checkErr(t, "list attention", err, nil)
	if diff := cmp.Diff([]linkstore.Attention{rearmed}, got); diff != "" {
		t.Errorf("re-armed entry after a stale clear mismatch (-want +got):\n%s", diff)
	}

	// The due time as ListAttention gave it, in any zone, matches.
	checkErr(t, "clear with the seen due time", s.ClearAttention(ctx, "L", rearmed.Due.In(t0.Location())), nil)
	got, err = s.ListAttention(ctx, linkstore.AwaitingReports, t0.Add(24*time.Hour), 0)
	checkErr(t, "list attention", err, nil)
	if len(got) != 0 {
		t.Errorf("AWAITING_REPORTS after clear = %+v, want none", got)
	}
	checkErr(t, "clear again", s.ClearAttention(ctx, "L", rearmed.Due), nil)
	if l := mustGet(t, s, "L"); len(l.Consents) != 1 || l.Owner != "user-a" {
		t.Errorf("link after clear = %+v, want it otherwise unchanged", l)
	}
}

func testPurge(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	req := linkstore.ReportRequest{RequestID: "req-1", ConsentID: "C", Products: []string{"all"}, RequestedAt: t0.Add(time.Minute), Trigger: linkstore.TriggerStream}
	checkErr(t, "record request", s.RecordReportRequest(ctx, "L", req), nil)
	rep := linkstore.Report{ProductReportID: "pr-1", ProductName: "pf_checking_account", RequestID: "req-1", ObjectKey: "reports/L/pr-1.json", Code: 200, Bytes: 10, ReceivedAt: t0.Add(2 * time.Minute)}
	checkErr(t, "record report", s.RecordReport(ctx, "L", rep), nil)
	before := mustGet(t, s, "L")

	purgedAt := t0.Add(time.Hour)
	was, err := s.Purge(ctx, "L", purgedAt)
	checkErr(t, "purge", err, nil)
	if diff := cmp.Diff(before, was); diff != "" {
		t.Errorf("Purge must return the link as it was (-want +got):\n%s", diff)
	}

	// The owner stays, so that only the owner reads the tombstone.
	tomb := &linkstore.Link{LinkID: "L", TaxIDType: linkstore.TaxIDUnknown, Owner: before.Owner, ExpiresAt: before.ExpiresAt, CreatedAt: before.CreatedAt,
		UpdatedAt: ms(purgedAt), PurgedAt: ms(purgedAt), PurgeReason: linkstore.PurgeConsentDeletedByUser}
	if diff := cmp.Diff(tomb, mustGet(t, s, "L")); diff != "" {
		t.Errorf("tombstone mismatch (-want +got):\n%s", diff)
	}
	if got := mustGet(t, s, "L").Status(t0); got != linkstore.StatusDeletedByUser {
		t.Errorf("Status = %q, want %q", got, linkstore.StatusDeletedByUser)
	}

	// Nothing comes back for a purged link.
	late := consentEvent("late", "L", "C", klavi.ConsentRevoked, t0.Add(2*time.Hour))
	late.TaxIDType, late.TaxID = linkstore.TaxIDPersonal, testCPF
	apply(t, s, late, linkstore.Recorded)
	apply(t, s, late, linkstore.Duplicate)
	apply(t, s, linkstore.EventChange{EventID: "late2", EventName: "product_generated_success", LinkID: "L", TaxID: testCPF}, linkstore.Recorded)
	checkErr(t, "report after purge", s.RecordReport(ctx, "L", linkstore.Report{ProductReportID: "pr-2"}), linkstore.ErrPurged)
	checkErr(t, "request after purge", s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{RequestID: "req-2"}), linkstore.ErrPurged)
	checkErr(t, "claim after purge", s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0), linkstore.ErrNotFound)
	checkErr(t, "create after purge", s.CreateLink(ctx, fullLink("L")), linkstore.ErrDuplicate)
	if diff := cmp.Diff(tomb, mustGet(t, s, "L")); diff != "" {
		t.Errorf("tombstone changed by later writes (-want +got):\n%s", diff)
	}
	for _, kind := range []linkstore.AttentionKind{linkstore.AwaitingConsent, linkstore.AwaitingReports} {
		att, err := s.ListAttention(ctx, kind, t0.Add(24*time.Hour), 0)
		checkErr(t, "list attention", err, nil)
		if len(att) != 0 {
			t.Errorf("%s after purge = %+v, want none", kind, att)
		}
	}

	// Purging again is harmless and keeps the first PurgedAt.
	again, err := s.Purge(ctx, "L", purgedAt.Add(time.Hour))
	checkErr(t, "purge again", err, nil)
	if !again.PurgedAt.Equal(ms(purgedAt)) || again.TaxID != "" || len(again.Reports) != 0 {
		t.Errorf("second purge returned %+v, want the tombstone", again)
	}
	_, err = s.Purge(ctx, "X", purgedAt)
	checkErr(t, "purge unknown", err, linkstore.ErrNotFound)
}

func testCheckLink(t *testing.T, s Store) {
	ctx := t.Context()
	checkErr(t, "CheckLink(unknown)", s.CheckLink(ctx, "nope"), linkstore.ErrNotFound)
	mustCreate(t, s, fullLink("L-check"))
	checkErr(t, "CheckLink(active)", s.CheckLink(ctx, "L-check"), nil)
	if _, err := s.Purge(ctx, "L-check", t0.Add(time.Hour)); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	checkErr(t, "CheckLink(purged)", s.CheckLink(ctx, "L-check"), linkstore.ErrPurged)
}

func testClaimRevoke(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	apply(t, s, consentEvent("started", "L", "D", klavi.ConsentStarted, t0), linkstore.Applied)
	lease := 30 * time.Second

	checkErr(t, "claim unknown link", s.ClaimRevoke(ctx, "X", "C", lease, t0), linkstore.ErrNotFound)
	checkErr(t, "claim unknown consent", s.ClaimRevoke(ctx, "L", "X", lease, t0), linkstore.ErrNotFound)
	checkErr(t, "claim started consent", s.ClaimRevoke(ctx, "L", "D", lease, t0), linkstore.ErrNotAuthorised)

	checkErr(t, "first claim", s.ClaimRevoke(ctx, "L", "C", lease, t0), nil)
	if got := mustGet(t, s, "L").Consents[0].RevokeLeaseUntil; !got.Equal(ms(t0.Add(lease))) {
		t.Errorf("RevokeLeaseUntil = %v, want %v", got, ms(t0.Add(lease)))
	}
	checkErr(t, "claim during lease", s.ClaimRevoke(ctx, "L", "C", lease, t0.Add(lease-time.Second)), linkstore.ErrLeaseHeld)
	// A claim that was never recorded (a Klavi failure) may be taken again
	// once it has run out.
	checkErr(t, "claim after lease", s.ClaimRevoke(ctx, "L", "C", lease, t0.Add(lease)), nil)
	// The automatic report request's own claim is another matter.
	checkErr(t, "report claim beside revoke claim", s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0), nil)

	at := t0.Add(lease + time.Second)
	checkErr(t, "record revoke", s.RecordRevoke(ctx, "L", "C", at), nil)
	c := mustGet(t, s, "L").Consents[0]
	if !c.RevokeRequestedAt.Equal(ms(at)) || !c.RevokeLeaseUntil.IsZero() || c.Status != klavi.ConsentAuthorised {
		t.Errorf("after RecordRevoke consent = %+v, want RevokeRequestedAt %v, no lease, still AUTHORISED", c, ms(at))
	}
	checkErr(t, "claim after record", s.ClaimRevoke(ctx, "L", "C", lease, t0.Add(time.Hour)), linkstore.ErrRevokeRequested)
	checkErr(t, "record again", s.RecordRevoke(ctx, "L", "C", at.Add(time.Hour)), nil)
	if got := mustGet(t, s, "L").Consents[0].RevokeRequestedAt; !got.Equal(ms(at)) {
		t.Errorf("RecordRevoke again moved RevokeRequestedAt to %v, want %v", got, ms(at))
	}
	checkErr(t, "record unknown consent", s.RecordRevoke(ctx, "L", "X", at), linkstore.ErrNotFound)

	// Klavi's consent_revoked settles the status; the mark stays.
	apply(t, s, consentEvent("revoked", "L", "C", klavi.ConsentRevoked, t0.Add(time.Hour)), linkstore.Applied)
	c = mustGet(t, s, "L").Consents[0]
	if c.Status != klavi.ConsentRevoked || !c.RevokeRequestedAt.Equal(ms(at)) {
		t.Errorf("after consent_revoked consent = %+v, want REVOKED with the mark", c)
	}
}

func testClaimRevokeConcurrent(t *testing.T, s Store) {
	authorisedConsent(t, s)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.ClaimRevoke(t.Context(), "L", "C", time.Minute, t0) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, linkstore.ErrLeaseHeld):
			t.Errorf("losing claim: %v, want ErrLeaseHeld", err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent revoke claims won, want 1", won)
	}
}

func testRequestedDeletion(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	checkErr(t, "request deletion of unknown", s.RequestDeletion(ctx, "X", t0), linkstore.ErrNotFound)
	at := t0.Add(time.Hour)
	checkErr(t, "request deletion", s.RequestDeletion(ctx, "L", at), nil)
	checkErr(t, "request deletion again", s.RequestDeletion(ctx, "L", at), nil)

	// Asked, not done: the link reads as before and is due for the sweep.
	l := mustGet(t, s, "L")
	if l.PurgeReason != linkstore.PurgeDeletedByRequest || !l.PurgedAt.IsZero() || l.TaxID != testCPF {
		t.Errorf("after RequestDeletion link = %+v, want the reason recorded and nothing purged", l)
	}
	if got := l.Status(at); got != linkstore.StatusAuthorised {
		t.Errorf("Status before the purge = %q, want %q", got, linkstore.StatusAuthorised)
	}
	att, err := s.ListAttention(ctx, linkstore.DeletionRequested, at.Add(time.Millisecond), 0)
	checkErr(t, "list attention", err, nil)
	want := []linkstore.Attention{{LinkID: "L", Kind: linkstore.DeletionRequested, Due: ms(at)}}
	if diff := cmp.Diff(want, att); diff != "" {
		t.Errorf("DELETION_REQUESTED entries (-want +got):\n%s", diff)
	}

	// The purge that finishes it records the fintech's reason.
	_, err = s.Purge(ctx, "L", at.Add(time.Minute))
	checkErr(t, "purge", err, nil)
	l = mustGet(t, s, "L")
	if l.PurgeReason != linkstore.PurgeDeletedByRequest || l.Owner != "user-a" || l.TaxID != "" || len(l.Consents) != 0 {
		t.Errorf("tombstone = %+v, want reason deleted_by_request, the owner, nothing else", l)
	}
	if got := l.Status(at); got != linkstore.StatusDeleted {
		t.Errorf("Status = %q, want %q", got, linkstore.StatusDeleted)
	}
	att, err = s.ListAttention(ctx, linkstore.DeletionRequested, at.Add(24*time.Hour), 0)
	checkErr(t, "list attention", err, nil)
	if len(att) != 0 {
		t.Errorf("DELETION_REQUESTED after the purge = %+v, want none", att)
	}
	checkErr(t, "request deletion after purge", s.RequestDeletion(ctx, "L", at), linkstore.ErrPurged)
	// A late consent_deleted_by_user does not change the reason.
	_, err = s.Purge(ctx, "L", at.Add(2*time.Hour))
	checkErr(t, "purge again", err, nil)
	if got := mustGet(t, s, "L").PurgeReason; got != linkstore.PurgeDeletedByRequest {
		t.Errorf("PurgeReason after a second purge = %q", got)
	}
}

// checkCooldown fails t unless err is a cool-down running until until.
func checkCooldown(t *testing.T, what string, err error, until time.Time) {
	t.Helper()
	checkErr(t, what, err, linkstore.ErrCoolingDown)
	var ce *linkstore.CooldownError
	if !errors.As(err, &ce) || !ce.Until.Equal(ms(until)) {
		t.Errorf("%s: cool-down until %v, want %v", what, ce, ms(until))
	}
}

func testManualCooldown(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	before := mustGet(t, s, "L")
	const cd = 10 * time.Minute
	products := []string{"pf_checking_account", "pf_credit_card"}
	checkErr(t, "first claim", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0), nil)
	checkCooldown(t, "same request a minute later", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(time.Minute)), t0.Add(cd))
	// The same set in another order, with a repeat, is the same request.
	reordered := []string{"pf_credit_card", "pf_checking_account", "pf_credit_card"}
	checkCooldown(t, "same products reordered", s.ClaimManualRequest(ctx, "L", "C", reordered, cd, t0.Add(time.Minute)), t0.Add(cd))
	checkErr(t, "other products", s.ClaimManualRequest(ctx, "L", "C", []string{"pf_checking_account"}, cd, t0.Add(time.Minute)), nil)
	checkErr(t, "other consent", s.ClaimManualRequest(ctx, "L", "C2", products, cd, t0.Add(time.Minute)), nil)
	checkCooldown(t, "just before the end", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(cd-time.Millisecond)), t0.Add(cd))
	checkErr(t, "at the end", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(cd)), nil)
	checkCooldown(t, "after the second claim", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(cd+time.Second)), t0.Add(2*cd))

	// Releasing another claim's end leaves the running one alone; releasing
	// the running one frees the request at once.
	checkErr(t, "release a stale claim", s.ReleaseManualRequest(ctx, "L", "C", products, t0.Add(cd)), nil)
	checkCooldown(t, "after a stale release", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(cd+time.Second)), t0.Add(2*cd))
	checkErr(t, "release", s.ReleaseManualRequest(ctx, "L", "C", products, t0.Add(2*cd)), nil)
	checkErr(t, "claim after release", s.ClaimManualRequest(ctx, "L", "C", products, cd, t0.Add(cd+2*time.Second)), nil)
	checkErr(t, "release of nothing", s.ReleaseManualRequest(ctx, "L", "C9", products, t0), nil)

	// A claim is no part of the link.
	if diff := cmp.Diff(before, mustGet(t, s, "L")); diff != "" {
		t.Errorf("claims changed the link (-before +after):\n%s", diff)
	}
	checkErr(t, "claim for an unknown link", s.ClaimManualRequest(ctx, "X", "C", products, cd, t0), linkstore.ErrNotFound)
	checkErr(t, "claim without consent", s.ClaimManualRequest(ctx, "L", "", products, cd, t0), linkstore.ErrEmptyID)
}

// Concurrent claims of the same request, as from several instances, get
// exactly one success.
func testManualCooldownConcurrent(t *testing.T, s Store) {
	authorisedConsent(t, s)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.ClaimManualRequest(t.Context(), "L", "C", []string{"all"}, 10*time.Minute, t0.Add(time.Duration(i)*time.Millisecond))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		checkErr(t, "losing claim", err, linkstore.ErrCoolingDown)
	}
	if won != 1 {
		t.Errorf("winning claims = %d, want 1", won)
	}
}

// A purged link takes no claim, and purging removes the running ones.
func testManualCooldownPurged(t *testing.T, s Store) {
	ctx := t.Context()
	authorisedConsent(t, s)
	checkErr(t, "claim", s.ClaimManualRequest(ctx, "L", "C", []string{"all"}, time.Hour, t0), nil)
	_, err := s.Purge(ctx, "L", t0.Add(time.Minute))
	checkErr(t, "purge", err, nil)
	checkErr(t, "claim after purge", s.ClaimManualRequest(ctx, "L", "C", []string{"all"}, time.Hour, t0.Add(2*time.Minute)), linkstore.ErrPurged)
}
