package s3lite_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/openfinance-br/klavi-link-lambda/pkg/s3lite"
)

// fastRetries keeps the waits between attempts short.
var fastRetries = s3lite.WithBackoff(time.Millisecond, 2*time.Millisecond)

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>injected</Message><RequestId>REQ123</RequestId></Error>`)
}

// failFirst answers the first n requests with status and code, without
// reading their bodies.
func failFirst(n, status int, code string) faultFunc {
	return func(i int, w http.ResponseWriter, _ *http.Request) bool {
		if i > n {
			return false
		}
		writeError(w, status, code)
		return true
	}
}

// resetFirst drops the connection of the first request without answering,
// with a TCP reset rather than an orderly close.
func resetFirst(t *testing.T) faultFunc {
	return func(i int, w http.ResponseWriter, r *http.Request) bool {
		if i > 1 {
			return false
		}
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
		conn.Close()
		return true
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	// A body big enough that the transport is still sending it when the
	// refusal arrives, so the next attempt must not share the reader.
	body := randomBytes(t, 1<<20)
	tests := []struct {
		name     string
		fault    func(t *testing.T) faultFunc
		requests int32
	}{
		{"503 SlowDown", func(*testing.T) faultFunc { return failFirst(1, http.StatusServiceUnavailable, "SlowDown") }, 2},
		{"two 500s", func(*testing.T) faultFunc { return failFirst(2, http.StatusInternalServerError, "InternalError") }, 3},
		{"400 RequestTimeout", func(*testing.T) faultFunc { return failFirst(1, http.StatusBadRequest, "RequestTimeout") }, 2},
		{"connection reset", resetFirst, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFront(t, tc.fault(t))
			lite := s3lite.New(liteConfig(t, f), fastRetries)
			key := "retry/" + tc.name
			if _, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
				ChecksumSHA256: aws.String(sha256Base64(body)), IfNoneMatch: aws.String("*"),
			}); err != nil {
				t.Fatalf("PutObject() error = %v", err)
			}
			if _, got := sdkGet(t, sdk, bucket, key); !bytes.Equal(got, body) {
				t.Errorf("stored object differs from the body put")
			}
			if got := f.requests.Load(); got != tc.requests {
				t.Errorf("server saw %d requests, want %d", got, tc.requests)
			}
		})
	}
}

func TestRetryReadingResponse(t *testing.T) {
	t.Parallel()
	_, bucket := newBucket(t)
	// The first answer promises a body and stops short.
	f := newFront(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n > 1 {
			return false
		}
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "<ListBucketResult>")
		return true
	})
	lite := s3lite.New(liteConfig(t, f), fastRetries)
	out, err := lite.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListObjectsV2() error = %v", err)
	}
	if aws.ToString(out.Name) != bucket || f.requests.Load() != 2 {
		t.Errorf("ListObjectsV2() Name = %q after %d requests, want %q after 2", aws.ToString(out.Name), f.requests.Load(), bucket)
	}
}

func TestRetryLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxAttempts int
		status      int
		code        string
		want        int32
	}{
		{name: "default attempts", status: http.StatusServiceUnavailable, code: "SlowDown", want: 3},
		{name: "configured attempts", maxAttempts: 5, status: http.StatusServiceUnavailable, code: "SlowDown", want: 5},
		{name: "one attempt", maxAttempts: 1, status: http.StatusInternalServerError, code: "InternalError", want: 1},
		{name: "client error", status: http.StatusBadRequest, code: "InvalidArgument", want: 1},
		{name: "forbidden", status: http.StatusForbidden, code: "AccessDenied", want: 1},
		{name: "conflict", status: http.StatusConflict, code: "ConditionalRequestConflict", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFront(t, failFirst(1000, tc.status, tc.code))
			cfg := liteConfig(t, f)
			cfg.RetryMaxAttempts = tc.maxAttempts
			lite := s3lite.New(cfg, fastRetries)
			_, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String("bucket"), Key: aws.String("k"), Body: strings.NewReader("body"),
			})
			var apiErr *s3lite.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tc.code || apiErr.StatusCode != tc.status || apiErr.RequestID != "REQ123" {
				t.Errorf("PutObject() error = %v, want %s with HTTP %d and request id REQ123", err, tc.code, tc.status)
			}
			if got := f.requests.Load(); got != tc.want {
				t.Errorf("server saw %d requests, want %d", got, tc.want)
			}
		})
	}
}

func TestContextCanceledDuringRequest(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	f := newFront(t, func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		arrived <- struct{}{}
		<-r.Context().Done()
		return true
	})
	lite := s3lite.New(liteConfig(t, f), fastRetries)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := lite.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetObject() error = %v, want %v", err, context.Canceled)
	}
	if got := f.requests.Load(); got != 1 {
		t.Errorf("server saw %d requests, want 1", got)
	}
}

func TestContextCanceledDuringBackoff(t *testing.T) {
	t.Parallel()
	f := newFront(t, failFirst(1000, http.StatusServiceUnavailable, "SlowDown"))
	cfg := liteConfig(t, f)
	answered := make(chan struct{}, 10)
	cfg.HTTPClient = &bufferingClient{answered: answered}
	lite := s3lite.New(cfg, s3lite.WithBackoff(time.Hour, time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-answered
		cancel()
	}()
	_, err := lite.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
	var apiErr smithy.APIError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "SlowDown" {
		t.Errorf("PutObject() error = %v, want %v wrapping the last SlowDown", err, context.Canceled)
	}
	if got := f.requests.Load(); got != 1 {
		t.Errorf("server saw %d requests, want 1", got)
	}
}

// bufferingClient reads each response whole, then reports it on answered,
// so a test can act once the client has the answer in hand.
type bufferingClient struct {
	http.Client
	answered chan<- struct{}
}

func (c *bufferingClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.Client.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.answered <- struct{}{}
	return resp, nil
}

// TestConditionalPutRetriedAfterItLanded covers a conditional write whose
// first attempt is stored but whose answer is lost: the retry is refused
// with 412, which the report store reads as "already stored".
func TestConditionalPutRetriedAfterItLanded(t *testing.T) {
	t.Parallel()
	_, bucket := newBucket(t)
	var f *front
	f = newFront(t, func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		// Store it through the emulator, then answer 503 instead of 200.
		rec := &discardWriter{header: http.Header{}}
		f.Config.Handler.ServeHTTP(rec, r)
		writeError(w, http.StatusServiceUnavailable, "SlowDown")
		return true
	})
	lite := s3lite.New(liteConfig(t, f), fastRetries)
	_, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("landed"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*"),
	})
	var status interface{ HTTPStatusCode() int }
	if !errors.As(err, &status) || status.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Errorf("PutObject() error = %v, want HTTP 412", err)
	}
	// The first request, the store behind its answer, and the retry.
	if got := f.requests.Load(); got != 3 {
		t.Errorf("server saw %d requests, want 3", got)
	}
}

type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(status int)      { d.status = status }
