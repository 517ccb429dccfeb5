package klavi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// reply is one scripted answer of a test server.
type reply struct {
	status     int
	retryAfter string
	body       string
}

// scripted answers with replies in order, repeating the last one, and counts
// the requests it got.
type scripted struct {
	mu      sync.Mutex
	replies []reply
	hits    int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	rep := s.replies[min(s.hits, len(s.replies)-1)]
	s.hits++
	s.mu.Unlock()
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	body := rep.body
	if body == "" {
		body = `{}`
	}
	writeJSON(w, rep.status, body)
}

func (s *scripted) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

const (
	okConsent = `{"consentId":"c-1","status":"AUTHORISED"}`
	okLink    = `{"linkId":"l-1","linkURL":"https://x?v=t","linkToken":"t","expireIn":1800}`
	okReport  = `{"requestId":"r-1","message":"ok"}`
)

func TestRetryIdempotent(t *testing.T) {
	tests := []struct {
		name      string
		policy    RetryPolicy
		replies   []reply
		wantHits  int
		wantWaits []time.Duration
		wantErr   error
	}{
		{
			name:      "503 then ok",
			replies:   []reply{{status: 503}, {status: 200, body: okConsent}},
			wantHits:  2,
			wantWaits: []time.Duration{200 * time.Millisecond},
		},
		{
			name:      "502, 504 then ok",
			replies:   []reply{{status: 502}, {status: 504}, {status: 200, body: okConsent}},
			wantHits:  3,
			wantWaits: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond},
		},
		{
			name:      "429 with Retry-After seconds",
			replies:   []reply{{status: 429, retryAfter: "3"}, {status: 200, body: okConsent}},
			wantHits:  2,
			wantWaits: []time.Duration{3 * time.Second},
		},
		{
			name:      "429 with Retry-After date",
			replies:   []reply{{status: 429, retryAfter: "date+2s"}, {status: 200, body: okConsent}},
			wantHits:  2,
			wantWaits: []time.Duration{2 * time.Second},
		},
		{
			name:      "503 with Retry-After 0",
			replies:   []reply{{status: 503, retryAfter: "0"}, {status: 200, body: okConsent}},
			wantHits:  2,
			wantWaits: []time.Duration{0},
		},
		{
			name:     "Retry-After beyond MaxDelay ends retries",
			replies:  []reply{{status: 429, retryAfter: "60"}, {status: 200, body: okConsent}},
			wantHits: 1,
			wantErr:  ErrRateLimited,
		},
		{
			name:      "attempts exhausted",
			replies:   []reply{{status: 503}},
			wantHits:  4,
			wantWaits: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
			wantErr:   ErrServer,
		},
		{
			name:      "backoff capped by MaxDelay",
			policy:    RetryPolicy{MaxAttempts: 6, BaseDelay: time.Second, MaxDelay: 3 * time.Second},
			replies:   []reply{{status: 503}},
			wantHits:  6,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second},
			wantErr:   ErrServer,
		},
		{
			name:     "retries disabled",
			policy:   RetryPolicy{MaxAttempts: 1},
			replies:  []reply{{status: 503}},
			wantHits: 1,
			wantErr:  ErrServer,
		},
		{name: "500 not retried", replies: []reply{{status: 500}}, wantHits: 1, wantErr: ErrServer},
		{name: "400 not retried", replies: []reply{{status: 400}}, wantHits: 1, wantErr: ErrBadRequest},
		{name: "404 not retried", replies: []reply{{status: 404}}, wantHits: 1, wantErr: ErrNotFound},
		{name: "416 not retried", replies: []reply{{status: 416, body: `{"statusCode":4001}`}}, wantHits: 1, wantErr: ErrInvalidAuthorisation},
		{name: "malformed not retried", replies: []reply{{status: 200, body: `{`}}, wantHits: 1, wantErr: ErrMalformedResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &scripted{replies: tc.replies}
			ts := newServer(t, srv)
			c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)), WithRetryPolicy(tc.policy))
			for i, rep := range srv.replies {
				if rep.retryAfter == "date+2s" {
					srv.replies[i].retryAfter = clock.Now().Add(2 * time.Second).Format(http.TimeFormat)
				}
			}

			_, err := c.GetConsent(t.Context(), "c-1")
			if tc.wantErr == nil && err != nil {
				t.Fatalf("GetConsent: %v", err)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("GetConsent error = %v, want %v", err, tc.wantErr)
			}
			assertNoSecrets(t, err)
			if got := srv.Hits(); got != tc.wantHits {
				t.Errorf("server got %d requests, want %d", got, tc.wantHits)
			}
			if diff := cmp.Diff(clock.Waits(), tc.wantWaits); diff != "" {
				t.Errorf("waits (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRetryAfterIsReported(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 429, retryAfter: "60"}}}
	ts := newServer(t, srv)
	c, _ := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))

	err := c.RevokeConsent(t.Context(), "c-1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v is not an *APIError", err)
	}
	if apiErr.RetryAfter != time.Minute || !apiErr.Retryable() {
		t.Errorf("RetryAfter, Retryable() = %v, %v, want 1m0s, true", apiErr.RetryAfter, apiErr.Retryable())
	}
}

