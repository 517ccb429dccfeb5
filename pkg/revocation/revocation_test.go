package revocation

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

var testStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeKlavi records revocations; fail, when set, decides a consent's
// outcome.
type fakeKlavi struct {
	mu    sync.Mutex
	calls []string
	fail  func(consentID string) error
	// hold, when set, is waited on inside the call, to keep a claim live.
	hold chan struct{}
}

func (f *fakeKlavi) RevokeConsent(ctx context.Context, consentID string) error {
	f.mu.Lock()
	f.calls = append(f.calls, consentID)
	fail, hold := f.fail, f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if fail != nil {
		return fail(consentID)
	}
	return nil
}

func (f *fakeKlavi) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// objects is a report deleter that counts the prefixes it deleted.
type objects struct {
	mu       sync.Mutex
	prefixes []string
}

func (o *objects) DeletePrefix(_ context.Context, prefix string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prefixes = append(o.prefixes, prefix)
	return 1, nil
}

type env struct {
	store *linkstoretest.MemoryStore
	klavi *fakeKlavi
	objs  *objects
	svc   *Service
	now   time.Time
}

// newEnv builds link L with consents A and B AUTHORISED and R REJECTED.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{store: linkstoretest.NewMemory(), klavi: &fakeKlavi{}, objs: &objects{}, now: testStart}
	clock := func() time.Time { return e.now }
	purge := reports.New(nil, e.store, e.objs, reports.Config{Now: clock})
	e.svc = New(e.klavi, e.store, purge, Config{Lease: time.Minute, Now: clock})
	ctx := t.Context()
	if err := e.store.CreateLink(ctx, linkstore.Link{LinkID: "L", TaxIDType: linkstore.TaxIDPersonal, TaxID: "12345678909", Owner: "owner-1", CreatedAt: testStart}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		id     string
		status klavi.ConsentStatus
	}{{"A", klavi.ConsentAuthorised}, {"B", klavi.ConsentAuthorised}, {"R", klavi.ConsentRejected}} {
		_, err := e.store.ApplyEvent(ctx, linkstore.EventChange{
			EventID: "ev-" + c.id, EventName: "consent", EventTime: testStart.Add(time.Duration(i) * time.Second),
			LinkID: "L", ConsentID: c.id, InstitutionCode: "001", ConsentStatus: c.status,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) link(t *testing.T) *linkstore.Link {
	t.Helper()
	l, err := e.store.GetLink(t.Context(), "L")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func statuses(rs []ConsentResult) map[string]string {
	m := map[string]string{}
	for _, r := range rs {
		m[r.ConsentID] = r.Status
	}
	return m
}

func TestRevokeAsksKlaviOncePerAuthorisedConsent(t *testing.T) {
	e := newEnv(t)
	got, err := e.svc.Revoke(t.Context(), e.link(t))
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	want := map[string]string{"A": StatusRevokeRequested, "B": StatusRevokeRequested}
	if diff := cmp.Diff(want, statuses(got)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"A", "B"}, e.klavi.Calls()); diff != "" {
		t.Errorf("Klavi calls (-want +got):\n%s", diff)
	}
	// Again, before and after Klavi's consent_revoked: nothing new asked.
	again, err := e.svc.Revoke(t.Context(), e.link(t))
	if err != nil {
		t.Fatalf("Revoke again: %v", err)
	}
	if diff := cmp.Diff(want, statuses(again)); diff != "" {
		t.Errorf("statuses again (-want +got):\n%s", diff)
	}
	if _, err := e.store.ApplyEvent(t.Context(), linkstore.EventChange{EventID: "rev-A", LinkID: "L", ConsentID: "A", ConsentStatus: klavi.ConsentRevoked, EventTime: testStart.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	settled, err := e.svc.Revoke(t.Context(), e.link(t))
	if err != nil {
		t.Fatalf("Revoke after consent_revoked: %v", err)
	}
	if got := statuses(settled)["A"]; got != "REVOKED" {
		t.Errorf("A after consent_revoked = %q, want REVOKED", got)
	}
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("Klavi calls = %d, want still 2", n)
	}
}

func TestRevokeNoActiveConsent(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"A", "B"} {
		if _, err := e.store.ApplyEvent(t.Context(), linkstore.EventChange{EventID: "exp-" + id, LinkID: "L", ConsentID: id, ConsentStatus: klavi.ConsentExpired, EventTime: testStart.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.svc.Revoke(t.Context(), e.link(t))
	if !errors.Is(err, ErrNoActiveConsent) {
		t.Fatalf("Revoke = %v, want ErrNoActiveConsent", err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("Klavi calls = %d, want 0", n)
	}
}

func TestRevokeFailureIsRetried(t *testing.T) {
	e := newEnv(t)
	e.klavi.fail = func(id string) error {
		if id == "B" {
			return &klavi.APIError{HTTPStatus: 503}
		}
		return nil
	}
	got, err := e.svc.Revoke(t.Context(), e.link(t))
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got[1].ConsentID != "B" || got[1].Err == nil || got[1].Status != "AUTHORISED" || got[0].Err != nil {
		t.Fatalf("results = %+v, want B failed and AUTHORISED, A done", got)
	}
	// Within the lease the failed claim holds; after it, only B is asked.
	e.klavi.fail = nil
	e.now = e.now.Add(time.Minute)
	if _, err := e.svc.Revoke(t.Context(), e.link(t)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A", "B", "B"}, e.klavi.Calls()); diff != "" {
		t.Errorf("Klavi calls (-want +got):\n%s", diff)
	}
}

func TestRevokeConsentUnknownToKlaviIsDone(t *testing.T) {
	e := newEnv(t)
	e.klavi.fail = func(string) error { return &klavi.APIError{HTTPStatus: 404} }
	got, err := e.svc.Revoke(t.Context(), e.link(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Err != nil || r.Status != StatusRevokeRequested {
			t.Errorf("result %+v, want done", r)
		}
	}
	if c := e.link(t).Consents[0]; c.RevokeRequestedAt.IsZero() {
		t.Errorf("consent A not marked: %+v", c)
	}
}

func TestRevokeConcurrentCallsAskKlaviOnce(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := e.svc.Revoke(t.Context(), e.link(t)); err != nil {
				t.Errorf("Revoke: %v", err)
			}
		})
	}
	wg.Wait()
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("Klavi calls = %d, want 2 (one per authorised consent)", n)
	}
}

func TestDeleteRevokesThenPurges(t *testing.T) {
	e := newEnv(t)
	status, err := e.svc.Delete(t.Context(), e.link(t))
	if err != nil || status != linkstore.StatusDeleted {
		t.Fatalf("Delete = %q, %v; want DELETED", status, err)
	}
	if diff := cmp.Diff([]string{"A", "B"}, e.klavi.Calls()); diff != "" {
		t.Errorf("Klavi calls (-want +got):\n%s", diff)
	}
	l := e.link(t)
	if l.PurgedAt.IsZero() || l.PurgeReason != linkstore.PurgeDeletedByRequest || l.TaxID != "" || len(l.Consents) != 0 || l.Owner != "owner-1" {
		t.Errorf("link after delete = %+v, want a tombstone with reason deleted_by_request and the owner", l)
	}
	if len(e.objs.prefixes) == 0 {
		t.Error("no report objects deleted")
	}
	// Again: nothing new.
	status, err = e.svc.Delete(t.Context(), e.link(t))
	if err != nil || status != linkstore.StatusDeleted {
		t.Errorf("Delete again = %q, %v", status, err)
	}
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("Klavi calls = %d after a repeated delete, want 2", n)
	}
}

func TestDeleteKlaviFailureLeavesRetryableState(t *testing.T) {
	e := newEnv(t)
	e.klavi.fail = func(id string) error {
		if id == "B" {
			return &klavi.APIError{HTTPStatus: 500}
		}
		return nil
	}
	_, err := e.svc.Delete(t.Context(), e.link(t))
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Delete = %v, want ErrIncomplete", err)
	}
	l := e.link(t)
	if !l.PurgedAt.IsZero() || l.TaxID == "" || len(l.Consents) != 3 {
		t.Fatalf("link half purged after a failed delete: %+v", l)
	}
	if got := l.Status(e.now); got == linkstore.StatusDeleted {
		t.Errorf("Status = %q after a failed delete", got)
	}
	att, err := e.store.ListAttention(t.Context(), linkstore.DeletionRequested, e.now.Add(time.Second), 0)
	if err != nil || len(att) != 1 {
		t.Errorf("DELETION_REQUESTED entries = %+v, %v; want the link", att, err)
	}
	// The retry (a repeated DELETE or the sweep) asks Klavi for B only.
	e.klavi.fail = nil
	e.now = e.now.Add(time.Minute)
	status, err := e.svc.Delete(t.Context(), e.link(t))
	if err != nil || status != linkstore.StatusDeleted {
		t.Fatalf("Delete retry = %q, %v", status, err)
	}
	if diff := cmp.Diff([]string{"A", "B", "B"}, e.klavi.Calls()); diff != "" {
		t.Errorf("Klavi calls (-want +got):\n%s", diff)
	}
	if got := e.link(t).Status(e.now); got != linkstore.StatusDeleted {
		t.Errorf("Status = %q, want DELETED", got)
	}
}

func TestDeleteWhileRevokeInFlightDoesNotPurge(t *testing.T) {
	e := newEnv(t)
	held := make(chan struct{})
	e.klavi.hold = held
	done := make(chan error)
	go func() {
		_, err := e.svc.Delete(context.Background(), e.link(t))
		done <- err
	}()
	// Wait until the first call holds its claim on A, then let later
	// calls through.
	for len(e.klavi.Calls()) == 0 {
		time.Sleep(time.Millisecond)
	}
	e.klavi.mu.Lock()
	e.klavi.hold = nil
	e.klavi.mu.Unlock()

	_, err := e.svc.Delete(t.Context(), e.link(t))
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, ErrInFlight) {
		t.Errorf("concurrent Delete = %v, want ErrIncomplete with ErrInFlight", err)
	}
	if l := e.link(t); !l.PurgedAt.IsZero() {
		t.Error("purged while a revocation was in flight")
	}
	close(held)
	if err := <-done; err != nil {
		t.Fatalf("first Delete: %v", err)
	}
	if l := e.link(t); l.PurgedAt.IsZero() || l.PurgeReason != linkstore.PurgeDeletedByRequest {
		t.Errorf("after the first delete finished: %+v", l)
	}
	// A asked once; B once, by whichever call claimed it.
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("Klavi calls = %d, want 2", n)
	}
}
