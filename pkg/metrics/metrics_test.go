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

func TestNilRecorderDiscards(t *testing.T) {
	var r *Recorder
	r.Count("A", 1) // must not panic
	var zero Recorder
	zero.Put("B", 1, UnitCount) // no writer: must not panic
}
