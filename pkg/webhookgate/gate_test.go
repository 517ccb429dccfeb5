package webhookgate

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

type keyFunc func(context.Context) ([]byte, error)

func (f keyFunc) SecretKey(ctx context.Context) ([]byte, error) { return f(ctx) }

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func request(body, secret, ip string) httpapi.Request {
	req := httpapi.Request{Body: body, Headers: map[string]string{}}
	req.RequestContext = events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{SourceIP: ip}}
	if secret != "" {
		sig, ts := webhooksig.Sign([]byte(secret), []byte(body), now)
		req.Headers["X-Klavi-Signature"], req.Headers["X-Klavi-Timestamp"] = sig, ts
	}
	return req
}

func TestAdmit(t *testing.T) {
	allow, err := httpapi.ParseAllowlist("18.230.43.17/32")
	if err != nil {
		t.Fatal(err)
	}
	keyCalls := 0
	good := keyFunc(func(context.Context) ([]byte, error) { keyCalls++; return []byte("secret"), nil })
	down := keyFunc(func(context.Context) ([]byte, error) { return nil, errors.New("throttled") })
	tests := []struct {
		name     string
		keys     SecretKeySource
		req      httpapi.Request
		status   int // 0: admitted
		ping     bool
		keyReads int
	}{
		{"signed", good, request(`{"a":1}`, "secret", "18.230.43.17"), 0, false, 1},
		{"other source first", good, request(`{"a":1}`, "secret", "203.0.113.1"), http.StatusForbidden, false, 0},
		{"too large before any key read", good, request(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, "secret", "18.230.43.17"), http.StatusRequestEntityTooLarge, false, 0},
		{"empty unsigned ping", good, request(" ", "", "18.230.43.17"), 0, true, 0},
		{"unsigned body", good, request(`{"a":1}`, "", "18.230.43.17"), http.StatusUnauthorized, false, 1},
		{"wrong key", good, request(`{"a":1}`, "other", "18.230.43.17"), http.StatusUnauthorized, false, 1},
		{"key unavailable", down, request(`{"a":1}`, "secret", "18.230.43.17"), http.StatusServiceUnavailable, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keyCalls = 0
			rec := metricstest.NewCapture("test")
			g := &Gate{Webhook: "events", MaxBody: 48, SourceIPs: allow, Keys: tc.keys, Metrics: rec.Recorder,
				Verifier: webhooksig.Verifier{Now: func() time.Time { return now }}}
			in := g.Admit(t.Context(), tc.req)
			switch {
			case tc.status == 0 && in.Reject != nil:
				t.Fatalf("rejected with %d %s, want admitted", in.Reject.StatusCode, in.Reject.Body)
			case tc.status != 0 && (in.Reject == nil || in.Reject.StatusCode != tc.status):
				t.Fatalf("admission = %+v, want reject %d", in, tc.status)
			}
			if in.Ping != tc.ping {
				t.Errorf("ping = %v, want %v", in.Ping, tc.ping)
			}
			if tc.status == 0 && !tc.ping && string(in.Body) != tc.req.Body {
				t.Errorf("body = %q, want the request's", in.Body)
			}
			if keyCalls != tc.keyReads {
				t.Errorf("key reads = %d, want %d", keyCalls, tc.keyReads)
			}
		})
	}
}

// rotatingKeys serves a cached key until reloaded, like the token source
// after the secretKey was rotated.
type rotatingKeys struct {
	cached, current string
	reloads         int
}

func (r *rotatingKeys) SecretKey(context.Context) ([]byte, error) { return []byte(r.cached), nil }

func (r *rotatingKeys) ReloadSecretKey(context.Context) ([]byte, error) {
	r.reloads++
	r.cached = r.current
	return []byte(r.cached), nil
}

func TestAdmitRotatedKey(t *testing.T) {
	keys := &rotatingKeys{cached: "old", current: "new"}
	g := &Gate{Webhook: "events", MaxBody: 1 << 10, Keys: keys, Verifier: webhooksig.Verifier{Now: func() time.Time { return now }}}
	if in := g.Admit(t.Context(), request(`{"a":1}`, "new", "")); in.Reject != nil {
		t.Fatalf("delivery signed with the rotated key rejected: %d %s", in.Reject.StatusCode, in.Reject.Body)
	}
	if keys.reloads != 1 {
		t.Errorf("reloads = %d, want 1", keys.reloads)
	}
	// A delivery signed with neither key is still refused.
	if in := g.Admit(t.Context(), request(`{"a":1}`, "forged", "")); in.Reject == nil || in.Reject.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged delivery admitted")
	}
}

// Only a failed signature written as Klavi writes it (64 lowercase hex
// digits, timestamp in tolerance) asks for a key reload; junk costs none.
func TestAdmitReloadsOnlyForWellFormedSignatures(t *testing.T) {
	body := `{"a":1}`
	sig, _ := webhooksig.Sign([]byte("forged"), []byte(body), now)
	tests := []struct {
		name    string
		sig     string
		ts      time.Time
		reloads int
	}{
		{"well-formed", sig, now, 1},
		{"upper-case hex", strings.ToUpper(sig), now, 0},
		{"sha256= prefix", "sha256=" + sig, now, 0},
		{"short", sig[:40], now, 0},
		{"not hex", strings.Repeat("z", 64), now, 0},
		{"stale timestamp", sig, now.Add(-time.Hour), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := &rotatingKeys{cached: "old", current: "new"}
			g := &Gate{Webhook: "events", MaxBody: 1 << 10, Keys: keys, Verifier: webhooksig.Verifier{Now: func() time.Time { return now }}}
			req := request(body, "", "")
			req.Headers["X-Klavi-Signature"] = tc.sig
			req.Headers["X-Klavi-Timestamp"] = strconv.FormatInt(tc.ts.Unix(), 10)
			if in := g.Admit(t.Context(), req); in.Reject == nil || in.Reject.StatusCode != http.StatusUnauthorized {
				t.Fatalf("forged delivery: admission %+v, want 401", in)
			}
			if keys.reloads != tc.reloads {
				t.Errorf("key reloads = %d, want %d", keys.reloads, tc.reloads)
			}
		})
	}
}

// A reload that fails leaves the delivery rejected and the cached key in
// use for the next one.
func TestAdmitReloadFailure(t *testing.T) {
	keys := &failingReload{key: "secret"}
	g := &Gate{Webhook: "events", MaxBody: 1 << 10, Keys: keys, Verifier: webhooksig.Verifier{Now: func() time.Time { return now }}}
	if in := g.Admit(t.Context(), request(`{"a":1}`, "forged", "")); in.Reject == nil || in.Reject.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged delivery with a failing reload: %+v, want 401", in)
	}
	if in := g.Admit(t.Context(), request(`{"a":1}`, "secret", "")); in.Reject != nil {
		t.Fatalf("genuine delivery after a failed reload: %d %s, want admitted", in.Reject.StatusCode, in.Reject.Body)
	}
	if keys.reloads != 1 {
		t.Errorf("reloads = %d, want 1", keys.reloads)
	}
}

type failingReload struct {
	key     string
	reloads int
}

func (f *failingReload) SecretKey(context.Context) ([]byte, error) { return []byte(f.key), nil }

func (f *failingReload) ReloadSecretKey(context.Context) ([]byte, error) {
	f.reloads++
	return nil, errors.New("throttled")
}
