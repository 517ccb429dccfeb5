package metrics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEMFLine(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, "event-webhook")
	r.now = func() time.Time { return time.UnixMilli(1700000000123) }
	r.Count("EventsReceived", 2, "EventName", "consent_authorised")

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("EMF line %q is not JSON: %v", buf.String(), err)
	}
	want := map[string]any{
		"_aws": map[string]any{
			"Timestamp": float64(1700000000123),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  "KlaviLink",
				"Dimensions": []any{[]any{"EventName", "Service"}},
				"Metrics":    []any{map[string]any{"Name": "EventsReceived", "Unit": "Count"}},
			}},
		},
		"EventsReceived": float64(2),
		"EventName":      "consent_authorised",
		"Service":        "event-webhook",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EMF record mismatch (-want +got):\n%s", diff)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		t.Errorf("EMF record must end with a newline")
	}
}

func TestCaptureAndSum(t *testing.T) {
	r := NewCapture("svc")
	r.Count("A", 1, "Outcome", "ok")
	r.Count("A", 2, "Outcome", "fail")
	r.Put("B", 10, UnitBytes)
	if got := r.Sum("A", nil); got != 3 {
		t.Errorf("Sum(A) = %v, want 3", got)
	}
	if got := r.Sum("A", map[string]string{"Outcome": "fail"}); got != 2 {
		t.Errorf("Sum(A, fail) = %v, want 2", got)
	}
	if got := r.Sum("B", map[string]string{"Service": "svc"}); got != 10 {
		t.Errorf("Sum(B) = %v, want 10", got)
	}
}

func TestNilRecorderDiscards(t *testing.T) {
	var r *Recorder
	r.Count("A", 1) // must not panic
	if got := r.Points(); got != nil {
		t.Errorf("nil recorder Points() = %v, want nil", got)
	}
}
