package lambdaapp

import (
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

func TestObserveKlaviRecordsOutcomeAndLatency(t *testing.T) {
	rec := metrics.NewCapture("test")
	a := &App{Metrics: rec}
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

func TestAWSConfigFromLambdaEnvironment(t *testing.T) {
	env := map[string]string{
		"AWS_REGION": "sa-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "session", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_MAX_ATTEMPTS": "5",
	}
	cfg, err := awsConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("awsConfig: %v", err)
	}
	if cfg.Region != "sa-east-1" || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != "http://127.0.0.1:5000" || cfg.RetryMaxAttempts != 5 {
		t.Errorf("config = region %q endpoint %v attempts %d", cfg.Region, cfg.BaseEndpoint, cfg.RetryMaxAttempts)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	if creds.AccessKeyID != "AKIDEXAMPLE" || creds.SessionToken != "session" {
		t.Errorf("credentials = %q/%q, want the environment's", creds.AccessKeyID, creds.SessionToken)
	}
	for _, missing := range []string{"AWS_REGION", "AWS_ACCESS_KEY_ID"} {
		partial := map[string]string{}
		for k, v := range env {
			if k != missing {
				partial[k] = v
			}
		}
		if _, err := awsConfig(func(k string) string { return partial[k] }); err == nil {
			t.Errorf("awsConfig without %s succeeded, want error", missing)
		}
	}
	env["AWS_MAX_ATTEMPTS"] = "zero"
	if _, err := awsConfig(func(k string) string { return env[k] }); err == nil {
		t.Errorf("awsConfig with a bad AWS_MAX_ATTEMPTS succeeded, want error")
	}
}
