package s3lite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestObjectURL(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		region   string
		bucket   string
		key      string
		want     string // u.String()
		wantURI  string // the request target on the wire
	}{
		{
			name: "emulator endpoint is path-style", endpoint: "http://127.0.0.1:5000", region: "us-east-1",
			bucket: "reports", key: "reports/L1/p/r.json",
			want: "http://127.0.0.1:5000/reports/reports/L1/p/r.json", wantURI: "/reports/reports/L1/p/r.json",
		},
		{
			name: "endpoint with a path and a trailing slash", endpoint: "https://s3.example.com/base/", region: "us-east-1",
			bucket: "reports", key: "k",
			want: "https://s3.example.com/base/reports/k", wantURI: "/base/reports/k",
		},
		{
			name: "bucket without key on an endpoint", endpoint: "http://localhost:4566", region: "us-east-1",
			bucket: "reports",
			want:   "http://localhost:4566/reports", wantURI: "/reports",
		},
		{
			name: "AWS is virtual-hosted", region: "sa-east-1", bucket: "reports-bucket", key: "reports/L1/p/r.json",
			want: "https://reports-bucket.s3.sa-east-1.amazonaws.com/reports/L1/p/r.json", wantURI: "/reports/L1/p/r.json",
		},
		{
			name: "AWS bucket without key", region: "sa-east-1", bucket: "reports-bucket",
			want: "https://reports-bucket.s3.sa-east-1.amazonaws.com/", wantURI: "/",
		},
		{
			name: "bucket with dots is path-style", region: "us-east-1", bucket: "reports.example.com", key: "k",
			want: "https://s3.us-east-1.amazonaws.com/reports.example.com/k", wantURI: "/reports.example.com/k",
		},
		{
			name: "legacy bucket name is path-style", region: "us-east-1", bucket: "Legacy_Bucket", key: "k",
			want: "https://s3.us-east-1.amazonaws.com/Legacy_Bucket/k", wantURI: "/Legacy_Bucket/k",
		},
		{
			name: "China region", region: "cn-north-1", bucket: "reports", key: "k",
			want: "https://reports.s3.cn-north-1.amazonaws.com.cn/k", wantURI: "/k",
		},
		{
			name: "key escaping keeps slashes and unreserved bytes", endpoint: "http://127.0.0.1:5000", region: "us-east-1",
			bucket: "b", key: "a b/c+d/100%/x%2Fy/ação/~._-/q?#;=&",
			want:    "http://127.0.0.1:5000/b/a%20b/c%2Bd/100%25/x%252Fy/a%C3%A7%C3%A3o/~._-/q%3F%23%3B%3D%26",
			wantURI: "/b/a%20b/c%2Bd/100%25/x%252Fy/a%C3%A7%C3%A3o/~._-/q%3F%23%3B%3D%26",
		},
		{
			name: "dot segments and double slashes are kept", region: "us-east-1", bucket: "reports", key: "a/../b//c/./d",
			want: "https://reports.s3.us-east-1.amazonaws.com/a/../b//c/./d", wantURI: "/a/../b//c/./d",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aws.Config{Region: tc.region}
			if tc.endpoint != "" {
				cfg.BaseEndpoint = aws.String(tc.endpoint)
			}
			u, err := New(cfg).objectURL(tc.bucket, tc.key)
			if err != nil {
				t.Fatalf("objectURL(%q, %q) error = %v", tc.bucket, tc.key, err)
			}
			if got := u.String(); got != tc.want {
				t.Errorf("objectURL(%q, %q) = %s, want %s", tc.bucket, tc.key, got, tc.want)
			}
			if got := u.RequestURI(); got != tc.wantURI {
				t.Errorf("objectURL(%q, %q).RequestURI() = %s, want %s", tc.bucket, tc.key, got, tc.wantURI)
			}
		})
	}
}

func TestObjectURLErrors(t *testing.T) {
	tests := []struct {
		name   string
		cfg    aws.Config
		bucket string
	}{
		{name: "no region", cfg: aws.Config{}, bucket: "b-1"},
		{name: "bad region", cfg: aws.Config{Region: "us-east-1.evil.com/"}, bucket: "b-1"},
		{name: "empty bucket", cfg: aws.Config{Region: "us-east-1"}, bucket: ""},
		{name: "bucket with a slash", cfg: aws.Config{Region: "us-east-1"}, bucket: "a/b"},
		{name: "unparsable endpoint", cfg: aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("::nope")}, bucket: "b-1"},
		{name: "endpoint without host", cfg: aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("localhost")}, bucket: "b-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if u, err := New(tc.cfg).objectURL(tc.bucket, "k"); err == nil {
				t.Errorf("objectURL(%q) = %s, want an error", tc.bucket, u)
			}
		})
	}
}

