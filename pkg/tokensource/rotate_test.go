package tokensource

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// refreshingAuth is an authenticator that can also refresh, like
// *klavi.Client.
type refreshingAuth struct {
	fakeAuth
	refreshFn func(token string) (klavi.Token, error)

	mu        sync.Mutex
	refreshed []string
}

func (r *refreshingAuth) Refresh(_ context.Context, token string) (klavi.Token, error) {
	r.mu.Lock()
	r.refreshed = append(r.refreshed, token)
	r.mu.Unlock()
	if r.refreshFn != nil {
		return r.refreshFn(token)
	}
	return klavi.Token{AccessToken: "refreshed-from-" + token, ExpiresIn: 30 * time.Minute}, nil
}

func newRefreshFixture(t *testing.T) (*fixture, *refreshingAuth) {
	t.Helper()
	auth := &refreshingAuth{}
	f := &fixture{sm: newFakeSecrets(), clock: &clock{now: t0}}
	f.auth = &auth.fakeAuth
	f.sm.set(credsID, credentialsJSON(t))
	src, err := New(f.sm, auth, Config{CredentialsSecretID: credsID, TokenSecretID: tokenID, Now: f.clock.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.src = src
	return f, auth
}

func TestRotateRefreshesAValidToken(t *testing.T) {
	f, auth := newRefreshFixture(t)
	f.sm.set(tokenID, tokenJSON(t, "current", t0.Add(10*time.Minute)))

	expiresAt, err := f.src.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if f.auth.count() != 0 {
		t.Errorf("/auth calls = %d, want 0: a valid token is refreshed, not re-authenticated", f.auth.count())
	}
	if len(auth.refreshed) != 1 || auth.refreshed[0] != "current" {
		t.Errorf("refreshed tokens = %v, want [current]", auth.refreshed)
	}
	if want := t0.Add(30 * time.Minute); !expiresAt.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", expiresAt, want)
	}
	if got := f.token(t); got != "refreshed-from-current" {
		t.Errorf("served token = %q, want the refreshed one", got)
	}

	// The next scheduled run refreshes the token it wrote, from memory.
	f.clock.Advance(20 * time.Minute)
	if _, err := f.src.Rotate(t.Context()); err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if len(auth.refreshed) != 2 || auth.refreshed[1] != "refreshed-from-current" || f.auth.count() != 0 {
		t.Errorf("second run refreshed %v with %d /auth calls; want the rotated token and 0", auth.refreshed, f.auth.count())
	}
}

func TestRotateFallsBackToAuth(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture, a *refreshingAuth)
		refresh int // refresh attempts expected
	}{
		{"no token anywhere", func(*fixture, *refreshingAuth) {}, 0},
		{"token in the secret expired", func(f *fixture, _ *refreshingAuth) {
			f.sm.set(tokenID, tokenJSON(t, "old", t0.Add(-time.Minute)))
		}, 0},
		{"refresh rejected", func(f *fixture, a *refreshingAuth) {
			f.sm.set(tokenID, tokenJSON(t, "current", t0.Add(10*time.Minute)))
			a.refreshFn = func(string) (klavi.Token, error) { return klavi.Token{}, klavi.ErrUnauthorized }
		}, 1},
		{"refresh answers no token", func(f *fixture, a *refreshingAuth) {
			f.sm.set(tokenID, tokenJSON(t, "current", t0.Add(10*time.Minute)))
			a.refreshFn = func(string) (klavi.Token, error) { return klavi.Token{}, nil }
		}, 1},
		{"refresh endpoint down", func(f *fixture, a *refreshingAuth) {
			f.sm.set(tokenID, tokenJSON(t, "current", t0.Add(10*time.Minute)))
			a.refreshFn = func(string) (klavi.Token, error) { return klavi.Token{}, errors.New("503") }
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, a := newRefreshFixture(t)
			tc.setup(f, a)
			if _, err := f.src.Rotate(t.Context()); err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if f.auth.count() != 1 {
				t.Errorf("/auth calls = %d, want 1", f.auth.count())
			}
			if len(a.refreshed) != tc.refresh {
				t.Errorf("refresh attempts = %d, want %d", len(a.refreshed), tc.refresh)
			}
			if n := f.sm.putCount(tokenID); n != 1 {
				t.Errorf("token secret writes = %d, want 1", n)
			}
		})
	}
}