func TestRetryNonIdempotent(t *testing.T) {
	calls := map[string]func(c *Client) error{
		"CreateLink": func(c *Client) error {
			_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
			return err
		},
		"RequestInstitutionData": func(c *Client) error {
			_, err := c.RequestInstitutionData(t.Context(), Personal, InstitutionDataRequest{TaxID: testCPF, InstitutionCode: "001", Products: []string{"all"}})
			return err
		},
		"RequestUserData": func(c *Client) error {
			_, err := c.RequestUserData(t.Context(), Business, UserDataRequest{TaxID: testCNPJ, Products: []string{"all"}})
			return err
		},
	}
	ok := map[string]string{"CreateLink": okLink, "RequestInstitutionData": okReport, "RequestUserData": okReport}
	tests := []struct {
		name      string
		replies   []reply
		wantHits  int
		wantWaits []time.Duration
		wantErr   error
	}{
		{name: "503 not retried", replies: []reply{{status: 503}, {status: 200}}, wantHits: 1, wantErr: ErrServer},
		{name: "502 not retried", replies: []reply{{status: 502}, {status: 200}}, wantHits: 1, wantErr: ErrServer},
		{name: "504 not retried", replies: []reply{{status: 504}, {status: 200}}, wantHits: 1, wantErr: ErrServer},
		{name: "500 not retried", replies: []reply{{status: 500}, {status: 200}}, wantHits: 1, wantErr: ErrServer},
		{name: "400 not retried", replies: []reply{{status: 400}, {status: 200}}, wantHits: 1, wantErr: ErrBadRequest},
		{
			name:      "429 retried",
			replies:   []reply{{status: 429}, {status: 200}},
			wantHits:  2,
			wantWaits: []time.Duration{200 * time.Millisecond},
		},
		{
			name:      "429 retried after Retry-After",
			replies:   []reply{{status: 429, retryAfter: "1"}, {status: 429, retryAfter: "2"}, {status: 200}},
			wantHits:  3,
			wantWaits: []time.Duration{time.Second, 2 * time.Second},
		},
	}
	for name, call := range calls {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				replies := append([]reply(nil), tc.replies...)
				for i := range replies {
					if replies[i].status == 200 {
						replies[i].body = ok[name]
					}
				}
				srv := &scripted{replies: replies}
				ts := newServer(t, srv)
				c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))

				err := call(c)
				if tc.wantErr == nil && err != nil {
					t.Fatalf("call: %v", err)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error = %v, want %v", err, tc.wantErr)
				}
				assertNoSecrets(t, err)
				if got := srv.Hits(); got != tc.wantHits {
					t.Errorf("server got %d requests, want %d", got, tc.wantHits)
				}
				if diff := cmp.Diff(clock.Waits(), tc.wantWaits); diff != "" {
					t.Errorf("waits (-got +want):\n%s", diff)
				}
			})
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRetryRefusedConnection(t *testing.T) {
	// The first dial goes to a closed port, later ones to the server: the
	// request never left, so even POST /links is repeated.
	srv := &scripted{replies: []reply{{status: 200, body: okLink}}}
	ts := newServer(t, srv)
	dead := closedAddr(t)
	var dials atomic.Int32
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			addr = dead
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)), WithHTTPClient(&http.Client{Transport: tr}))

	link, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
	if err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	if link.LinkID != "l-1" {
		t.Errorf("LinkID = %q, want l-1", link.LinkID)
	}
	if got := dials.Load(); got != 2 {
		t.Errorf("dials = %d, want 2", got)
	}
	if got := srv.Hits(); got != 1 {
		t.Errorf("server got %d requests, want 1", got)
	}
	if got := len(clock.Waits()); got != 1 {
		t.Errorf("waited %d times, want 1", got)
	}
}

