package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name    string
		req     Request
		limit   int
		want    string
		wantErr error
	}{
		{name: "plain", req: Request{Body: `{"a":1}`}, limit: 10, want: `{"a":1}`},
		{name: "plain at limit", req: Request{Body: "12345"}, limit: 5, want: "12345"},
		{name: "plain over limit", req: Request{Body: "123456"}, limit: 5, wantErr: ErrBodyTooLarge},
		{name: "base64", req: Request{Body: base64.StdEncoding.EncodeToString([]byte("héllo\x00")), IsBase64Encoded: true}, limit: 10, want: "héllo\x00"},
		{name: "base64 over limit", req: Request{Body: base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 11))), IsBase64Encoded: true}, limit: 10, wantErr: ErrBodyTooLarge},
		{name: "base64 garbage", req: Request{Body: "!!not base64", IsBase64Encoded: true}, limit: 100, wantErr: ErrBadEncoding},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Body(tc.req, tc.limit)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Body() error = %v, want %v", err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("Body() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	req := Request{Headers: map[string]string{"x-klavi-signature": "lower", "Content-Type": "application/json"}}
	if got := Header(req, "X-Klavi-Signature"); got != "lower" {
		t.Errorf("Header(X-Klavi-Signature) = %q, want %q", got, "lower")
	}
	if got := Header(req, "content-type"); got != "application/json" {
		t.Errorf("Header(content-type) = %q, want %q", got, "application/json")
	}
	if got := Header(req, "missing"); got != "" {
		t.Errorf("Header(missing) = %q, want empty", got)
	}
}

func TestIsJSON(t *testing.T) {
	tests := map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON":                  true,
		"application/problem+json":          true,
		"text/plain":                        false,
		"":                                  false,
		"application/x-www-form-urlencoded": false,
	}
	for ct, want := range tests {
		req := Request{Headers: map[string]string{"content-type": ct}}
		if got := IsJSON(req); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestError(t *testing.T) {
	resp := Error(http.StatusNotFound, "link_not_found", "No link with this id.")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want %d", resp.StatusCode, http.StatusNotFound)
	}
	if got := resp.Headers["Content-Type"]; got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var body ErrorBody
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("decode body %q: %v", resp.Body, err)
	}
	want := ErrorBody{Error: ErrorDetail{Code: "link_not_found", Message: "No link with this id."}}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

func TestAllowlist(t *testing.T) {
	withIP := func(ip string) Request {
		return Request{RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{SourceIP: ip}}}
	}
	empty, err := ParseAllowlist(" ")
	if err != nil {
		t.Fatalf("ParseAllowlist(empty): %v", err)
	}
	if empty.Enabled() || !empty.Allows(withIP("203.0.113.9")) {
		t.Errorf("empty allow list must allow everyone")
	}
	a, err := ParseAllowlist("18.231.92.86, 18.230.43.0/24,2001:db8::/32")
	if err != nil {
		t.Fatalf("ParseAllowlist: %v", err)
	}
	tests := map[string]bool{
		"18.231.92.86":        true,
		"18.231.92.87":        false,
		"18.230.43.17":        true,
		"::ffff:18.230.43.17": true,
		"2001:db8::1":         true,
		"203.0.113.9":         false,
		"":                    false,
		"garbage":             false,
	}
	for ip, want := range tests {
		if got := a.Allows(withIP(ip)); got != want {
			t.Errorf("Allows(%q) = %v, want %v", ip, got, want)
		}
	}
	if _, err := ParseAllowlist("10.0.0.0/33"); err == nil {
		t.Errorf("ParseAllowlist(bad CIDR) succeeded, want error")
	}
	if _, err := ParseAllowlist("not-an-ip"); err == nil {
		t.Errorf("ParseAllowlist(bad address) succeeded, want error")
	}
}

func TestReportWebhookURL(t *testing.T) {
	withContext := func(domain, stage string) Request {
		return Request{RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: domain, Stage: stage}}
	}
	tests := map[string]struct {
		req  Request
		want string
	}{
		"default stage": {withContext("abc.execute-api.sa-east-1.amazonaws.com", "$default"), "https://abc.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"},
		"named stage":   {withContext("abc.example.com", "prod"), "https://abc.example.com/prod/webhooks/klavi/reports"},
		"no domain":     {withContext("", "prod"), ""},
	}
	for name, tc := range tests {
		if got := ReportWebhookURL(tc.req); got != tc.want {
			t.Errorf("%s: ReportWebhookURL = %q, want %q", name, got, tc.want)
		}
	}
}
