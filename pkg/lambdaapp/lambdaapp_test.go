package lambdaapp

import (
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
)

func TestObserveKlaviRecordsOutcomeAndLatency(t *testing.T) {
	rec := metricstest.NewCapture("test")
	a := &App{Metrics: rec.Recorder}
	a.observeKlavi(klavi.Call{Endpoint: "POST /data/v1/links", Status: 200, Duration: 40 * time.Millisecond})
	a.observeKlavi(klavi.Call{Endpoint: "POST /data/v1/links", Status: 503, Duration: time.Millisecond})
	a.observeKlavi(klavi.Call{Endpoint: "POST /data/v1/auth", Status: 0})

	tests := []struct {
		dims map[string]string
		want float64
	}{
		{map[string]string{"Endpoint": "POST /data/v1/links", "Outcome": "ok"}, 1},
		{map[string]string{"Endpoint": "POST /data/v1/links", "Outcome": "5xx"}, 1},
		{map[string]string{"Endpoint": "POST /data/v1/auth", "Outcome": "network_error"}, 1},
	}
	for _, tc := range tests {
		if got := rec.Sum("KlaviCalls", tc.dims); got != tc.want {
			t.Errorf("KlaviCalls%v = %v, want %v", tc.dims, got, tc.want)
		}
	}
	if got := rec.Sum("KlaviLatency", map[string]string{"Endpoint": "POST /data/v1/links"}); got != 41 {
		t.Errorf("KlaviLatency(links) = %v ms, want 41", got)
	}
}

// lambdaEnv sets the environment Lambda gives a function, with no shared
// config or credentials file, so the host's own AWS setup cannot leak in.
func lambdaEnv(t *testing.T, extra map[string]string) {
	t.Helper()
	env := map[string]string{
		"AWS_REGION": "sa-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "session", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE":             filepath.Join(t.TempDir(), "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "credentials"),
		"AWS_PROFILE":                 "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "AWS_MAX_ATTEMPTS": "",
	}
	maps.Copy(env, extra)
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// TestLoadUsesStandardAWSSettings pins what config.LoadDefaultConfig gives
// the functions: the region, the role's credentials and the retry attempts
// from the environment.
func TestLoadUsesStandardAWSSettings(t *testing.T) {
	lambdaEnv(t, map[string]string{"AWS_MAX_ATTEMPTS": "5", "AWS_RETRY_MODE": "adaptive"})
	app, err := Load(t.Context(), "test")
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if app.AWS.Region != "sa-east-1" || app.AWS.RetryMaxAttempts != 5 || app.AWS.RetryMode != aws.RetryModeAdaptive {
		t.Errorf("AWS config = region %q, attempts %d, retry mode %q; want sa-east-1, 5, adaptive",
			app.AWS.Region, app.AWS.RetryMaxAttempts, app.AWS.RetryMode)
	}
	creds, err := app.AWS.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	if creds.AccessKeyID != "AKIDEXAMPLE" || creds.SessionToken != "session" {
		t.Errorf("credentials = %q/%q, want the environment's", creds.AccessKeyID, creds.SessionToken)
	}
}

func TestLoadWithoutRegionFails(t *testing.T) {
	lambdaEnv(t, map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
	if _, err := Load(t.Context(), "test"); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("Load() without a region error = %v, want one naming AWS_REGION", err)
	}
}

// TestS3ClientEndpoints sends one S3 request from a client built as the
// functions build theirs and checks where it goes: an endpoint from
// AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 is used, with the bucket in the
// path even under a host name.
func TestS3ClientEndpoints(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Host+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	byName := "http://localhost:" + port
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"general endpoint by IP", map[string]string{"AWS_ENDPOINT_URL": srv.URL}, "127.0.0.1:" + port + " /reports/k.json"},
		{"general endpoint by name", map[string]string{"AWS_ENDPOINT_URL": byName}, "localhost:" + port + " /reports/k.json"},
		{"S3 endpoint wins", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_S3": byName}, "localhost:" + port + " /reports/k.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lambdaEnv(t, tc.env)
			app, err := Load(t.Context(), "test")
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			mu.Lock()
			paths = nil
			mu.Unlock()
			client := s3.NewFromConfig(app.AWS, S3Options)
			if _, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("reports"), Key: aws.String("k.json")}); err != nil {
				t.Fatalf("HeadObject() error = %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(paths) != 1 || paths[0] != tc.want {
				t.Errorf("requests = %q, want [%q]", paths, tc.want)
			}
		})
	}
}