func TestNetworkErrorHidesURL(t *testing.T) {
	// Every attempt is refused. ListConsents carries the tax id in its query
	// string, which must not reach the error.
	var calls []Call
	c, clock := testClient(t, "http://"+closedAddr(t),
		WithTokenSource(newFakeTokens(testToken)),
		WithObserver(func(c Call) { calls = append(calls, c) }))

	_, err := c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF, LinkID: "l-1"})
	if err == nil {
		t.Fatal("ListConsents succeeded, want a network error")
	}
	assertNoSecrets(t, err)
	if msg := err.Error(); strings.Contains(msg, "personalTaxId") || strings.Contains(msg, "linkId=") {
		t.Errorf("error %q contains the request URL", msg)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not wrap the *net.OpError", err)
	}
	if got := len(clock.Waits()); got != 3 {
		t.Errorf("waited %d times, want 3 (idempotent call retried to MaxAttempts)", got)
	}
	if len(calls) != 4 {
		t.Fatalf("observed %d calls, want 4", len(calls))
	}
	for _, call := range calls {
		if call.Status != 0 || call.Err == nil || call.Endpoint != "GET /data/v1/consents" {
			t.Errorf("observed %+v, want status 0, an error and the route template", call)
		}
		assertNoSecrets(t, call.Err)
	}
}

// hangUp reads the request and closes the connection without answering: the
// request was delivered, its outcome is unknown.
func hangUp(t *testing.T, w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

func TestNoRetryOnceRequestWasSent(t *testing.T) {
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		hangUp(t, w, r)
	})
	ts := newServer(t, mux)
	c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))

	_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
	if err == nil {
		t.Fatal("CreateLink succeeded, want a network error")
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		t.Errorf("error %v is an *APIError, want a network error", err)
	}
	assertNoSecrets(t, err)
	if got := hits.Load(); got != 1 {
		t.Errorf("server got %d requests, want 1", got)
	}
	if got := clock.Waits(); len(got) != 0 {
		t.Errorf("waits = %v, want none", got)
	}
}

func TestRetryIdempotentAfterHangUp(t *testing.T) {
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data/v1/consents/{id}", func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			hangUp(t, w, r)
			return
		}
		writeJSON(w, 200, okConsent)
	})
	ts := newServer(t, mux)
	c, _ := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))

	if _, err := c.GetConsent(t.Context(), "c-1"); err != nil {
		t.Fatalf("GetConsent: %v", err)
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("server got %d requests, want 2", got)
	}
}

func TestRetryBoundedByDeadline(t *testing.T) {
	tests := []struct {
		name      string
		replies   []reply
		wantHits  int
		wantWaits []time.Duration
	}{
		{
			// Waits of 20m and then 40m: the second would end past the
			// deadline one hour out, so the client stops after two attempts.
			name:      "backoff",
			replies:   []reply{{status: 503}},
			wantHits:  2,
			wantWaits: []time.Duration{20 * time.Minute},
		},
		{
			name:     "Retry-After past the deadline",
			replies:  []reply{{status: 429, retryAfter: "3600"}, {status: 200, body: okConsent}},
			wantHits: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &scripted{replies: tc.replies}
			ts := newServer(t, srv)
			c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)),
				WithRetryPolicy(RetryPolicy{MaxAttempts: 10, BaseDelay: 20 * time.Minute, MaxDelay: 2 * time.Hour}))
			ctx, cancel := context.WithDeadline(t.Context(), clock.Now().Add(time.Hour))
			defer cancel()

			_, err := c.GetConsent(ctx, "c-1")
			if err == nil {
				t.Fatal("GetConsent succeeded, want the last error")
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Errorf("error %v is not the last *APIError", err)
			}
			if got := srv.Hits(); got != tc.wantHits {
				t.Errorf("server got %d requests, want %d", got, tc.wantHits)
			}
			if diff := cmp.Diff(clock.Waits(), tc.wantWaits); diff != "" {
				t.Errorf("waits (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 503}, {status: 200, body: okConsent}}}
	ts := newServer(t, srv)
	c, _ := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}

	_, err := c.GetConsent(ctx, "c-1")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrServer) {
		t.Errorf("GetConsent error = %v, want context.Canceled wrapping the 503", err)
	}
	if got := srv.Hits(); got != 1 {
		t.Errorf("server got %d requests, want 1", got)
	}
}

func TestCanceledContextIsNotRetried(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 200, body: okConsent}}}
	ts := newServer(t, srv)
	c, clock := testClient(t, ts.URL, WithTokenSource(newFakeTokens(testToken)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err := c.GetConsent(ctx, "c-1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetConsent error = %v, want context.Canceled", err)
	}
	if got := clock.Waits(); len(got) != 0 {
		t.Errorf("waits = %v, want none", got)
	}
}

