package reportstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// The tests in this file drive the store through the SDK's own S3 client
// against a local HTTP server, to pin what goes over the wire: headers,
// body, retries and errors. The emulator tests (store_test.go) cover what
// S3 does with it.

const (
	wireAccessKey    = "AKIDWIRETEST"
	wireSecretKey    = "wire-secret-key-do-not-leak"
	wireSessionToken = "wire-session-token-do-not-leak"
)

// wireRequest is what the server saw of one request.
type wireRequest struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// wireServer records every request and answers with answer, which may be
// nil for 200 with no body.
type wireServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []wireRequest
}

func newWireServer(t *testing.T, useTLS bool, answer func(n int, w http.ResponseWriter, r wireRequest) bool) *wireServer {
	t.Helper()
	s := &wireServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		req := wireRequest{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		n := len(s.requests)
		s.mu.Unlock()
		if answer == nil || !answer(n, w, req) {
			w.WriteHeader(http.StatusOK)
		}
	})
	if useTLS {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *wireServer) seen() []wireRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wireRequest(nil), s.requests...)
}

// client is the SDK's S3 client pointed at the server, configured as the
// functions configure theirs, with retry waits cut short.
func (s *wireServer) client() *s3.Client {
	cfg := aws.Config{
		Region:      "sa-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(wireAccessKey, wireSecretKey, wireSessionToken),
		HTTPClient:  s.Client(),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.URL)
		o.UsePathStyle = true
	})
}

