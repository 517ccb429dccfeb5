package faultproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
)

// sdkAttempts is the AWS SDK's standard retryer's default, set explicitly.
const sdkAttempts = 3

// backend is the target server: it counts what reaches it and answers each
// AWS protocol with a minimal success.
type backend struct {
	mu     sync.Mutex
	got    []string // "METHOD path host body"
	server *httptest.Server
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, r.Method+" "+r.URL.Path+" "+r.Host+" "+string(body))
		b.mu.Unlock()
		switch {
		case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_"):
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte("{}"))), 10))
			io.WriteString(w, "{}")
		case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager."):
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			io.WriteString(w, `{"Name":"s","SecretString":"v"}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(b.server.Close)
	return b
}

func (b *backend) hits() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// start serves a proxy to b. The server is closed at cleanup; closing it
// earlier waits for every request in flight, which tests use before
// counting.
func start(t *testing.T, b *backend) (*faultproxy.Proxy, *httptest.Server) {
	t.Helper()
	p, err := faultproxy.New(b.server.URL)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	return p, srv
}

func awsConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(endpoint),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = sdkAttempts
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
}

func TestNewRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:80", "ftp://example.com", "http://", "::"} {
		if _, err := faultproxy.New(target); err == nil {
			t.Errorf("New(%q) = nil error, want an error", target)
		}
	}
}

func TestForwardsUnchanged(t *testing.T) {
	b := newBackend(t)
	p, srv := start(t, b)
	resp, err := http.Post(srv.URL+"/data/v1/links?x=1", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
		t.Errorf("answer = %d %s, want the target's 200", resp.StatusCode, body)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if diff := cmp.Diff([]string{"POST /data/v1/links " + host + ` {"a":1}`}, b.hits()); diff != "" {
		t.Errorf("target saw (-want +got):\n%s", diff)
	}
	if got := p.Count(faultproxy.KlaviPath("/data/v1/links")); got != 1 {
		t.Errorf("Count = %d, want 1", got)
	}
	if got := p.Forwarded(faultproxy.Any()); got != 1 {
		t.Errorf("Forwarded = %d, want 1", got)
	}
}

// TestSDKSeesServiceErrors shows each injected AWS error is read by the SDK
// as the service's own: the right error code, retried by the standard
// retryer, and never reaching the target.
func TestSDKSeesServiceErrors(t *testing.T) {
	tests := []struct {
		name     string
		fault    faultproxy.Fault
		match    faultproxy.Matcher
		call     func(ctx context.Context, cfg aws.Config) error
		code     string
		status   int
		specific func(error) bool
	}{
		{
			name: "dynamodb throttle", fault: faultproxy.Throttle(), match: faultproxy.DynamoDBOp("PutItem"),
			call:   putItem,
			code:   "ProvisionedThroughputExceededException",
			status: http.StatusBadRequest,
			specific: func(err error) bool {
				var e *types.ProvisionedThroughputExceededException
				return errors.As(err, &e)
			},
		},
		{
			name: "dynamodb 500", fault: faultproxy.Status(500), match: faultproxy.DynamoDBOp("PutItem"),
			call: putItem, code: "InternalServerError", status: 500,
			specific: func(err error) bool {
				var e *types.InternalServerError
				return errors.As(err, &e)
			},
		},
		{
			name: "s3 slowdown", fault: faultproxy.Throttle(), match: faultproxy.S3Put(),
			call: putObject, code: "SlowDown", status: http.StatusServiceUnavailable,
		},
		{
			name: "s3 500", fault: faultproxy.Status(500), match: faultproxy.S3Put(),
			call: putObject, code: "InternalError", status: 500,
		},
		{
			name: "secrets manager throttle", fault: faultproxy.Throttle(), match: faultproxy.SecretsGet(),
			call: getSecret, code: "ThrottlingException", status: http.StatusBadRequest,
		},
		{
			name: "secrets manager 503", fault: faultproxy.Status(503), match: faultproxy.SecretsGet(),
			call: getSecret, code: "ServiceUnavailable", status: 503,
		},
		{
			name: "eventbridge throttle", fault: faultproxy.Throttle(), match: faultproxy.EventBridgeOp("PutEvents"),
			call: putEvents, code: "ThrottlingException", status: http.StatusBadRequest,
		},
		{
			name: "eventbridge 500", fault: faultproxy.Status(500), match: faultproxy.EventBridgeOp("PutEvents"),
			call: putEvents, code: "InternalException", status: 500,
			specific: func(err error) bool {
				var e *ebtypes.InternalException
				return errors.As(err, &e)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			p, srv := start(t, b)
			cfg := awsConfig(srv.URL)
			p.Inject(faultproxy.Rule{Match: tc.match, Times: sdkAttempts, Fault: tc.fault})

			err := tc.call(t.Context(), cfg)

			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.code {
				t.Fatalf("error = %v, want API error code %s", err, tc.code)
			}
			var httpErr interface{ HTTPStatusCode() int }
			if !errors.As(err, &httpErr) || httpErr.HTTPStatusCode() != tc.status {
				t.Errorf("HTTP status of %v, want %d", err, tc.status)
			}
			if tc.specific != nil && !tc.specific(err) {
				t.Errorf("error %T does not match the SDK's modelled exception", err)
			}
			if got := p.Count(tc.match); got != sdkAttempts {
				t.Errorf("attempts = %d, want %d (the SDK retries this error)", got, sdkAttempts)
			}
			if n := len(b.hits()); n != 0 {
				t.Errorf("target saw %d requests, want 0", n)
			}

			// One more call: the rule is used up and the request passes.
			if err := tc.call(t.Context(), cfg); err != nil {
				t.Errorf("call after the rule was used up: %v", err)
			}
			if got := p.Armed(); got != 0 {
				t.Errorf("Armed = %d, want 0", got)
			}
		})
	}
}

func putItem(ctx context.Context, cfg aws.Config) error {
	_, err := dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String("t"),
		Item:      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	})
	return err
}

func putObject(ctx context.Context, cfg aws.Config) error {
	_, err := s3.NewFromConfig(cfg).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bucket"), Key: aws.String("a/b.json"), Body: strings.NewReader("{}"),
	})
	return err
}

func getSecret(ctx context.Context, cfg aws.Config) error {
	_, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	return err
}

func putEvents(ctx context.Context, cfg aws.Config) error {
	_, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String("klavi-link"), DetailType: aws.String("Report Stored"), Detail: aws.String("{}"),
	}}})
	return err
}

func TestSDKRetriesThroughOneFault(t *testing.T) {
	for _, fault := range []faultproxy.Fault{faultproxy.Throttle(), faultproxy.Status(500), faultproxy.Reset(), faultproxy.ResetAfterForward()} {
		t.Run(fault.String(), func(t *testing.T) {
			b := newBackend(t)
			p, srv := start(t, b)
			p.Inject(faultproxy.Rule{Match: faultproxy.DynamoDBOp("PutItem"), Times: 1, Fault: fault})

			if err := putItem(t.Context(), awsConfig(srv.URL)); err != nil {
				t.Fatalf("PutItem = %v, want success on the SDK's retry", err)
			}
			if got := p.Count(faultproxy.DynamoDBOp("PutItem")); got != 2 {
				t.Errorf("attempts = %d, want 2", got)
			}
			want := 1
			if fault.String() == "ResetAfterForward" {
				want = 2 // the dropped attempt reached the target too
			}
			if got := len(b.hits()); got != want {
				t.Errorf("target saw %d requests, want %d", got, want)
			}
		})
	}
}

func TestKlaviErrorBodies(t *testing.T) {
	tests := []struct {
		fault  faultproxy.Fault
		status int
	}{
		{faultproxy.Throttle(), http.StatusTooManyRequests},
		{faultproxy.Status(503), http.StatusServiceUnavailable},
		{faultproxy.Status(500), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			b := newBackend(t)
			p, srv := start(t, b)
			p.Inject(faultproxy.Rule{Match: faultproxy.KlaviPath("/data/v1/links"), Times: 1, Fault: tc.fault})
			resp, err := http.Post(srv.URL+"/data/v1/links", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			var body struct {
				StatusCode int    `json:"statusCode"`
				Error      string `json:"error"`
				Message    string `json:"message"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode body: %v", err)
			}
			if resp.StatusCode != tc.status || body.StatusCode != tc.status || body.Error != http.StatusText(tc.status) || body.Message == "" {
				t.Errorf("answer = %d %+v, want %d with Klavi's error body", resp.StatusCode, body, tc.status)
			}
			if n := len(b.hits()); n != 0 {
				t.Errorf("target saw %d requests, want 0", n)
			}
		})
	}
}