func TestUnauthorizedRetriedOnceWithFreshToken(t *testing.T) {
	calls := map[string]func(c *Client) error{
		"CreateLink": func(c *Client) error {
			_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
			return err
		},
		"ListConsents": func(c *Client) error {
			_, err := c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF})
			return err
		},
		"RevokeConsent": func(c *Client) error { return c.RevokeConsent(t.Context(), "c-1") },
	}
	bodies := map[string]string{"CreateLink": okLink, "ListConsents": `[]`, "RevokeConsent": `{"message":"ok"}`}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				authz := r.Header.Get("Authorization")
				mu.Lock()
				seen = append(seen, authz)
				mu.Unlock()
				if authz != "Bearer "+testToken2 {
					writeJSON(w, 401, `{"statusCode":401,"error":"Unauthorized","message":"jwt expired"}`)
					return
				}
				writeJSON(w, 200, bodies[name])
			}))
			tokens := newFakeTokens(testToken, testToken2)
			// Retries disabled: the 401 retry does not depend on the policy.
			c, clock := testClient(t, ts.URL, WithTokenSource(tokens), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))

			if err := call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if diff := cmp.Diff(tokens.Invalidated(), []string{testToken}); diff != "" {
				t.Errorf("invalidated tokens (-got +want):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(seen, []string{"Bearer " + testToken, "Bearer " + testToken2}); diff != "" {
				t.Errorf("Authorization headers (-got +want):\n%s", diff)
			}
			if got := clock.Waits(); len(got) != 0 {
				t.Errorf("waits = %v, want none", got)
			}
		})
	}
}

func TestSecondUnauthorizedIsReturned(t *testing.T) {
	var hits atomic.Int32
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, 401, `{"statusCode":401,"error":"Unauthorized","message":"invalid token `+r.Header.Get("Authorization")+`"}`)
	}))
	tokens := newFakeTokens(testToken, testToken2)
	c, _ := testClient(t, ts.URL, WithTokenSource(tokens))

	_, err := c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("ListConsents error = %v, want ErrUnauthorized", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != 401 {
		t.Errorf("error %v is not a 401 *APIError", err)
	}
	assertNoSecrets(t, err)
	if got := hits.Load(); got != 2 {
		t.Errorf("server got %d requests, want 2", got)
	}
	if diff := cmp.Diff(tokens.Invalidated(), []string{testToken}); diff != "" {
		t.Errorf("invalidated tokens (-got +want):\n%s", diff)
	}
}

func TestDefaultSleepAndJitter(t *testing.T) {
	// The real sleep and jitter, with delays too short to matter.
	srv := &scripted{replies: []reply{{status: 503}, {status: 503}, {status: 200, body: okConsent}}}
	ts := newServer(t, srv)
	c, err := New(ts.URL, WithTokenSource(newFakeTokens(testToken)),
		WithRetryPolicy(RetryPolicy{BaseDelay: time.Microsecond, MaxDelay: time.Millisecond}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := c.GetConsent(t.Context(), "c-1"); err != nil {
		t.Fatalf("GetConsent: %v", err)
	}
	if got := srv.Hits(); got != 3 {
		t.Errorf("server got %d requests, want 3", got)
	}
}

func TestFullJitter(t *testing.T) {
	if got := fullJitter(0); got != 0 {
		t.Errorf("fullJitter(0) = %v, want 0", got)
	}
	limit := 10 * time.Millisecond
	for range 1000 {
		if got := fullJitter(limit); got < 0 || got > limit {
			t.Fatalf("fullJitter(%v) = %v, want within [0, %v]", limit, got, limit)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{value: "", wantOK: false},
		{value: "3", want: 3 * time.Second, wantOK: true},
		{value: " 0 ", want: 0, wantOK: true},
		{value: "-1", wantOK: false},
		{value: "1.5", wantOK: false},
		{value: "soon", wantOK: false},
		{value: strconv.Itoa(1 << 40), want: 24 * time.Hour, wantOK: true},
		{value: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{value: now.Add(-time.Hour).Format(http.TimeFormat), want: 0, wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			h := http.Header{}
			if tc.value != "" {
				h.Set("Retry-After", tc.value)
			}
			got, ok := parseRetryAfter(h, now)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", tc.value, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestSleepContext(t *testing.T) {
	if err := sleepContext(t.Context(), time.Microsecond); err != nil {
		t.Errorf("sleepContext: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepContext on a canceled context = %v, want context.Canceled", err)
	}
	if err := sleepContext(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepContext(0) on a canceled context = %v, want context.Canceled", err)
	}
}
