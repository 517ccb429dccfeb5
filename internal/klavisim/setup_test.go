package klavisim

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAccessKey = "ak-test"
	testSecretKey = "sk-test-secret"

	testCPF   = "12345678909"
	testCPF2  = "25872252137"
	testCNPJ  = "11222333000181"
	testCNPJ2 = "12ABC34501DE35" // the Receita Federal alphanumeric example
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eventLog records Options.OnEvent calls.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

func (l *eventLog) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.events {
		out = append(out, ev.Name)
	}
	return out
}

type env struct {
	sim    *Simulator
	srv    *httptest.Server
	clock  *fakeClock
	events *eventLog
}

// newEnv serves a simulator on a real local server. mod adjusts the options.
func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{clock: newFakeClock(), events: &eventLog{}}
	o := Options{AccessKey: testAccessKey, SecretKey: testSecretKey, Now: e.clock.Now, OnEvent: e.events.add}
	if mod != nil {
		mod(&o)
	}
	e.sim = New(o)
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.sim.SetPublicURL(e.srv.URL)
	return e
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request with plain net/http. A non-empty body is sent as
// application/json; a non-empty token as a Bearer token.
func (e *env) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	return e.doWith(t, method, path, body, func(h http.Header) {
		if body != "" {
			h.Set("Content-Type", "application/json")
		}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
	})
}

func (e *env) doWith(t *testing.T, method, path, body string, header func(http.Header)) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	header(req.Header)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// token gets an access token from /auth.
func (e *env) token(t *testing.T) string {
	t.Helper()
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", `{"accessKey":"`+testAccessKey+`","secretKey":"`+testSecretKey+`"}`)
	if res.status != http.StatusOK {
		t.Fatalf("auth: status %d, want 200; body %s", res.status, res.body)
	}
	var got tokenResponse
	decode(t, res.body, &got)
	return got.AccessToken
}

// createLink creates a link and returns its id.
func (e *env) createLink(t *testing.T, tok, body string) string {
	t.Helper()
	res := e.do(t, http.MethodPost, "/data/v1/links", tok, body)
	if res.status != http.StatusOK {
		t.Fatalf("create link: status %d, want 200; body %s", res.status, res.body)
	}
	var got linkResponse
	decode(t, res.body, &got)
	return got.LinkID
}

// authorisedConsent creates a link for the tax id and authorises
// institutionCode on it.
func (e *env) authorisedConsent(t *testing.T, tok, taxField, taxID, institutionCode string) Consent {
	t.Helper()
	linkID := e.createLink(t, tok, `{"`+taxField+`":"`+taxID+`"}`)
	c, err := e.sim.AuthoriseConsent(linkID, institutionCode)
	if err != nil {
		t.Fatalf("AuthoriseConsent: %v", err)
	}
	return c
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	decode(t, b, &m)
	return slices.Sorted(maps.Keys(m))
}

func assertKeys(t *testing.T, b []byte, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(t, b); !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

// assertError checks an error answer: HTTP status, Klavi's three-field
// shape, the statusCode, and that none of the secrets leaked into it.
func assertError(t *testing.T, res response, status, code int, secrets ...string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d; body %s", res.status, status, res.body)
	}
	assertKeys(t, res.body, "statusCode", "error", "message")
	var got errorBody
	decode(t, res.body, &got)
	if got.StatusCode != code {
		t.Errorf("statusCode = %d, want %d; body %s", got.StatusCode, code, res.body)
	}
	if got.Error == "" || got.Message == "" {
		t.Errorf("error body %s has an empty error or message", res.body)
	}
	for _, s := range append(secrets, testSecretKey, testCPF, testCPF2, testCNPJ, testCNPJ2) {
		if bytes.Contains(res.body, []byte(s)) {
			t.Errorf("error body %s contains a secret or tax id", res.body)
		}
	}
}