func TestResetBeforeAndAfterForward(t *testing.T) {
	tests := []struct {
		fault     faultproxy.Fault
		forwarded int
	}{
		{faultproxy.Reset(), 0},
		{faultproxy.ResetAfterForward(), 1},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			b := newBackend(t)
			p, srv := start(t, b)
			p.Inject(faultproxy.Rule{Match: faultproxy.Any(), Times: 1, Fault: tc.fault})

			resp, err := http.Post(srv.URL+"/x", "application/json", strings.NewReader(`{"n":1}`))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("POST answered %d, want a connection error", resp.StatusCode)
			}
			srv.Close() // waits for the proxy's handler to finish
			if got := len(b.hits()); got != tc.forwarded {
				t.Errorf("target saw %d requests, want %d", got, tc.forwarded)
			}
			if got := p.Forwarded(faultproxy.Any()); got != tc.forwarded {
				t.Errorf("Forwarded = %d, want %d", got, tc.forwarded)
			}
			if got := p.Count(faultproxy.Any()); got != 1 {
				t.Errorf("Count = %d, want 1", got)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	t.Run("client gives up first", func(t *testing.T) {
		b := newBackend(t)
		p, srv := start(t, b)
		p.Inject(faultproxy.Rule{Match: faultproxy.Any(), Times: 1, Fault: faultproxy.Delay(time.Minute)})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/x", strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("answered %d, want the client's deadline", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
		srv.Close() // returns once the delayed handler noticed and left
		if got := len(b.hits()); got != 0 {
			t.Errorf("target saw %d requests, want 0", got)
		}
	})
	t.Run("short delay forwards", func(t *testing.T) {
		b := newBackend(t)
		p, srv := start(t, b)
		p.Inject(faultproxy.Rule{Match: faultproxy.Any(), Times: 1, Fault: faultproxy.Delay(time.Millisecond)})
		resp, err := http.Get(srv.URL + "/x")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b.hits()) != 1 {
			t.Errorf("answer = %d, target saw %d; want 200 and 1", resp.StatusCode, len(b.hits()))
		}
	})
}