func writeS3Error(w http.ResponseWriter, status int, code, extra string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>injected</Message>`+extra+`<RequestId>REQ123</RequestId></Error>`)
}

// TestPutOnTheWire checks the one request a Put sends, over plain HTTP (an
// emulator) and TLS (S3), where the SDK's defaults differ: the body goes
// as is (no aws-chunked encoding, no trailer), once, with the SHA-256 as
// both the object checksum and the signed payload hash, and no checksum
// the SDK computed on its own.
func TestPutOnTheWire(t *testing.T) {
	body := klavireporttest.Synthetic(1<<20, 1, "pf_checking_account")
	sum := sha256.Sum256(body)
	key := reportstore.ReportKey("L1", "pf_checking_account", "rep-1")
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[useTLS]
		t.Run(name, func(t *testing.T) {
			srv := newWireServer(t, useTLS, nil)
			s := reportstore.New(srv.client(), testBucket, reportstore.Options{})
			if _, err := s.Put(t.Context(), reportObject(key, body)); err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			reqs := srv.seen()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPut || r.path != "/"+testBucket+"/"+key {
				t.Errorf("request = %s %s, want PUT /%s/%s", r.method, r.path, testBucket, key)
			}
			if !bytes.Equal(r.body, body) {
				t.Errorf("body sent (%d bytes) differs from the report (%d bytes)", len(r.body), len(body))
			}
			for _, c := range []struct{ header, want string }{
				{"If-None-Match", "*"},
				{"X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(sum[:])},
				{"X-Amz-Content-Sha256", hex.EncodeToString(sum[:])},
				{"X-Amz-Server-Side-Encryption", "AES256"},
				{"X-Amz-Meta-Sha256", hex.EncodeToString(sum[:])},
				{"Content-Type", "application/json"},
				{"Content-Encoding", ""},
				{"X-Amz-Trailer", ""},
				{"X-Amz-Security-Token", wireSessionToken},
			} {
				if got := r.header.Get(c.header); got != c.want {
					t.Errorf("%s = %q, want %q", c.header, got, c.want)
				}
			}
			for h := range r.header {
				if lh := strings.ToLower(h); strings.HasPrefix(lh, "x-amz-checksum-") && lh != "x-amz-checksum-sha256" {
					t.Errorf("request carries %s: a checksum the SDK computed besides the SHA-256", h)
				}
			}
			if auth := r.header.Get("Authorization"); !strings.Contains(auth, "/s3/aws4_request") || !strings.Contains(auth, "x-amz-content-sha256") {
				t.Errorf("Authorization = %q, want SigV4 for s3 signing x-amz-content-sha256", auth)
			}
		})
	}
}

// TestPutRetriesThrottling: S3's 503 SlowDown and 500s are retried by the
// SDK, each attempt sending the whole body again, and Put succeeds.
func TestPutRetriesThrottling(t *testing.T) {
	body := klavireporttest.Synthetic(1<<20, 1, "")
	tests := []struct {
		name     string
		fail     int
		status   int
		code     string
		requests int
	}{
		{"503 SlowDown", 1, http.StatusServiceUnavailable, "SlowDown", 2},
		{"two 500s", 2, http.StatusInternalServerError, "InternalError", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWireServer(t, false, func(n int, w http.ResponseWriter, _ wireRequest) bool {
				if n > tc.fail {
					return false
				}
				writeS3Error(w, tc.status, tc.code, "")
				return true
			})
			s := reportstore.New(srv.client(), testBucket, reportstore.Options{})
			if _, err := s.Put(t.Context(), reportObject(reportstore.UnmatchedKey("l", "p", "r"), body)); err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			reqs := srv.seen()
			if len(reqs) != tc.requests {
				t.Fatalf("server saw %d requests, want %d", len(reqs), tc.requests)
			}
			for i, r := range reqs {
				if !bytes.Equal(r.body, body) {
					t.Errorf("attempt %d sent %d bytes, want the whole %d-byte body", i+1, len(r.body), len(body))
				}
			}
		})
	}
}

// TestPutLandedBeforeRetry covers a conditional write whose first attempt
// is stored but whose answer is lost (a 503 after the write): the SDK's
// retry is refused with 412, which Put reports as ErrExists, the report
// being stored.
func TestPutLandedBeforeRetry(t *testing.T) {
	var mu sync.Mutex
	stored := map[string][]byte{}
	srv := newWireServer(t, false, func(n int, w http.ResponseWriter, r wireRequest) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := stored[r.path]; ok && r.header.Get("If-None-Match") == "*" {
			writeS3Error(w, http.StatusPreconditionFailed, "PreconditionFailed", "")
			return true
		}
		stored[r.path] = r.body
		if n == 1 {
			writeS3Error(w, http.StatusServiceUnavailable, "SlowDown", "")
			return true
		}
		return false
	})
	s := reportstore.New(srv.client(), testBucket, reportstore.Options{})
	body := []byte(`{"productReportId":"r"}`)
	key := reportstore.UnmatchedKey("l", "p", "r")
	if _, err := s.Put(t.Context(), reportObject(key, body)); !errors.Is(err, reportstore.ErrExists) {
		t.Errorf("Put() error = %v, want %v", err, reportstore.ErrExists)
	}
	if got := len(srv.seen()); got != 2 {
		t.Errorf("server saw %d requests, want 2", got)
	}
	if got := stored["/"+testBucket+"/"+key]; !bytes.Equal(got, body) {
		t.Errorf("stored %q, want the report", got)
	}
}

// TestWireErrorsHideSecretsAndBody: whatever S3 answers, a Put error names
// the bucket and key but holds no credentials and no body content, not
// even what an error document echoes back of the request.
func TestWireErrorsHideSecretsAndBody(t *testing.T) {
	const cpf = "52998224725"
	body := []byte(`{"enquiryCpf":"` + cpf + `","productReportId":"r"}`)
	const echoed = "<StringToSign>ECHOED-REQUEST</StringToSign><CanonicalRequest>ECHOED-REQUEST</CanonicalRequest>"
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"signature error document", func(w http.ResponseWriter) {
			writeS3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "<AWSAccessKeyId>"+wireAccessKey+"</AWSAccessKeyId>"+echoed)
		}},
		{"access denied", func(w http.ResponseWriter) { writeS3Error(w, http.StatusForbidden, "AccessDenied", "") }},
		{"not XML", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "<html>ECHOED-REQUEST</html>")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWireServer(t, false, func(_ int, w http.ResponseWriter, _ wireRequest) bool {
				tc.answer(w)
				return true
			})
			s := reportstore.New(srv.client(), testBucket, reportstore.Options{})
			key := reportstore.ReportKey("L1", "pf_loans", "r")
			_, err := s.Put(t.Context(), reportstore.Object{Key: key, Body: body, RequestID: cpf})
			if err == nil {
				t.Fatal("Put() error = nil, want the S3 failure")
			}
			msg := err.Error()
			if !strings.Contains(msg, testBucket) || !strings.Contains(msg, key) {
				t.Errorf("error %q does not name the bucket and key", msg)
			}
			for _, leak := range []string{wireSecretKey, wireSessionToken, cpf, "enquiryCpf", "ECHOED-REQUEST"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q holds %q", msg, leak)
				}
			}
		})
	}
}

// TestPutThroughSDKAllocation guards the memory bar with the SDK's own
// client in the path: a Put of a 1 MB report allocates far less than the
// report, so neither the store nor the SDK copies the body.
func TestPutThroughSDKAllocation(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	client := (&wireServer{Server: srv}).client()
	body := klavireporttest.Synthetic(1<<20, 1, "")
	s := reportstore.New(client, testBucket, reportstore.Options{})
	obj := reportObject(reportstore.UnmatchedKey("l", "p", "r"), body)
	ctx := context.Background()
	if _, err := s.Put(ctx, obj); err != nil { // warm the connection
		t.Fatalf("Put() error = %v", err)
	}
	const runs = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := s.Put(ctx, obj); err != nil {
			t.Fatalf("Put() error = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("Put(1 MB) through the SDK client allocated %d bytes per call (server side included)", perCall)
	if limit := uint64(len(body)) / 4; perCall > limit {
		t.Errorf("Put(1 MB) allocated %d bytes per call, want <= %d (a quarter of the report)", perCall, limit)
	}
}
