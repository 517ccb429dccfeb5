package klavisim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const authBody = `{"accessKey":"ak-test","secretKey":"sk-test-secret"}`

func TestRuleMatches(t *testing.T) {
	tests := []struct {
		rule         Rule
		method, path string
		want         bool
	}{
		{Rule{}, "GET", "/anything", true},
		{Rule{Method: "post"}, "POST", "/data/v1/auth", true},
		{Rule{Method: "POST"}, "GET", "/data/v1/auth", false},
		{Rule{Path: "/data/v1/auth"}, "POST", "/data/v1/auth", true},
		{Rule{Path: "/data/v1/consents"}, "GET", "/data/v1/consents/abc/revoke", true},
		{Rule{Path: "/data/v1/consents/"}, "GET", "/data/v1/consents/abc", true},
		{Rule{Path: "/data/v1/consent"}, "GET", "/data/v1/consents", false},
		{Rule{Path: "/data/v1/links"}, "POST", "/data/v1/auth", false},
	}
	for _, tc := range tests {
		if got := tc.rule.matches(tc.method, tc.path); got != tc.want {
			t.Errorf("%+v matches %s %s = %v, want %v", tc.rule, tc.method, tc.path, got, tc.want)
		}
	}
}

func TestFailNextRateLimitThenSuccess(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.FailNext(Rule{Method: http.MethodPost, Path: "/data/v1/auth", Times: 2, Status: 429, RetryAfter: "2"})

	for i := range 2 {
		res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody)
		assertError(t, res, 429, 429)
		if got := res.header.Get("Retry-After"); got != "2" {
			t.Errorf("attempt %d: Retry-After = %q, want 2", i, got)
		}
	}
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody)
	if res.status != http.StatusOK {
		t.Fatalf("third attempt: status %d, want 200; body %s", res.status, res.body)
	}
	if got := res.header.Get("Retry-After"); got != "" {
		t.Errorf("success has Retry-After %q, want none", got)
	}
}

func TestFailNextServiceUnavailableOnAnyPath(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	e.sim.FailNext(Rule{Status: 503})
	// A rule applies before authentication, like a proxy in front of Klavi.
	assertError(t, e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, "", ""), 503, 503)
	if res := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, tok, ""); res.status != http.StatusOK {
		t.Errorf("after the rule: status %d, want 200", res.status)
	}
}

func TestFailNextRulesApplyInOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.FailNext(Rule{Path: "/data/v1/links", Status: 500})
	e.sim.FailNext(Rule{Status: 502})
	e.sim.FailNext(Rule{Status: 504})
	var got []int
	for _, path := range []string{"/data/v1/auth", "/data/v1/links", "/data/v1/auth", "/data/v1/auth"} {
		got = append(got, e.do(t, http.MethodPost, path, "", authBody).status)
	}
	if want := []int{502, 500, 504, 200}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
}

func TestFailNextMalformedBody(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.FailNext(Rule{Path: "/data/v1/auth", Body: "{not json"})
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody)
	if res.status != http.StatusOK || string(res.body) != "{not json" {
		t.Fatalf("answer = %d %q, want 200 %q", res.status, res.body, "{not json")
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var v any
	if err := json.Unmarshal(res.body, &v); err == nil {
		t.Error("the injected body parsed as JSON")
	}
}

func TestFailNextBusinessErrorBody(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"statusCode":4007,"error":"Product request failed","message":"x"}`
	e.sim.FailNext(Rule{Path: "/data/v1/personal", Status: 416, Body: body})
	res := e.do(t, http.MethodPost, "/data/v1/personal/user-data", "", `{}`)
	if res.status != 416 || string(res.body) != body {
		t.Errorf("answer = %d %s, want 416 %s", res.status, res.body, body)
	}
}

func TestFailNextCloseConnection(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.FailNext(Rule{Method: http.MethodPost, Path: "/data/v1/auth", CloseConnection: true})

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/data/v1/auth", strings.NewReader(authBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("got status %d, want a transport error", res.StatusCode)
	}

	if res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody); res.status != http.StatusOK {
		t.Errorf("next attempt: status %d, want 200", res.status)
	}
	var statuses []int
	for _, r := range e.sim.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := []int{0, 200}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("recorded statuses = %v, want %v", statuses, want)
	}
}

func TestFailNextSlowAnswerGivesUpWhenClientCancels(t *testing.T) {
	sim := New(Options{AccessKey: testAccessKey, SecretKey: testSecretKey})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	// Long enough that a handler ignoring the cancellation would record a
	// status instead of 0 (and make srv.Close wait for it).
	sim.FailNext(Rule{Path: "/data/v1/consents", Delay: time.Minute})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		// Bodiless, so the server watches the connection from the start.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/data/v1/consents", nil)
		if err != nil {
			errc <- err
			return
		}
		res, err := srv.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
	srv.Close() // waits for the handler to return

	reqs := sim.Requests()
	if len(reqs) != 1 || reqs[0].Status != 0 {
		t.Errorf("recorded = %+v, want one request with status 0", reqs)
	}
}

func TestFailNextDelayOnlyLetsTheRequestThrough(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.FailNext(Rule{Path: "/data/v1/auth", Delay: time.Millisecond})
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody)
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
	}
	assertKeys(t, res.body, "accessToken", "expireIn")
}

func TestRequestsAndReset(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, tok, "")
	e.do(t, http.MethodPost, "/data/v1/links", tok, `{"redirectUrl":"https://x.example"}`)

	reqs := e.sim.Requests()
	type summary struct {
		Method, Path, RawQuery, Body string
		Status                       int
	}
	var got []summary
	for _, r := range reqs {
		got = append(got, summary{r.Method, r.Path, r.RawQuery, string(r.Body), r.Status})
	}
	want := []summary{
		{"POST", "/data/v1/auth", "", authBody, 200},
		{"GET", "/data/v1/consents", "personalTaxId=" + testCPF, "", 200},
		{"POST", "/data/v1/links", "", `{"redirectUrl":"https://x.example"}`, 400},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests = %+v, want %+v", got, want)
	}
	if h := reqs[1].Header.Get("Authorization"); h != "Bearer "+tok {
		t.Errorf("recorded Authorization = %q, want the bearer token", h)
	}
	if !reqs[0].Time.Equal(e.clock.Now()) {
		t.Errorf("recorded time = %v, want %v", reqs[0].Time, e.clock.Now())
	}

	reqs[0].Header.Set("X-Changed", "1")
	reqs[0].Body[0] = 'X'
	if again := e.sim.Requests()[0]; again.Header.Get("X-Changed") != "" || again.Body[0] != '{' {
		t.Error("Requests returned shared header or body")
	}

	e.sim.FailNext(Rule{Status: 500, Times: 5})
	e.sim.Reset()
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("requests after Reset = %d, want 0", n)
	}
	if res := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, tok, ""); res.status != http.StatusOK {
		t.Errorf("after Reset: status %d, want 200 (rules cleared, token kept)", res.status)
	}
}
