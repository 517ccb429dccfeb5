package reports

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

// hookStore runs hooks around the fake store's reads and record writes
// and counts the writes.
type hookStore struct {
	*reportstest.Store
	beforeGet    func(ctx context.Context)
	beforeRecord func(ctx context.Context, attempt int) error

	mu      sync.Mutex
	records int
}

func (s *hookStore) GetLink(ctx context.Context, linkID string) (*linkstore.Link, error) {
	if s.beforeGet != nil {
		s.beforeGet(ctx)
	}
	return s.Store.GetLink(ctx, linkID)
}

func (s *hookStore) RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error {
	s.mu.Lock()
	s.records++
	attempt := s.records
	s.mu.Unlock()
	if s.beforeRecord != nil {
		if err := s.beforeRecord(ctx, attempt); err != nil {
			return err
		}
	}
	return s.Store.RecordReportRequest(ctx, linkID, r)
}

func (s *hookStore) recordCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// newHookedEnv is newEnv with the handler's store wrapped in a hookStore.
func newHookedEnv(t *testing.T, mod func(*Config)) (*env, *hookStore) {
	t.Helper()
	e := newEnv(t, mod)
	hs := &hookStore{Store: e.store}
	e.h.store = hs
	return e, hs
}

func TestRequestForConsentTooCloseToDeadline(t *testing.T) {
	tests := []struct {
		name string
		left time.Duration
		mod  func(*Config)
	}{
		{name: "2s left, defaults", left: 2 * time.Second},
		{name: "inside a configured reserve", left: 11 * time.Second, mod: func(c *Config) { c.RecordReserve = 10 * time.Second }},
		{name: "below a configured minimum call", left: 10 * time.Second, mod: func(c *Config) { c.MinCallTime = 8 * time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mod)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			ctx, cancel := context.WithTimeout(t.Context(), tc.left)
			defer cancel()

			id, err := e.h.RequestForConsent(ctx, "l-1", "c-1", linkstore.TriggerStream)
			if id != "" || !errors.Is(err, ErrDeadlineNear) || errors.Is(err, ErrPermanent) || errors.Is(err, ErrInProgress) {
				t.Fatalf("RequestForConsent = %q, %v; want \"\" and a temporary ErrDeadlineNear", id, err)
			}
			if n := len(e.klavi.Calls()); n != 0 {
				t.Errorf("klavi calls = %d, want 0", n)
			}
			c := getLink(t, e.store.MemoryStore, "l-1").Consents[0]
			if !c.LeaseUntil.IsZero() || c.RequestID != "" {
				t.Errorf("consent lease %v, request %q; want not claimed, no request", c.LeaseUntil, c.RequestID)
			}
			if got := e.metrics.Sum("ReportRequestsFailed", map[string]string{"Reason": ReasonDeadlineNear}); got != 1 {
				t.Errorf("ReportRequestsFailed{deadline_near} = %v, want 1", got)
			}

			// No lease was taken: the next invocation makes the request at once.
			if id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream); err != nil || id != "req-1" {
				t.Fatalf("next invocation: RequestForConsent = %q, %v; want req-1, nil", id, err)
			}
		})
	}
}

