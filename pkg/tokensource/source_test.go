package tokensource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

func TestNewValidates(t *testing.T) {
	sm, auth := newFakeSecrets(), &fakeAuth{}
	tests := []struct {
		name string
		sm   SecretsAPI
		auth authenticator
		cfg  Config
		want string // substring of the error; empty for success
	}{
		{name: "ok", sm: sm, auth: auth, cfg: Config{CredentialsSecretID: credsID, TokenSecretID: tokenID}},
		{name: "no credentials id", sm: sm, auth: auth, cfg: Config{TokenSecretID: tokenID}, want: "CredentialsSecretID"},
		{name: "no token id", sm: sm, auth: auth, cfg: Config{CredentialsSecretID: credsID}, want: "TokenSecretID"},
		{name: "no secrets client", auth: auth, cfg: Config{CredentialsSecretID: credsID, TokenSecretID: tokenID}, want: "secrets client"},
		{name: "no authenticator", sm: sm, cfg: Config{CredentialsSecretID: credsID, TokenSecretID: tokenID}, want: "authenticator"},
		{name: "negative refresh", sm: sm, auth: auth, cfg: Config{CredentialsSecretID: credsID, TokenSecretID: tokenID, RefreshBefore: -time.Second}, want: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := New(tc.sm, tc.auth, tc.cfg)
			if tc.want == "" {
				if err != nil || src == nil {
					t.Fatalf("New() = %v, %v; want a source", src, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTokenFromSecretThenWarm(t *testing.T) {
	f := newFixture(t)
	f.sm.set(tokenID, tokenJSON(t, "stored-token", t0.Add(30*time.Minute)))

	if got := f.token(t); got != "stored-token" {
		t.Fatalf("Token() = %q, want %q", got, "stored-token")
	}
	f.wantCalls(t, 1, 0, 0)

	f.sm.resetCounts()
	f.clock.Advance(27 * time.Minute) // still before expiresAt-RefreshBefore
	for range 10 {
		if got := f.token(t); got != "stored-token" {
			t.Fatalf("warm Token() = %q, want %q", got, "stored-token")
		}
	}
	f.wantCalls(t, 0, 0, 0)
}

func TestTokenConcurrentColdStart(t *testing.T) {
	tests := []struct {
		name        string
		tokenSecret bool // the token secret holds a valid token
		wantCreds   int
		wantAuth    int
	}{
		{name: "token secret holds a token", tokenSecret: true, wantCreds: 0, wantAuth: 0},
		{name: "token secret missing", tokenSecret: false, wantCreds: 1, wantAuth: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const callers = 50
			f := newFixture(t)
			if tc.tokenSecret {
				f.sm.set(tokenID, tokenJSON(t, "stored-token", t0.Add(30*time.Minute)))
			}
			// Hold the first read until every caller has started, so most
			// of them find the refresh in flight rather than finished.
			var started sync.WaitGroup
			started.Add(callers)
			inner := f.sm
			f.sm.getFn = func(ctx context.Context, id string) (*secretsmanager.GetSecretValueOutput, error) {
				started.Wait()
				v, ok := inner.value(id)
				if !ok {
					return nil, errNotFound()
				}
				return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
			}

			var wg sync.WaitGroup
			got := make([]string, callers)
			errs := make([]error, callers)
			for i := range callers {
				wg.Go(func() {
					started.Done()
					got[i], errs[i] = f.src.Token(t.Context())
				})
			}
			wg.Wait()

			for i := range callers {
				if errs[i] != nil {
					t.Fatalf("caller %d: Token() error = %v", i, errs[i])
				}
				if got[i] != got[0] || got[i] == "" {
					t.Fatalf("caller %d got %q, caller 0 got %q; want one shared token", i, got[i], got[0])
				}
			}
			f.wantCalls(t, 1, tc.wantCreds, tc.wantAuth)
		})
	}
}

func TestTokenRefreshesNearExpiry(t *testing.T) {
	f := newFixture(t)
	f.sm.set(tokenID, tokenJSON(t, "first", t0.Add(30*time.Minute)))
	f.token(t)

	// token-refresh has stored the next token; the first one is now within
	// RefreshBefore of its expiry.
	f.sm.set(tokenID, tokenJSON(t, "second", t0.Add(55*time.Minute)))
	f.clock.Advance(28*time.Minute + time.Second)
	if got := f.token(t); got != "second" {
		t.Fatalf("Token() near expiry = %q, want %q", got, "second")
	}
	f.wantCalls(t, 2, 0, 0)
}

func TestTokenGoesToKlaviWhenSecretUnusable(t *testing.T) {
	tests := []struct {
		name   string
		secret string // empty: no secret value at all
	}{
		{name: "missing"},
		{name: "not json", secret: "not json"},
		{name: "empty object", secret: "{}"},
		{name: "bad expiresAt", secret: `{"accessToken":"stored","expiresAt":"tomorrow"}`},
		{name: "expired", secret: `{"accessToken":"stored","expiresAt":"2026-03-01T11:00:00Z"}`},
		{name: "expiring within RefreshBefore", secret: `{"accessToken":"stored","expiresAt":"2026-03-01T12:01:59Z"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.secret != "" {
				f.sm.set(tokenID, tc.secret)
			}
			if got := f.token(t); got != "klavi-token-1" {
				t.Fatalf("Token() = %q, want %q", got, "klavi-token-1")
			}
			f.wantCalls(t, 1, 1, 1)
			if f.sm.putCount(tokenID) != 0 {
				t.Errorf("Token() wrote the token secret %d times, want 0", f.sm.putCount(tokenID))
			}
			if f.auth.creds[0] != (klavi.Credentials{AccessKey: accessKey, SecretKey: secretKey}) {
				t.Errorf("auth got credentials %+v, want those of the secret", f.auth.creds[0])
			}

			// The Klavi token is then served from memory.
			f.sm.resetCounts()
			f.auth.reset()
			if got := f.token(t); got != "klavi-token-1" {
				t.Fatalf("second Token() = %q, want %q", got, "klavi-token-1")
			}
			f.wantCalls(t, 0, 0, 0)
		})
	}
}

func TestInvalidate(t *testing.T) {
	tests := []struct {
		name        string
		invalidate  string
		secretAfter string // token in the secret when Token is called again
		want        string
		wantReads   int
		wantAuth    int
	}{
		{name: "secret has a newer token", invalidate: "stored", secretAfter: "newer", want: "newer", wantReads: 1, wantAuth: 0},
		{name: "secret still has the rejected token", invalidate: "stored", secretAfter: "stored", want: "klavi-token-1", wantReads: 1, wantAuth: 1},
		{name: "stale token is ignored", invalidate: "older", secretAfter: "newer", want: "stored", wantReads: 0, wantAuth: 0},
		{name: "empty token is ignored", invalidate: "", secretAfter: "newer", want: "stored", wantReads: 0, wantAuth: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.sm.set(tokenID, tokenJSON(t, "stored", t0.Add(30*time.Minute)))
			f.token(t)
			f.sm.resetCounts()

			f.sm.set(tokenID, tokenJSON(t, tc.secretAfter, t0.Add(30*time.Minute)))
			f.src.Invalidate(tc.invalidate)
			if got := f.token(t); got != tc.want {
				t.Fatalf("Token() after Invalidate(%q) = %q, want %q", tc.invalidate, got, tc.want)
			}
			if got := f.sm.getCount(tokenID); got != tc.wantReads {
				t.Errorf("token secret reads = %d, want %d", got, tc.wantReads)
			}
			if got := f.auth.count(); got != tc.wantAuth {
				t.Errorf("auth calls = %d, want %d", got, tc.wantAuth)
			}
		})
	}
}

func TestFailedRefreshIsRetried(t *testing.T) {
	tests := []struct {
		name string
		fail func(f *fixture) (restore func())
	}{
		{
			name: "auth fails",
			fail: func(f *fixture) func() {
				f.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) { return klavi.Token{}, errBoom }
				return func() { f.auth.fn = nil }
			},
		},
		{
			name: "token secret read fails",
			fail: func(f *fixture) func() {
				f.sm.getFn = func(context.Context, string) (*secretsmanager.GetSecretValueOutput, error) { return nil, errBoom }
				return func() { f.sm.getFn = nil }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			restore := tc.fail(f)
			if _, err := f.src.Token(t.Context()); !errors.Is(err, errBoom) {
				t.Fatalf("Token() error = %v, want %v", err, errBoom)
			}
			restore()
			if got := f.token(t); got == "" {
				t.Fatal("Token() after a failed refresh returned an empty token")
			}
		})
	}
}

func TestTokenHonoursContext(t *testing.T) {
	t.Run("already cancelled", func(t *testing.T) {
		f := newFixture(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := f.src.Token(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Token() error = %v, want context.Canceled", err)
		}
		f.wantCalls(t, 0, 0, 0)
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		f := newFixture(t)
		f.sm.set(tokenID, tokenJSON(t, "stored", t0.Add(30*time.Minute)))
		entered, release := make(chan struct{}), make(chan struct{})
		f.sm.getFn = func(ctx context.Context, id string) (*secretsmanager.GetSecretValueOutput, error) {
			close(entered)
			<-release
			v, _ := f.sm.value(id)
			return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := f.src.Token(ctx)
			errc <- err
		}()
		<-entered
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Token() error = %v, want context.Canceled", err)
		}
		// The refresh the cancelled caller started still completes and
		// serves the next caller.
		f.sm.getFn = nil
		close(release)
		if got := f.token(t); got != "stored" {
			t.Fatalf("Token() = %q, want %q", got, "stored")
		}
		if got := f.sm.getCount(tokenID); got > 2 {
			t.Errorf("token secret reads = %d, want at most 2", got)
		}
	})
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		want    string   // substring of the error
		wantNot []string // must not appear in the error
	}{
		{name: "missing accessKey", secret: `{"secretKey":"` + secretKey + `"}`, want: `"accessKey"`, wantNot: []string{`"secretKey"`}},
		{name: "missing secretKey", secret: `{"accessKey":"` + accessKey + `"}`, want: `"secretKey"`, wantNot: []string{`"accessKey"`}},
		{name: "empty accessKey", secret: `{"accessKey":"","secretKey":"` + secretKey + `"}`, want: `"accessKey"`},
		{name: "both missing", secret: `{}`, want: `"accessKey" and "secretKey"`},
		{name: "not json", secret: `{"accessKey":"` + accessKey + `" "secretKey":"` + secretKey + `"}`, want: "not a JSON object"},
		{name: "wrong type", secret: `{"accessKey":1,"secretKey":"` + secretKey + `"}`, want: "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.sm.set(credsID, tc.secret)
			_, err := f.src.Credentials(t.Context())
			if err == nil {
				t.Fatal("Credentials() error = nil, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), credsID) {
				t.Errorf("Credentials() error = %q, want it to name %s and the secret %q", err, tc.want, credsID)
			}
			for _, s := range append(tc.wantNot, accessKey, secretKey) {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Credentials() error = %q, contains %q", err, s)
				}
			}
			// Token fails the same way and does not call Klavi.
			if _, err := f.src.Token(t.Context()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Token() error = %v, want one naming %s", err, tc.want)
			}
			if f.auth.count() != 0 {
				t.Errorf("auth calls = %d, want 0", f.auth.count())
			}
		})
	}
}

func TestCredentialsCached(t *testing.T) {
	f := newFixture(t)
	want := klavi.Credentials{AccessKey: accessKey, SecretKey: secretKey}
	for range 3 {
		got, err := f.src.Credentials(t.Context())
		if err != nil || got != want {
			t.Fatalf("Credentials() = %+v, %v; want %+v", got, err, want)
		}
	}
	key, err := f.src.SecretKey(t.Context())
	if err != nil || string(key) != secretKey {
		t.Fatalf("SecretKey() = %q, %v; want %q", key, err, secretKey)
	}
	key[0] = 'X' // the caller's copy; the cache must not change
	f.wantCalls(t, 0, 1, 0)

	f.clock.Advance(DefaultCredentialsTTL)
	got, err := f.src.Credentials(t.Context())
	if err != nil || got != want {
		t.Fatalf("Credentials() after TTL = %+v, %v; want %+v", got, err, want)
	}
	f.wantCalls(t, 0, 2, 0)
}

func TestAuthRereadsRotatedCredentials(t *testing.T) {
	const newSecret = "SK-rotated"
	f := newFixture(t)
	if _, err := f.src.Credentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The key pair is rotated after it was cached; Klavi accepts only the
	// new one.
	f.sm.set(credsID, `{"accessKey":"`+accessKey+`","secretKey":"`+newSecret+`"}`)
	f.auth.fn = func(_ context.Context, c klavi.Credentials) (klavi.Token, error) {
		if c.SecretKey != newSecret {
			return klavi.Token{}, klavi.ErrUnauthorized
		}
		return klavi.Token{AccessToken: "fresh", ExpiresIn: 30 * time.Minute}, nil
	}
	if got := f.token(t); got != "fresh" {
		t.Fatalf("Token() = %q, want %q", got, "fresh")
	}
	f.wantCalls(t, 1, 2, 2)

	// Credentials just read and still rejected: no second try.
	f2 := newFixture(t)
	f2.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) {
		return klavi.Token{}, klavi.ErrUnauthorized
	}
	if _, err := f2.src.Token(t.Context()); !errors.Is(err, klavi.ErrUnauthorized) {
		t.Fatalf("Token() error = %v, want klavi.ErrUnauthorized", err)
	}
	f2.wantCalls(t, 1, 1, 1)
}

func TestAuthBadAnswers(t *testing.T) {
	tests := []struct {
		name string
		tok  klavi.Token
	}{
		{name: "empty token", tok: klavi.Token{ExpiresIn: 30 * time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) { return tc.tok, nil }
			if _, err := f.src.Token(t.Context()); err == nil {
				t.Error("Token() error = nil, want an error")
			}
			if _, err := f.src.Rotate(t.Context()); err == nil {
				t.Error("Rotate() error = nil, want an error")
			}
			if n := f.sm.putCount(tokenID); n != 0 {
				t.Errorf("token secret writes = %d, want 0", n)
			}
		})
	}
}

func TestAuthWithoutLifetime(t *testing.T) {
	f := newFixture(t)
	f.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) {
		return klavi.Token{AccessToken: "tok"}, nil
	}
	expiresAt, err := f.src.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	if want := t0.Add(DefaultTokenLifetime); !expiresAt.Equal(want) {
		t.Errorf("Rotate() expiresAt = %v, want %v (the documented lifetime)", expiresAt, want)
	}
}

func TestRotate(t *testing.T) {
	f := newFixture(t)
	f.sm.set(tokenID, tokenJSON(t, "stored", t0.Add(30*time.Minute)))
	f.token(t) // warm cache: Rotate must still go to Klavi
	f.sm.resetCounts()

	f.clock.Advance(90 * time.Second)
	expiresAt, err := f.src.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	if want := t0.Add(90*time.Second + 30*time.Minute); !expiresAt.Equal(want) {
		t.Errorf("Rotate() expiresAt = %v, want %v", expiresAt, want)
	}
	f.wantCalls(t, 0, 1, 1)
	if n := f.sm.putCount(tokenID); n != 1 {
		t.Fatalf("token secret writes = %d, want 1", n)
	}

	raw, _ := f.sm.value(tokenID)
	var got map[string]string
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("token secret is not JSON: %v", err)
	}
	want := map[string]string{"accessToken": "klavi-token-1", "expiresAt": "2026-03-01T12:31:30Z"}
	if len(got) != len(want) || got["accessToken"] != want["accessToken"] || got["expiresAt"] != want["expiresAt"] {
		t.Errorf("token secret = %v, want %v", got, want)
	}

	// The rotated token is served from memory.
	f.sm.resetCounts()
	f.auth.reset()
	if tok := f.token(t); tok != "klavi-token-1" {
		t.Errorf("Token() after Rotate = %q, want %q", tok, "klavi-token-1")
	}
	f.wantCalls(t, 0, 0, 0)
}

func TestRotateErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture)
		wantIs  error
		wantSub string
	}{
		{
			name: "klavi rejects the credentials",
			setup: func(f *fixture) {
				f.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) {
					return klavi.Token{}, klavi.ErrUnauthorized
				}
			},
			wantIs: klavi.ErrUnauthorized,
		},
		{
			name: "put fails",
			setup: func(f *fixture) {
				f.sm.putFn = func(context.Context, string, string) error { return errBoom }
			},
			wantIs:  errBoom,
			wantSub: tokenID,
		},
		{
			name: "credentials secret unreadable",
			setup: func(f *fixture) {
				f.sm.getFn = func(context.Context, string) (*secretsmanager.GetSecretValueOutput, error) { return nil, errBoom }
			},
			wantIs:  errBoom,
			wantSub: credsID,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			_, err := f.src.Rotate(t.Context())
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Rotate() error = %v, want %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("Rotate() error = %q, want it to name %q", err, tc.wantSub)
			}
			assertNoSecrets(t, err.Error(), "klavi-token-1")
		})
	}
}

// TestErrorsCarryNoSecrets drives every failure path with a fake whose
// errors stay generic, and checks that nothing the source holds leaks into
// the message.
func TestErrorsCarryNoSecrets(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
	}{
		{name: "auth fails", setup: func(f *fixture) {
			f.auth.fn = func(context.Context, klavi.Credentials) (klavi.Token, error) { return klavi.Token{}, errBoom }
		}},
		{name: "token secret read fails", setup: func(f *fixture) {
			f.sm.set(tokenID, tokenJSON(t, "stored-token", t0.Add(time.Hour)))
			f.sm.getFn = func(_ context.Context, id string) (*secretsmanager.GetSecretValueOutput, error) {
				if id == tokenID {
					return nil, errBoom
				}
				v, _ := f.sm.value(id)
				return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
			}
		}},
		{name: "credentials not json", setup: func(f *fixture) {
			f.sm.set(credsID, `{"accessKey":"`+accessKey+`",,"secretKey":"`+secretKey+`"}`)
		}},
		{name: "put fails", setup: func(f *fixture) {
			f.sm.putFn = func(context.Context, string, string) error { return errBoom }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			var msgs bytes.Buffer
			if _, err := f.src.Token(t.Context()); err != nil {
				msgs.WriteString(err.Error() + "\n")
			}
			if _, err := f.src.Rotate(t.Context()); err != nil {
				msgs.WriteString(err.Error() + "\n")
			}
			if msgs.Len() == 0 {
				t.Fatal("no error to check")
			}
			assertNoSecrets(t, msgs.String(), "stored-token", "klavi-token-1", "klavi-token-2")
		})
	}
}

func assertNoSecrets(t *testing.T, msg string, extra ...string) {
	t.Helper()
	for _, s := range append([]string{accessKey, secretKey, "AK-", "SK-"}, extra...) {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains secret material %q", msg, s)
		}
	}
}