func TestReloadSecretKey(t *testing.T) {
	f := newFixture(t)
	if _, err := f.src.SecretKey(t.Context()); err != nil {
		t.Fatalf("SecretKey: %v", err)
	}
	f.sm.set(credsID, `{"accessKey":"ak","secretKey":"rotated-secret"}`)

	// Within MinKeyReload of the last read: no new read.
	f.clock.Advance(MinKeyReload / 2)
	if key, err := f.src.ReloadSecretKey(t.Context()); !errors.Is(err, ErrReloadTooSoon) || key != nil || f.sm.getCount(credsID) != 1 {
		t.Fatalf("early reload = %q, %v after %d reads; want ErrReloadTooSoon and 1 read", key, err, f.sm.getCount(credsID))
	}
	if key, _ := f.src.SecretKey(t.Context()); string(key) != secretKey {
		t.Fatalf("SecretKey after an early reload = %q, want the cached key", key)
	}
	// Later: one new read, the rotated key, then cached again.
	f.clock.Advance(MinKeyReload)
	key, err := f.src.ReloadSecretKey(t.Context())
	if err != nil || string(key) != "rotated-secret" || f.sm.getCount(credsID) != 2 {
		t.Fatalf("reload = %q, %v after %d reads; want the rotated key and 2 reads", key, err, f.sm.getCount(credsID))
	}
	if key, _ := f.src.SecretKey(t.Context()); string(key) != "rotated-secret" || f.sm.getCount(credsID) != 2 {
		t.Errorf("after reload SecretKey = %q with %d reads; want the rotated key from memory", key, f.sm.getCount(credsID))
	}
}

// The tests below run in a synctest bubble with the source on its default
// clock (time.Now), so time moves only when the test sleeps.

// newBubbleSource returns a source on the real clock over sm, with the key
// already read once.
func newBubbleSource(t *testing.T, sm *fakeSecrets) *Source {
	t.Helper()
	sm.set(credsID, credentialsJSON(t))
	src, err := New(sm, &fakeAuth{}, Config{CredentialsSecretID: credsID, TokenSecretID: tokenID})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if key, err := src.SecretKey(t.Context()); err != nil || string(key) != secretKey {
		t.Fatalf("SecretKey = %v, want the stored key", err)
	}
	return src
}

// A failed reload keeps the cached key, and the next read waits
// MinKeyReload whatever the outcome of the last one.
func TestReloadSecretKeyFailureKeepsKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := newFakeSecrets()
		src := newBubbleSource(t, sm)
		var failing atomic.Bool
		sm.getFn = func(_ context.Context, id string) (*secretsmanager.GetSecretValueOutput, error) {
			if failing.Load() {
				return nil, errors.New("throttled")
			}
			v, _ := sm.value(id)
			return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
		}
		failing.Store(true)

		time.Sleep(MinKeyReload)
		if _, err := src.ReloadSecretKey(t.Context()); err == nil || errors.Is(err, ErrReloadTooSoon) {
			t.Fatalf("reload with Secrets Manager failing = %v, want the read's error", err)
		}
		if key, err := src.SecretKey(t.Context()); err != nil || string(key) != secretKey {
			t.Fatalf("SecretKey after a failed reload = %v (key kept: %v), want the cached key", err, string(key) == secretKey)
		}
		for range 100 {
			if _, err := src.ReloadSecretKey(t.Context()); !errors.Is(err, ErrReloadTooSoon) {
				t.Fatalf("reload right after a failed one = %v, want ErrReloadTooSoon", err)
			}
		}
		if got := sm.getCount(credsID); got != 2 {
			t.Fatalf("credentials reads = %d, want 2 (the first read and one failed reload)", got)
		}

		time.Sleep(MinKeyReload)
		failing.Store(false)
		if key, err := src.ReloadSecretKey(t.Context()); err != nil || string(key) != secretKey {
			t.Fatalf("reload once Secrets Manager is back = %v, want the key", err)
		}
		if got := sm.getCount(credsID); got != 3 {
			t.Errorf("credentials reads = %d, want 3", got)
		}
	})
}

// Concurrent reloads make one read between them.
func TestReloadSecretKeyConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := newFakeSecrets()
		src := newBubbleSource(t, sm)
		time.Sleep(MinKeyReload)
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() { _, _ = src.ReloadSecretKey(t.Context()) })
		}
		wg.Wait()
		if got := sm.getCount(credsID); got != 2 {
			t.Errorf("credentials reads = %d, want 2 (the first read and one reload)", got)
		}
	})
}

// Credentials past their TTL are read again, but a failed read keeps them
// in use and the next read waits MinKeyReload.
func TestSecretKeyExpiredCacheDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := newFakeSecrets()
		src := newBubbleSource(t, sm)
		sm.getFn = func(context.Context, string) (*secretsmanager.GetSecretValueOutput, error) {
			return nil, errors.New("service unavailable")
		}
		time.Sleep(DefaultCredentialsTTL)
		for range 50 {
			if key, err := src.SecretKey(t.Context()); err != nil || string(key) != secretKey {
				t.Fatalf("SecretKey past its TTL during an outage = %v (key kept: %v), want the held key", err, string(key) == secretKey)
			}
		}
		if got := sm.getCount(credsID); got != 2 {
			t.Fatalf("credentials reads = %d, want 2 (the first read and one failed refresh)", got)
		}
		time.Sleep(MinKeyReload)
		if _, err := src.SecretKey(t.Context()); err != nil {
			t.Fatalf("SecretKey = %v, want the held key", err)
		}
		if got := sm.getCount(credsID); got != 3 {
			t.Errorf("credentials reads = %d, want 3 (one more try after MinKeyReload)", got)
		}
	})
}
