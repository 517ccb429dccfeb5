package devserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

// tokenSource is what the server needs of a token source: the Klavi
// client's TokenSource, the webhook HMAC key, and the scheduled renewal.
// memoryTokens and *tokensource.Source both are one.
type tokenSource interface {
	klavi.TokenSource
	SecretKey(ctx context.Context) ([]byte, error)
	Rotate(ctx context.Context) (time.Time, error)
}

var (
	_ tokenSource = (*memoryTokens)(nil)
	_ tokenSource = (*tokensource.Source)(nil)
)

// authenticator exchanges credentials for a token (Klavi /auth).
type authenticator interface {
	Auth(ctx context.Context, creds klavi.Credentials) (klavi.Token, error)
}

// memoryTokens keeps one Klavi token in memory, obtained from /auth with
// fixed credentials: the deployed token source without Secrets Manager.
// Concurrent refreshes collapse into one; a token Klavi rejected is
// dropped; Rotate renews it whatever its age, as the schedule does.
type memoryTokens struct {
	auth  authenticator
	creds klavi.Credentials
	now   func() time.Time

	flight singleflight.Group

	mu        sync.Mutex
	token     string
	expiresAt time.Time
}

func newMemoryTokens(auth authenticator, creds klavi.Credentials) *memoryTokens {
	return &memoryTokens{auth: auth, creds: creds, now: time.Now}
}

// Token returns the cached token while it has more than
// tokensource.DefaultRefreshBefore to live, else a new one.
func (m *memoryTokens) Token(ctx context.Context) (string, error) {
	if tok, ok := m.cached(); ok {
		return tok, nil
	}
	return m.refresh(ctx, false)
}

func (m *memoryTokens) cached() (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token == "" || !m.now().Before(m.expiresAt.Add(-tokensource.DefaultRefreshBefore)) {
		return "", false
	}
	return m.token, true
}

// Invalidate drops token if it is still the cached one.
func (m *memoryTokens) Invalidate(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if token != "" && m.token == token {
		m.token, m.expiresAt = "", time.Time{}
	}
}

// SecretKey returns the HMAC key of webhook signatures, a copy.
func (m *memoryTokens) SecretKey(context.Context) ([]byte, error) {
	if m.creds.SecretKey == "" {
		return nil, errors.New("no Klavi secret key configured")
	}
	return []byte(m.creds.SecretKey), nil
}

// Rotate gets a new token now and returns when it expires.
func (m *memoryTokens) Rotate(ctx context.Context) (time.Time, error) {
	if _, err := m.refresh(ctx, true); err != nil {
		return time.Time{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.expiresAt, nil
}

// refresh asks /auth once for every caller waiting at the same time. A
// refresh that is not forced first looks at the cache again: another one
// may have finished since the caller looked.
func (m *memoryTokens) refresh(ctx context.Context, force bool) (string, error) {
	key := "token"
	if force {
		key = "rotate"
	}
	ch := m.flight.DoChan(key, func() (any, error) {
		if tok, ok := m.cached(); ok && !force {
			return tok, nil
		}
		// Detached from the first caller, so that it giving up does not
		// fail the others; bounded all the same.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		tok, err := m.auth.Auth(actx, m.creds)
		if err != nil {
			return "", fmt.Errorf("klavi auth: %w", err)
		}
		if tok.AccessToken == "" {
			return "", errors.New("klavi auth: empty access token")
		}
		lifetime := tok.ExpiresIn
		if lifetime <= 0 {
			lifetime = tokensource.DefaultTokenLifetime
		}
		m.mu.Lock()
		m.token, m.expiresAt = tok.AccessToken, m.now().Add(lifetime)
		m.mu.Unlock()
		return tok.AccessToken, nil
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("get token: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}