func TestRequestForConsentDeadlineNearAfterClaim(t *testing.T) {
	e, hs := newHookedEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	ctx := reportstest.NewBudgetCtx(t, 30*time.Second)
	hs.beforeGet = func(context.Context) { ctx.Spend(26 * time.Second) }

	_, err := e.h.RequestForConsent(ctx, "l-1", "c-1", linkstore.TriggerStream)
	if !errors.Is(err, ErrDeadlineNear) || errors.Is(err, ErrPermanent) {
		t.Fatalf("error = %v, want a temporary ErrDeadlineNear", err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
	// Claimed, so nobody asks until the lease has run out.
	c := getLink(t, e.store.MemoryStore, "l-1").Consents[0]
	if c.LeaseUntil.IsZero() || c.RequestID != "" {
		t.Errorf("consent lease %v, request %q; want claimed, no request", c.LeaseUntil, c.RequestID)
	}
}

func TestRequestForConsentCallEndsBeforeDeadline(t *testing.T) {
	const reserve = 20 * time.Second
	e := newEnv(t, func(c *Config) { c.RecordReserve = reserve })
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	deadline, _ := ctx.Deadline()

	if _, err := e.h.RequestForConsent(ctx, "l-1", "c-1", linkstore.TriggerStream); err != nil {
		t.Fatalf("RequestForConsent: %v", err)
	}
	calls := e.klavi.Calls()
	if len(calls) != 1 {
		t.Fatalf("klavi calls = %d, want 1", len(calls))
	}
	// Half the reserve as slack for the time the handler itself took.
	if !calls[0].HasDeadline || calls[0].Deadline.After(deadline.Add(-reserve/2)) {
		t.Errorf("klavi call deadline = %v (set %v), want the reserve of %v kept before the invocation's %v",
			calls[0].Deadline, calls[0].HasDeadline, reserve, deadline)
	}
}

func TestRecordLandsAfterInvocationEnds(t *testing.T) {
	e, hs := newHookedEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Klavi accepts just as the invocation's context ends.
	e.klavi.Answer = func(int, klavi.TaxIDKind, klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		cancel()
		return &klavi.ReportRequestAccepted{RequestID: "req-late"}, nil
	}
	hs.beforeRecord = func(rctx context.Context, _ int) error {
		if err := rctx.Err(); err != nil {
			t.Errorf("record context is done (%v), want one that outlives the invocation's", err)
			return fmt.Errorf("record: %w", err)
		}
		if _, ok := rctx.Deadline(); !ok {
			t.Errorf("record context has no deadline, want its own timeout")
		}
		return nil
	}

	id, err := e.h.RequestForConsent(ctx, "l-1", "c-1", linkstore.TriggerStream)
	if err != nil || id != "req-late" {
		t.Fatalf("RequestForConsent = %q, %v; want req-late, nil", id, err)
	}
	if ctx.Err() == nil {
		t.Fatalf("the invocation's context is not done; the test does not cover the late answer")
	}
	c := getLink(t, e.store.MemoryStore, "l-1").Consents[0]
	if c.RequestID != "req-late" || !c.LeaseUntil.IsZero() {
		t.Errorf("consent request %q, lease %v; want req-late recorded and the lease ended", c.RequestID, c.LeaseUntil)
	}
}

func TestRecordRetries(t *testing.T) {
	transient := errors.New("dynamodb: throttled")
	tests := []struct {
		name         string
		errs         []error // of the attempts, in order; nil once exhausted
		wantAttempts int
		wantErr      bool
		wantRecorded bool
	}{
		{name: "lands first time", wantAttempts: 1, wantRecorded: true},
		{name: "transient twice, then lands", errs: []error{transient, transient}, wantAttempts: 3, wantRecorded: true},
		{name: "transient every time", errs: []error{transient, transient, transient, transient}, wantAttempts: 3, wantErr: true},
		{name: "duplicate is not tried again", errs: []error{fmt.Errorf("record: %w", linkstore.ErrDuplicate)}, wantAttempts: 1},
		{name: "purged is not tried again", errs: []error{fmt.Errorf("record: %w", linkstore.ErrPurged)}, wantAttempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, hs := newHookedEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			hs.beforeRecord = func(_ context.Context, attempt int) error {
				if attempt <= len(tc.errs) {
					return tc.errs[attempt-1]
				}
				return nil
			}

			id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
			if id != "req-1" || (err != nil) != tc.wantErr {
				t.Errorf("RequestForConsent = %q, %v; want req-1, error %v", id, err, tc.wantErr)
			}
			if got := hs.recordCalls(); got != tc.wantAttempts {
				t.Errorf("record attempts = %d, want %d", got, tc.wantAttempts)
			}
			if got := getLink(t, e.store.MemoryStore, "l-1").Consents[0].RequestID; (got == "req-1") != tc.wantRecorded {
				t.Errorf("consent request = %q, want recorded %v", got, tc.wantRecorded)
			}
			if n := len(e.klavi.Calls()); n != 1 {
				t.Errorf("klavi calls = %d, want 1: only the store write is repeated", n)
			}
		})
	}
}
