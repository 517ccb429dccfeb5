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
