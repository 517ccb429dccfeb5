package devserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// fakeAuth hands out tok-1, tok-2, ... and counts calls; release, when
// set, holds every call until it is closed.
type fakeAuth struct {
	mu       sync.Mutex
	calls    int
	lifetime time.Duration
	err      error
	release  chan struct{}
	creds    []klavi.Credentials
}

func (f *fakeAuth) Auth(ctx context.Context, c klavi.Credentials) (klavi.Token, error) {
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return klavi.Token{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.creds = append(f.creds, c)
	if f.err != nil {
		return klavi.Token{}, f.err
	}
	return klavi.Token{AccessToken: fmt.Sprintf("tok-%d", f.calls), ExpiresIn: f.lifetime}, nil
}

func (f *fakeAuth) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestMemoryTokens(t *testing.T) {
	creds := klavi.Credentials{AccessKey: "ak", SecretKey: "sk-secret"}
	auth := &fakeAuth{lifetime: 30 * time.Minute}
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	m := newMemoryTokens(auth, creds)
	m.now = func() time.Time { return now }
	ctx := t.Context()

	token := func(want string, wantCalls int) {
		t.Helper()
		got, err := m.Token(ctx)
		if err != nil || got != want {
			t.Fatalf("Token = %q, %v; want %q", got, err, want)
		}
		if n := auth.count(); n != wantCalls {
			t.Fatalf("%d /auth calls, want %d", n, wantCalls)
		}
	}
	token("tok-1", 1)
	token("tok-1", 1) // cached

	m.Invalidate("tok-other")
	token("tok-1", 1) // another token: ignored
	m.Invalidate("tok-1")
	token("tok-2", 2)

	now = now.Add(27 * time.Minute) // 3 minutes left: still served
	token("tok-2", 2)
	now = now.Add(2 * time.Minute) // 1 minute left: renewed
	token("tok-3", 3)

	exp, err := m.Rotate(ctx)
	if err != nil || !exp.Equal(now.Add(30*time.Minute)) {
		t.Errorf("Rotate = %v, %v; want %v", exp, err, now.Add(30*time.Minute))
	}
	token("tok-4", 4)

	key, err := m.SecretKey(ctx)
	if err != nil || string(key) != "sk-secret" {
		t.Errorf("SecretKey = %q, %v", key, err)
	}
	key[0] = 'X'
	if again, _ := m.SecretKey(ctx); string(again) != "sk-secret" {
		t.Errorf("SecretKey after the caller changed its copy = %q", again)
	}
	for i, c := range auth.creds {
		if c != creds {
			t.Errorf("/auth call %d used other credentials", i+1)
		}
	}
}

func TestMemoryTokensConcurrentRefreshIsOne(t *testing.T) {
	auth := &fakeAuth{release: make(chan struct{})}
	m := newMemoryTokens(auth, klavi.Credentials{AccessKey: "ak", SecretKey: "sk"})
	const callers = 8
	var wg sync.WaitGroup
	got := make([]string, callers)
	for i := range callers {
		wg.Go(func() {
			tok, err := m.Token(t.Context())
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			got[i] = tok
		})
	}
	// Every caller is either waiting on the shared refresh or will find
	// its result cached: either way one /auth call.
	close(auth.release)
	wg.Wait()
	if n := auth.count(); n != 1 {
		t.Errorf("%d /auth calls for %d concurrent callers, want 1", n, callers)
	}
	for i, tok := range got {
		if tok != "tok-1" {
			t.Errorf("caller %d got %q, want tok-1", i, tok)
		}
	}
}

func TestMemoryTokensFailure(t *testing.T) {
	auth := &fakeAuth{err: klavi.ErrUnauthorized}
	m := newMemoryTokens(auth, klavi.Credentials{AccessKey: "ak-visible", SecretKey: "sk-never-shown"})
	_, err := m.Token(t.Context())
	if !errors.Is(err, klavi.ErrUnauthorized) {
		t.Errorf("Token error = %v, want ErrUnauthorized", err)
	}
	if err != nil && strings.Contains(err.Error(), "sk-never-shown") {
		t.Errorf("error %q carries the secret key", err)
	}
	if _, err := m.Rotate(t.Context()); !errors.Is(err, klavi.ErrUnauthorized) {
		t.Errorf("Rotate error = %v, want ErrUnauthorized", err)
	}
	auth.mu.Lock()
	auth.err = nil
	auth.mu.Unlock()
	if tok, err := m.Token(t.Context()); err != nil || tok == "" {
		t.Errorf("Token after /auth recovered = %q, %v; want a token (failures are not kept)", tok, err)
	}

	none := newMemoryTokens(auth, klavi.Credentials{})
	if _, err := none.SecretKey(t.Context()); err == nil {
		t.Error("SecretKey without a configured key succeeded")
	}
}