func TestRuleOrderTimesAndClear(t *testing.T) {
	b := newBackend(t)
	p, srv := start(t, b)
	p.Inject(
		faultproxy.Rule{Match: faultproxy.KlaviPath("/a"), Times: 2, Fault: faultproxy.Status(502)},
		faultproxy.Rule{Match: faultproxy.Any(), Fault: faultproxy.Status(504)}, // every request
	)
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var got []int
	for _, path := range []string{"/a", "/b", "/a", "/a", "/b"} {
		got = append(got, status(path))
	}
	if diff := cmp.Diff([]int{502, 504, 502, 504, 504}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if n := p.Armed(); n != 0 {
		t.Errorf("Armed = %d, want 0 (the unlimited rule does not count)", n)
	}
	p.ClearRules()
	if s := status("/a"); s != http.StatusOK {
		t.Errorf("after ClearRules = %d, want 200", s)
	}
	if c, f := p.Count(faultproxy.KlaviPath("/a")), p.Forwarded(faultproxy.KlaviPath("/a")); c != 4 || f != 1 {
		t.Errorf("Count, Forwarded of /a = %d, %d; want 4, 1", c, f)
	}
	p.ClearCounts()
	if c := p.Count(faultproxy.Any()); c != 0 {
		t.Errorf("Count after ClearCounts = %d, want 0", c)
	}
}

func TestMatchers(t *testing.T) {
	const s3Auth = "AWS4-HMAC-SHA256 Credential=testing/20261124/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
	const ddbAuth = "AWS4-HMAC-SHA256 Credential=testing/20261124/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00"
	req := func(method, target string, header ...string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	tests := []struct {
		name  string
		match faultproxy.Matcher
		req   *http.Request
		want  bool
	}{
		{"dynamodb op", faultproxy.DynamoDBOp("TransactWriteItems"), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "DynamoDB_20120810.TransactWriteItems", "Authorization", ddbAuth), true},
		{"other dynamodb op", faultproxy.DynamoDBOp("TransactWriteItems"), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "DynamoDB_20120810.PutItem"), false},
		{"secrets get", faultproxy.SecretsGet(), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "secretsmanager.GetSecretValue"), true},
		{"eventbridge put events", faultproxy.EventBridgeOp("PutEvents"), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "AWSEvents.PutEvents"), true},
		{"eventbridge other op", faultproxy.EventBridgeOp("PutEvents"), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "AWSEvents.PutRule"), false},
		{"secrets put", faultproxy.SecretsGet(), req("POST", "http://127.0.0.1:1/", "X-Amz-Target", "secretsmanager.PutSecretValue"), false},
		{"s3 put object path style", faultproxy.S3Put(), req("PUT", "http://127.0.0.1:1/bucket/reports/a.json", "Authorization", s3Auth), true},
		{"s3 put object virtual hosted", faultproxy.S3Put(), req("PUT", "http://bucket.s3.amazonaws.com/reports/a.json", "Authorization", s3Auth), true},
		{"s3 create bucket", faultproxy.S3Put(), req("PUT", "http://127.0.0.1:1/bucket", "Authorization", s3Auth), false},
		{"s3 upload part", faultproxy.S3Put(), req("PUT", "http://127.0.0.1:1/bucket/k?partNumber=1&uploadId=u", "Authorization", s3Auth), false},
		{"s3 copy", faultproxy.S3Put(), req("PUT", "http://127.0.0.1:1/bucket/k", "Authorization", s3Auth, "X-Amz-Copy-Source", "/bucket/j"), false},
		{"unsigned put", faultproxy.S3Put(), req("PUT", "http://127.0.0.1:1/bucket/k"), false},
		{"s3 get object", faultproxy.S3Object("GET"), req("GET", "http://localhost:1/bucket/k", "Authorization", s3Auth), true},
		{"s3 list", faultproxy.S3Object("GET"), req("GET", "http://localhost:1/bucket?list-type=2", "Authorization", s3Auth), false},
		{"klavi path", faultproxy.KlaviPath("/data/v1/links"), req("POST", "http://127.0.0.1:1/data/v1/links"), true},
		{"klavi other path", faultproxy.KlaviPath("/data/v1/links"), req("POST", "http://127.0.0.1:1/data/v1/links/x"), false},
		{"any", faultproxy.Any(), req("DELETE", "http://127.0.0.1:1/z"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.match(tc.req); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}
