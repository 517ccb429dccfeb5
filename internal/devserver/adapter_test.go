package devserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

var adapterTime = time.Date(2026, 3, 2, 13, 4, 5, 678e6, time.UTC)

func TestToEvent(t *testing.T) {
	binary := []byte{0xff, 0xfe, 0x00, 0x01}
	tests := []struct {
		name     string
		req      func() *http.Request
		routeKey string
		params   []string
		body     []byte
		want     httpapi.Request
	}{
		{
			name: "get with path parameter, query, repeated headers and cookies",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/links/abc-1?x=1&x=2&y=z", nil)
				r.RemoteAddr = "192.0.2.7:53211"
				r.Header.Add("Accept", "application/json")
				r.Header.Add("X-Trace", "a")
				r.Header.Add("X-Trace", "b")
				r.Header.Add("Cookie", "session=s1; theme=dark")
				r.Header.Set("User-Agent", "demo/1")
				r.SetPathValue("linkId", "abc-1")
				return r
			},
			routeKey: "GET /links/{linkId}",
			params:   []string{"linkId"},
			want: httpapi.Request{
				Version:        "2.0",
				RouteKey:       "GET /links/{linkId}",
				RawPath:        "/links/abc-1",
				RawQueryString: "x=1&x=2&y=z",
				Cookies:        []string{"session=s1", "theme=dark"},
				Headers: map[string]string{
					"accept":            "application/json",
					"x-trace":           "a,b",
					"user-agent":        "demo/1",
					"host":              "127.0.0.1:8080",
					"x-forwarded-for":   "192.0.2.7",
					"x-forwarded-proto": "http",
					"x-forwarded-port":  "8080",
				},
				QueryStringParameters: map[string]string{"x": "1,2", "y": "z"},
				PathParameters:        map[string]string{"linkId": "abc-1"},
			},
		},
		{
			name: "post with a text body",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/links", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("Content-Type", "application/json")
				return r
			},
			routeKey: "POST /links",
			body:     []byte(`{"personalTaxId":"x"}`),
			want: httpapi.Request{
				Version:  "2.0",
				RouteKey: "POST /links",
				RawPath:  "/links",
				Headers: map[string]string{
					"content-type":      "application/json",
					"content-length":    "21",
					"host":              "127.0.0.1:8080",
					"x-forwarded-for":   "127.0.0.1",
					"x-forwarded-proto": "http",
					"x-forwarded-port":  "8080",
				},
				Body: `{"personalTaxId":"x"}`,
			},
		},
		{
			name: "post with a body that is not UTF-8",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "http://localhost/webhooks/klavi/reports", nil)
				r.RemoteAddr = "[::1]:40000"
				r.Header.Set("X-Forwarded-For", "203.0.113.9")
				return r
			},
			routeKey: "POST /webhooks/klavi/reports",
			body:     binary,
			want: httpapi.Request{
				Version:  "2.0",
				RouteKey: "POST /webhooks/klavi/reports",
				RawPath:  "/webhooks/klavi/reports",
				Headers: map[string]string{
					"content-length":    "4",
					"host":              "localhost",
					"x-forwarded-for":   "203.0.113.9",
					"x-forwarded-proto": "http",
				},
				Body:            base64.StdEncoding.EncodeToString(binary),
				IsBase64Encoded: true,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req()
			got := toEvent(r, tc.body, tc.routeKey, tc.params, "req-1", adapterTime)

			want := tc.want
			host := r.Host
			if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
				host = host[:i]
			}
			want.RequestContext.RouteKey = tc.routeKey
			want.RequestContext.AccountID = gatewayAccount
			want.RequestContext.APIID = gatewayAPIID
			want.RequestContext.Stage = "$default"
			want.RequestContext.RequestID = "req-1"
			want.RequestContext.DomainName = r.Host
			want.RequestContext.DomainPrefix = strings.Split(host, ".")[0]
			want.RequestContext.Time = "02/Mar/2026:13:04:05 +0000"
			want.RequestContext.TimeEpoch = adapterTime.UnixMilli()
			want.RequestContext.HTTP.Method = r.Method
			want.RequestContext.HTTP.Path = r.URL.Path
			want.RequestContext.HTTP.Protocol = "HTTP/1.1"
			want.RequestContext.HTTP.SourceIP = remoteIP(r.RemoteAddr)
			want.RequestContext.HTTP.UserAgent = r.UserAgent()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("event mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// captured is what a fake handler saw.
type captured struct {
	req       httpapi.Request
	requestID string
	calls     int
}

func recordingHandler(c *captured, resp httpapi.Response, err error) lambdaFunc {
	return func(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
		c.calls++
		c.req = req
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			c.requestID = lc.AwsRequestID
		}
		return resp, err
	}
}

