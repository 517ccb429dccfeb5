package reconcile

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// fakeRevoker stands in for Klavi's revoke endpoint; err, while set, fails
// every call.
type fakeRevoker struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeRevoker) RevokeConsent(_ context.Context, consentID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, consentID)
	return f.err
}

func (f *fakeRevoker) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeRevoker) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// noObjects is a report deleter for links that have no stored reports.
type noObjects struct{}

func (noObjects) DeletePrefix(context.Context, string) (int, error) { return 0, nil }

// deletionEnv is the in-memory deployment with the deletion service the
// route uses, wired into the sweep as its Deleter.
func deletionEnv(t *testing.T) (*env, *fakeRevoker, *revocation.Service) {
	t.Helper()
	e := newEnv(t)
	rev := &fakeRevoker{}
	purger := reports.New(nil, e.mem, noObjects{}, reports.Config{Now: e.clock})
	svc := revocation.New(rev, e.mem, purger, revocation.Config{Lease: time.Minute, Now: e.clock})
	e.cfg.Deleter = svc
	return e, rev, svc
}

// requestDeletion is DELETE /links/{linkId} as the route does it: the
// deletion service on the link as read.
func requestDeletion(t *testing.T, e *env, svc *revocation.Service, linkID string) error {
	t.Helper()
	_, err := svc.Delete(t.Context(), e.link(t, linkID))
	return err
}

// A deletion that Klavi's failure stopped before the purge is finished by
// the sweep: the consent is revoked again, then the link is purged with
// the fintech's reason, and it is off the list.
func TestSweepFinishesRequestedDeletion(t *testing.T) {
	e, rev, svc := deletionEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0.Add(time.Minute))
	e.requested(t, "l1", "c1", "req-0", t0.Add(time.Minute))

	rev.set(&klavi.APIError{StatusCode: 503})
	e.now = t0.Add(2 * time.Minute)
	if err := requestDeletion(t, e, svc, "l1"); !errors.Is(err, revocation.ErrIncomplete) {
		t.Fatalf("Delete = %v, want ErrIncomplete", err)
	}
	if l := e.link(t, "l1"); !l.PurgedAt.IsZero() || !l.DeletionRequested() {
		t.Fatalf("after the failed delete: purgedAt %v, reason %q; want a link waiting for its deletion", l.PurgedAt, l.PurgeReason)
	}

	// Klavi still fails: the link stays due, the run reports the failure.
	e.now = e.now.Add(2 * time.Minute) // past the revocation's lease
	sum, err := e.run(t)
	if err == nil {
		t.Error("Run with Klavi failing = nil error, want one (the only due link failed)")
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeletionFailed: 1}); diff != "" {
		t.Errorf("actions while Klavi fails (-got +want):\n%s", diff)
	}
	if l := e.link(t, "l1"); !l.PurgedAt.IsZero() || l.TaxID != cpfA {
		t.Fatalf("link purged although its consent is not revoked: %+v", l)
	}

	rev.set(nil)
	e.now = e.now.Add(2 * time.Minute)
	sum, err = e.run(t)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeleted: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(rev.Calls(), []string{"c1", "c1", "c1"}); diff != "" {
		t.Errorf("revocations asked of Klavi (-got +want):\n%s", diff)
	}
	l := e.link(t, "l1")
	if got := l.Status(e.now); got != linkstore.StatusDeleted || l.TaxID != "" || len(l.Consents) != 0 {
		t.Errorf("link = status %s, %d consents, tax id kept %v; want a DELETED tombstone", got, len(l.Consents), l.TaxID != "")
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("consent listings at Klavi = %d, want 0: a link being deleted is not reconciled", n)
	}
	if sum, err := e.run(t); err != nil || sum.Due != 0 {
		t.Errorf("next Run = %+v, %v; want nothing due", sum, err)
	}
}

// A consent authorised while the deletion waits (a late consent_authorised
// replaces the link's DELETION_REQUESTED entry with AWAITING_REPORTS) gets
// no report request: the sweep revokes it with the others and purges.
func TestSweepLateAuthorisationDuringDeletion(t *testing.T) {
	e, rev, svc := deletionEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0.Add(time.Minute))
	e.requested(t, "l1", "c1", "req-0", t0.Add(time.Minute))

	rev.set(&klavi.APIError{StatusCode: 502})
	e.now = t0.Add(2 * time.Minute)
	if err := requestDeletion(t, e, svc, "l1"); !errors.Is(err, revocation.ErrIncomplete) {
		t.Fatalf("Delete = %v, want ErrIncomplete", err)
	}
	e.event(t, "l1", "c2", klavi.ConsentAuthorised, t0.Add(3*time.Minute))
	rev.set(nil)

	// Past the report grace of the new authorisation, when the sweep
	// would otherwise request its reports.
	e.now = t0.Add(20 * time.Minute)
	sum, err := e.run(t)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeleted: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	if calls := e.req.Calls(); len(calls) != 0 {
		t.Errorf("report requests = %+v, want none for a link being deleted", calls)
	}
	got := rev.Calls()[1:] // after the failed first attempt on c1
	slices.Sort(got)
	if diff := cmp.Diff(got, []string{"c1", "c2"}); diff != "" {
		t.Errorf("revocations after the failure (-got +want):\n%s", diff)
	}
	if l := e.link(t, "l1"); l.Status(e.now) != linkstore.StatusDeleted {
		t.Errorf("link status = %s, want DELETED", l.Status(e.now))
	}
}

// Without a deleter the sweep cannot finish a deletion, and never
// pretends to: the link is neither reconciled as a live link nor dropped.
func TestSweepWithoutDeleterKeepsDeletion(t *testing.T) {
	e, rev, svc := deletionEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0.Add(time.Minute))
	rev.set(&klavi.APIError{StatusCode: 503})
	e.now = t0.Add(2 * time.Minute)
	if err := requestDeletion(t, e, svc, "l1"); !errors.Is(err, revocation.ErrIncomplete) {
		t.Fatalf("Delete = %v, want ErrIncomplete", err)
	}
	e.cfg.Deleter = nil
	e.now = t0.Add(30 * 24 * time.Hour) // far past GiveUpAfter
	sum, err := e.run(t)
	if err == nil {
		t.Error("Run = nil error, want the failure")
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeletionFailed: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	if calls := e.req.Calls(); len(calls) != 0 {
		t.Errorf("report requests = %+v, want none", calls)
	}
	due, err := e.mem.ListAttention(t.Context(), linkstore.DeletionRequested, e.now, 0)
	if err != nil || len(due) != 1 || due[0].LinkID != "l1" {
		t.Errorf("DELETION_REQUESTED entries = %+v, %v; want l1 still due", due, err)
	}
}
