package klavi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Values that must never appear in an error string.
const (
	testToken     = "tok-first-0123456789abcdef"
	testToken2    = "tok-second-fedcba9876543210"
	testAccessKey = "ak-test-access-key"
	testSecretKey = "sk-test-secret-key-value"
	testCPF       = "25872252137"
	testCNPJ      = "50685362006773"
	testEmail     = "ana@example.com"
	testPhone     = "+5511987654321"
)

var secretValues = []string{testToken, testToken2, testAccessKey, testSecretKey, testCPF, testCNPJ, testEmail, testPhone}

// assertNoSecrets fails when err's text carries a token, a key or personal data.
func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secretValues {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains secret or personal value %q", msg, s)
		}
	}
}

// fakeTokens hands out tokens in order: Invalidate of the current token moves
// to the next one.
type fakeTokens struct {
	mu          sync.Mutex
	tokens      []string
	current     int
	err         error
	invalidated []string
}

func newFakeTokens(tokens ...string) *fakeTokens { return &fakeTokens{tokens: tokens} }

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	return f.tokens[f.current], nil
}

func (f *fakeTokens) Invalidate(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, token)
	if token == f.tokens[f.current] && f.current < len(f.tokens)-1 {
		f.current++
	}
}

func (f *fakeTokens) Invalidated() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.invalidated)
}

// fakeClock stands in for time: sleeping advances it, so retries run at once
// while deadlines still work.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.waits)
}

