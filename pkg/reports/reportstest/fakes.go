// Package reportstest offers fakes for tests of the report service
// (package reports) and of its callers (the stream handler, the links API):
// a Klavi that records report requests, a link store with errors injected
// per method, a bucket of keys, a settable clock and an invocation context
// whose deadline a test moves.
package reportstest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// Clock is a settable Config.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Call is one call the fake Klavi received.
type Call struct {
	Kind        klavi.TaxIDKind
	Req         klavi.InstitutionDataRequest
	HasDeadline bool
	Deadline    time.Time
}

// Klavi records report requests. Answer, when set, decides the outcome of
// call n (from 1); otherwise every call is accepted as "req-<n>".
type Klavi struct {
	Answer func(n int, kind klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error)

	mu    sync.Mutex
	calls []Call
}

// RequestInstitutionData records the call and answers it.
func (f *Klavi) RequestInstitutionData(ctx context.Context, kind klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
	dl, ok := ctx.Deadline()
	f.mu.Lock()
	f.calls = append(f.calls, Call{Kind: kind, Req: r, HasDeadline: ok, Deadline: dl})
	n := len(f.calls)
	answer := f.Answer
	f.mu.Unlock()
	if answer != nil {
		return answer(n, kind, r)
	}
	return &klavi.ReportRequestAccepted{RequestID: fmt.Sprintf("req-%d", n), Message: "ok"}, nil
}

// Calls returns the calls received so far.
func (f *Klavi) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// FailWith makes every call fail with err.
func (f *Klavi) FailWith(err error) {
	f.Answer = func(int, klavi.TaxIDKind, klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		return nil, err
	}
}

// APIError builds the error the Klavi client returns for an HTTP answer.
func APIError(status, code int) error {
	return &klavi.APIError{HTTPStatus: status, StatusCode: code, Endpoint: "POST /data/v1/personal/institution-data"}
}

// Store is the memory store with errors injected per method: a non-nil
// error is returned instead of calling the store.
type Store struct {
	*linkstoretest.MemoryStore
	ClaimErr, GetErr, RecordErr, PurgeErr error
}

// ClaimAutoRequest fails with ClaimErr or claims in the memory store.
func (s *Store) ClaimAutoRequest(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error {
	if s.ClaimErr != nil {
		return s.ClaimErr
	}
	return s.MemoryStore.ClaimAutoRequest(ctx, linkID, consentID, lease, now)
}

// GetLink fails with GetErr or reads the memory store.
func (s *Store) GetLink(ctx context.Context, linkID string) (*linkstore.Link, error) {
	if s.GetErr != nil {
		return nil, s.GetErr
	}
	return s.MemoryStore.GetLink(ctx, linkID)
}

// RecordReportRequest fails with RecordErr or records in the memory store.
func (s *Store) RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error {
	if s.RecordErr != nil {
		return s.RecordErr
	}
	return s.MemoryStore.RecordReportRequest(ctx, linkID, r)
}

// Purge fails with PurgeErr or purges the memory store.
func (s *Store) Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error) {
	if s.PurgeErr != nil {
		return nil, s.PurgeErr
	}
	return s.MemoryStore.Purge(ctx, linkID, now)
}

// Objects is a bucket of keys. Err, when set, fails every deletion.
type Objects struct {
	Err error

	mu       sync.Mutex
	keys     map[string]bool
	prefixes []string // of every DeletePrefix call
}

// NewObjects returns a bucket holding keys.
func NewObjects(keys ...string) *Objects {
	o := &Objects{}
	o.Reset(keys...)
	return o
}

// DeletePrefix records the call, then fails with Err or deletes the keys
// under prefix and says how many.
func (o *Objects) DeletePrefix(_ context.Context, prefix string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prefixes = append(o.prefixes, prefix)
	if o.Err != nil {
		return 0, o.Err
	}
	n := 0
	for k := range o.keys {
		if strings.HasPrefix(k, prefix) {
			delete(o.keys, k)
			n++
		}
	}
	return n, nil
}

// Has reports whether the bucket holds key.
func (o *Objects) Has(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[key]
}

// Put adds keys to the bucket.
func (o *Objects) Put(keys ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range keys {
		o.keys[k] = true
	}
}

// Prefixes returns the prefixes of every DeletePrefix call so far.
func (o *Objects) Prefixes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.prefixes...)
}

// Reset makes keys the bucket's only objects.
func (o *Objects) Reset(keys ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keys = map[string]bool{}
	for _, k := range keys {
		o.keys[k] = true
	}
}

// BudgetCtx is an invocation context whose deadline stays a fixed time
// away from the moment it is asked; Spend shortens that time, as a slow
// call would, so that a test moves the deadline closer without waiting.
type BudgetCtx struct {
	context.Context
	mu   sync.Mutex
	left time.Duration
}

// NewBudgetCtx returns a context under t's whose deadline is left away.
func NewBudgetCtx(t testing.TB, left time.Duration) *BudgetCtx {
	t.Helper()
	return &BudgetCtx{Context: t.Context(), left: left}
}

// Deadline is left away from now.
func (c *BudgetCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.left), true
}

// Spend takes d off the time left.
func (c *BudgetCtx) Spend(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left -= d
}