// endpointSource stands in for the SDK's environment and shared config
// sources.
type endpointSource struct {
	s3     string
	ignore bool
}

func (s endpointSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if sdkID == "S3" && s.s3 != "" {
		return s.s3, true, nil
	}
	return "", false, nil
}

func (s endpointSource) GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error) {
	return s.ignore, s.ignore, nil
}

func TestBaseEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	tests := []struct {
		name    string
		base    string
		sources []any
		want    string
	}{
		{name: "none", want: ""},
		{name: "config base endpoint", base: "http://base:1", want: "http://base:1"},
		{name: "service endpoint wins", base: "http://base:1", sources: []any{endpointSource{s3: "http://s3:2"}}, want: "http://s3:2"},
		{name: "service endpoint alone", sources: []any{struct{}{}, endpointSource{s3: "http://s3:2"}}, want: "http://s3:2"},
		{name: "configured endpoints ignored", base: "http://base:1", sources: []any{endpointSource{s3: "http://s3:2", ignore: true}}, want: "http://base:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aws.Config{ConfigSources: tc.sources}
			if tc.base != "" {
				cfg.BaseEndpoint = aws.String(tc.base)
			}
			if got := baseEndpoint(cfg); got != tc.want {
				t.Errorf("baseEndpoint() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBaseEndpointOnlyGeneralEnv(t *testing.T) {
	// With only AWS_ENDPOINT_URL in the environment the SDK keeps the
	// config's endpoint and skips the shared config's S3 section.
	t.Setenv("AWS_ENDPOINT_URL", "http://base:1")
	cfg := aws.Config{BaseEndpoint: aws.String("http://base:1"), ConfigSources: []any{endpointSource{s3: "http://s3:2"}}}
	if got := baseEndpoint(cfg); got != "http://base:1" {
		t.Errorf("baseEndpoint() = %q, want http://base:1", got)
	}
}

func TestBackoffBounds(t *testing.T) {
	c := New(aws.Config{}, WithBackoff(100*time.Millisecond, time.Second))
	tests := []struct {
		retry    int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		for range 50 {
			if got := c.backoff(tc.retry); got < tc.min || got > tc.max {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.retry, got, tc.min, tc.max)
			}
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"500", &APIError{StatusCode: 500, Code: "InternalError"}, true},
		{"502 without body", &APIError{StatusCode: 502, Code: "BadGateway"}, true},
		{"503 SlowDown", &APIError{StatusCode: 503, Code: "SlowDown"}, true},
		{"504", &APIError{StatusCode: 504, Code: "GatewayTimeout"}, true},
		{"429", &APIError{StatusCode: 429, Code: "TooManyRequests"}, true},
		{"400 RequestTimeout", &APIError{StatusCode: 400, Code: "RequestTimeout"}, true},
		{"400 InvalidArgument", &APIError{StatusCode: 400, Code: "InvalidArgument"}, false},
		{"403", &APIError{StatusCode: 403, Code: "AccessDenied"}, false},
		{"404", &APIError{StatusCode: 404, Code: "NoSuchKey"}, false},
		{"409", &APIError{StatusCode: 409, Code: "ConditionalRequestConflict"}, false},
		{"412", &APIError{StatusCode: 412, Code: "PreconditionFailed"}, false},
		{"501", &APIError{StatusCode: 501, Code: "NotImplemented"}, false},
		{"connection reset", fmt.Errorf("put: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"closed before response", fmt.Errorf("do: %w", io.EOF), true},
		{"truncated body", fmt.Errorf("read response: %w", io.ErrUnexpectedEOF), true},
		{"no such host", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, false},
		{"dns timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, true},
		{"invalid header", errors.New(`net/http: invalid header field value for "X-Amz-Meta-A"`), false},
		{"context canceled", context.Canceled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStatusCode(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusNotFound:           "NotFound",
		http.StatusPreconditionFailed: "PreconditionFailed",
		http.StatusConflict:           "Conflict",
		http.StatusNotModified:        "NotModified",
		http.StatusForbidden:          "Forbidden",
		599:                           "HTTP599",
	} {
		if got := statusCode(status); got != want {
			t.Errorf("statusCode(%d) = %q, want %q", status, got, want)
		}
	}
}