// testClient builds a client for srv whose retries wait on a fake clock and
// whose jitter always picks the ceiling, so waits are deterministic.
func testClient(t *testing.T, baseURL string, opts ...Option) (*Client, *fakeClock) {
	t.Helper()
	c, err := New(baseURL, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The clock starts at the real time so that context deadlines derived
	// from it lie in the future; whole seconds keep HTTP dates exact.
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	c.now = clock.Now
	c.sleep = clock.Sleep
	c.jitter = func(limit time.Duration) time.Duration { return limit }
	return c, clock
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// writeJSON answers with status and body as given.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// bodyKeys decodes a JSON object body and returns its keys, sorted.
func bodyKeys(t *testing.T, r *http.Request) []string {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		t.Errorf("decode request body: %v", err)
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		want    string
		wantErr bool
	}{
		{name: "default", base: "", want: DefaultBaseURL},
		{name: "production", base: "https://api.klavi.ai", want: "https://api.klavi.ai"},
		{name: "trailing slash", base: "https://api.klavi.ai/", want: "https://api.klavi.ai"},
		{name: "path prefix", base: "http://127.0.0.1:8080/klavi/", want: "http://127.0.0.1:8080/klavi"},
		{name: "no scheme", base: "api.klavi.ai", wantErr: true},
		{name: "ftp", base: "ftp://api.klavi.ai", wantErr: true},
		{name: "no host", base: "https://", wantErr: true},
		{name: "credentials", base: "https://user:" + testSecretKey + "@api.klavi.ai", wantErr: true},
		{name: "query", base: "https://api.klavi.ai?x=1", wantErr: true},
		{name: "fragment", base: "https://api.klavi.ai#x", wantErr: true},
		{name: "unparsable", base: "https://api.klavi.ai/%zz", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.base)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("New(%q) = nil error, want an error", tc.base)
				}
				assertNoSecrets(t, err)
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tc.base, err)
			}
			if c.baseURL != tc.want {
				t.Errorf("base URL = %q, want %q", c.baseURL, tc.want)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := New("", WithHTTPClient(nil)); err == nil {
		t.Error("New with a nil HTTP client succeeded, want an error")
	}
	if _, err := New("", WithRetryPolicy(RetryPolicy{MaxAttempts: -1})); err == nil {
		t.Error("New with a negative MaxAttempts succeeded, want an error")
	}

	c, err := New("")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.httpClient == http.DefaultClient || c.httpClient.Timeout == 0 {
		t.Errorf("default HTTP client = %+v, want an own client with a timeout", c.httpClient)
	}
	tr, ok := c.httpClient.Transport.(*http.Transport)
	if !ok || tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 {
		t.Errorf("default transport = %T, want an *http.Transport with handshake and header timeouts", c.httpClient.Transport)
	}
	want := RetryPolicy{MaxAttempts: 4, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}
	if diff := cmp.Diff(c.retry, want); diff != "" {
		t.Errorf("default retry policy (-got +want):\n%s", diff)
	}

	hc := &http.Client{}
	c, err = New("", WithHTTPClient(hc), WithRetryPolicy(RetryPolicy{MaxAttempts: 1, MaxDelay: time.Second}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.httpClient != hc {
		t.Error("WithHTTPClient: client not used")
	}
	want = RetryPolicy{MaxAttempts: 1, BaseDelay: 200 * time.Millisecond, MaxDelay: time.Second}
	if diff := cmp.Diff(c.retry, want); diff != "" {
		t.Errorf("retry policy (-got +want):\n%s", diff)
	}
}

func TestRequestHeaders(t *testing.T) {
	var got http.Header
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		writeJSON(w, 200, `{"linkId":"l1"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

	if _, err := c.CreateLink(t.Context(), CreateLinkRequest{}); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	for name, want := range map[string]string{
		"Authorization": "Bearer " + testToken,
		"Accept":        "application/json",
		"Content-Type":  "application/json",
	} {
		if v := got.Get(name); v != want {
			t.Errorf("header %s = %q, want %q", name, v, want)
		}
	}
	if ua := got.Get("User-Agent"); !strings.HasPrefix(ua, "klavi-link-lambda") {
		t.Errorf("User-Agent = %q, want it to name the project", ua)
	}
}

func TestBasePathPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /prefix/data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"linkId":"l1"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL+"/prefix/", WithTokenSource(newFakeTokens(testToken)))
	if _, err := c.CreateLink(t.Context(), CreateLinkRequest{}); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
}

func TestBearerCallsNeedTokenSource(t *testing.T) {
	var hits int
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	c, _ := testClient(t, srv.URL)

	_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
	if !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("CreateLink without token source: error %v, want ErrInvalidRequest", err)
	}
	assertNoSecrets(t, err)
	_, err = c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF})
	if !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("ListConsents without token source: error %v, want ErrInvalidRequest", err)
	}
	assertNoSecrets(t, err)
	if hits != 0 {
		t.Errorf("server got %d requests, want 0", hits)
	}
}

func TestTokenSourceError(t *testing.T) {
	var hits int
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	tokens := newFakeTokens(testToken)
	cause := errors.New("secrets manager unavailable")
	tokens.err = cause
	c, _ := testClient(t, srv.URL, WithTokenSource(tokens))

	_, err := c.GetConsent(t.Context(), "c1")
	if !errors.Is(err, cause) {
		t.Errorf("GetConsent error = %v, want it to wrap the token source error", err)
	}
	if hits != 0 {
		t.Errorf("server got %d requests, want 0", hits)
	}
}

func TestObserver(t *testing.T) {
	var n int
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data/v1/consents", func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			writeJSON(w, 503, `{}`)
			return
		}
		writeJSON(w, 200, `[]`)
	})
	srv := newServer(t, mux)
	var calls []Call
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)), WithObserver(func(c Call) {
		calls = append(calls, c)
	}))

	if _, err := c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF, LinkID: "l1"}); err != nil {
		t.Fatalf("ListConsents: %v", err)
	}
	type call struct {
		Endpoint string
		Attempt  int
		Status   int
		Failed   bool
	}
	var got []call
	for _, c := range calls {
		got = append(got, call{c.Endpoint, c.Attempt, c.Status, c.Err != nil})
	}
	want := []call{
		{"GET /data/v1/consents", 1, 503, true},
		{"GET /data/v1/consents", 2, 200, false},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("observed calls (-got +want):\n%s", diff)
	}
	for _, c := range calls {
		assertNoSecrets(t, c.Err)
	}
}

func BenchmarkCreateLink(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		writeJSON(w, 200, `{"linkId":"4437b139-8a16-11ee-b636-487b6bad036a","linkURL":"https://conecte-sandbox.klavi.ai/p?v=t","linkToken":"t","expireIn":1800}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(srv.URL, WithTokenSource(newFakeTokens(testToken)))
	if err != nil {
		b.Fatal(err)
	}
	req := CreateLinkRequest{
		PersonalTaxID:       testCPF,
		RedirectURL:         "https://app.example.com/done",
		ProductsCallbackURL: map[string]string{"all": "https://api.example.com/webhooks/klavi/reports"},
		ExternalInfo:        json.RawMessage(`{"ref":"abc"}`),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateLink(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