// serveRoute runs one request through a route on a ServeMux, as the server
// does, and returns the recorded answer.
func serveRoute(t *testing.T, routeKey string, h lambdaFunc, req *http.Request, log *slog.Logger) *httptest.ResponseRecorder {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(routeKey, newLambdaRoute("test-fn", routeKey, h, log))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestLambdaRouteResponse(t *testing.T) {
	var c captured
	resp := httpapi.Response{
		StatusCode:        http.StatusCreated,
		Headers:           map[string]string{"Content-Type": "application/json", "X-One": "1"},
		MultiValueHeaders: map[string][]string{"X-Many": {"a", "b"}},
		Cookies:           []string{"a=1; Path=/", "b=2"},
		Body:              base64.StdEncoding.EncodeToString([]byte(`{"ok":true}`)),
		IsBase64Encoded:   true,
	}
	req := httptest.NewRequest(http.MethodPost, "/links/L-1/reports", strings.NewReader(`{"products":["all"]}`))
	rec := serveRoute(t, "POST /links/{linkId}/reports", recordingHandler(&c, resp, nil), req, nil)

	if rec.Code != http.StatusCreated {
		t.Errorf("status = %d, want 201", rec.Code)
	}
	if got := rec.Body.String(); got != `{"ok":true}` {
		t.Errorf("body = %q, want the decoded base64 body", got)
	}
	h := rec.Header()
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if diff := cmp.Diff([]string{"a", "b"}, h.Values("X-Many")); diff != "" {
		t.Errorf("X-Many mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a=1; Path=/", "b=2"}, h.Values("Set-Cookie")); diff != "" {
		t.Errorf("Set-Cookie mismatch (-want +got):\n%s", diff)
	}
	if got := h.Get("Apigw-Requestid"); got == "" || got != c.requestID || got != c.req.RequestContext.RequestID {
		t.Errorf("Apigw-Requestid = %q, Lambda context request id %q, event request id %q; want one id",
			got, c.requestID, c.req.RequestContext.RequestID)
	}
	if got := c.req.PathParameters["linkId"]; got != "L-1" {
		t.Errorf("path parameter linkId = %q, want L-1", got)
	}
	if got := c.req.RouteKey; got != "POST /links/{linkId}/reports" {
		t.Errorf("route key = %q", got)
	}
	if got := c.req.Body; got != `{"products":["all"]}` {
		t.Errorf("event body = %q", got)
	}
}

func TestLambdaRouteBodyLimit(t *testing.T) {
	tests := []struct {
		name        string
		size        int
		knownLength bool
		wantStatus  int
		wantCalled  bool
	}{
		{"at the limit", MaxRequestBytes, true, http.StatusOK, true},
		{"over the limit, length declared", MaxRequestBytes + 1, true, http.StatusRequestEntityTooLarge, false},
		{"over the limit, length unknown", MaxRequestBytes + 1, false, http.StatusRequestEntityTooLarge, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c captured
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("a"), tc.size))
			if !tc.knownLength {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest(http.MethodPost, "/webhooks/klavi/reports", body)
			if !tc.knownLength {
				req.ContentLength = -1
			}
			rec := serveRoute(t, "POST /webhooks/klavi/reports", recordingHandler(&c, httpapi.Response{StatusCode: 200}, nil), req, nil)
			if rec.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if called := c.calls > 0; called != tc.wantCalled {
				t.Errorf("handler called = %v, want %v", called, tc.wantCalled)
			}
			if tc.wantCalled && len(c.req.Body) != tc.size {
				t.Errorf("event body length = %d, want %d", len(c.req.Body), tc.size)
			}
			if !tc.wantCalled {
				if got := rec.Body.String(); got != `{"message":"Request Entity Too Large"}` {
					t.Errorf("body = %q, want API Gateway's 413 body", got)
				}
			}
		})
	}
}

func TestLambdaRouteFailures(t *testing.T) {
	secret := "internal detail 52998224725"
	tests := []struct {
		name       string
		handler    lambdaFunc
		wantStatus int
		wantBody   string
		wantLog    string
	}{
		{
			name: "handler error",
			handler: func(context.Context, httpapi.Request) (httpapi.Response, error) {
				return httpapi.Response{}, errors.New(secret)
			},
			wantStatus: http.StatusInternalServerError,
			wantBody:   `{"message":"Internal Server Error"}`,
			wantLog:    "function returned an error",
		},
		{
			name: "handler panic",
			handler: func(context.Context, httpapi.Request) (httpapi.Response, error) {
				panic(secret)
			},
			wantStatus: http.StatusInternalServerError,
			wantBody:   `{"message":"Internal Server Error"}`,
			wantLog:    "panic",
		},
		{
			name: "body that does not decode",
			handler: func(context.Context, httpapi.Request) (httpapi.Response, error) {
				return httpapi.Response{StatusCode: 200, Body: "%%%" + secret, IsBase64Encoded: true}, nil
			},
			wantStatus: http.StatusBadGateway,
			wantBody:   `{"message":"Bad Gateway"}`,
			wantLog:    "unusable response",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := withRequestIDs(slog.New(slog.NewJSONHandler(&logs, nil)))
			req := httptest.NewRequest(http.MethodPost, "/links", strings.NewReader("{}"))
			rec := serveRoute(t, "POST /links", tc.handler, req, log)
			if rec.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if got := rec.Body.String(); got != tc.wantBody {
				t.Errorf("body = %q, want %q", got, tc.wantBody)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("logs = %s, want a line about %q", logs.String(), tc.wantLog)
			}
			id := rec.Header().Get("Apigw-Requestid")
			if id == "" || !strings.Contains(logs.String(), `"requestId":"`+id+`"`) {
				t.Errorf("logs = %s, want the request id %q on the error line", logs.String(), id)
			}
		})
	}
}

func TestNewLambdaRouteParams(t *testing.T) {
	tests := []struct {
		routeKey string
		want     []string
	}{
		{"POST /links", nil},
		{"GET /links/{linkId}", []string{"linkId"}},
		{"POST /links/{linkId}/reports", []string{"linkId"}},
	}
	for _, tc := range tests {
		t.Run(tc.routeKey, func(t *testing.T) {
			got := newLambdaRoute("fn", tc.routeKey, nil, nil).params
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("params mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := newRequestID(), newRequestID()
	if a == b {
		t.Errorf("two request ids are both %q", a)
	}
	if len(a) != 36 || strings.Count(a, "-") != 4 {
		t.Errorf("request id %q is not UUID-shaped", a)
	}
}
