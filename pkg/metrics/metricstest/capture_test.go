package metricstest_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
)

func TestCaptureAndSum(t *testing.T) {
	c := metricstest.NewCapture("svc")
	r := c.Recorder
	r.Count("A", 1, "Outcome", "ok")
	r.Count("A", 2, "Outcome", "fail")
	r.Put("B", 10, metrics.UnitBytes)
	if got := c.Sum("A", nil); got != 3 {
		t.Errorf("Sum(A) = %v, want 3", got)
	}
	if got := c.Sum("A", map[string]string{"Outcome": "fail"}); got != 2 {
		t.Errorf("Sum(A, fail) = %v, want 2", got)
	}
	if got := c.Sum("B", map[string]string{"Service": "svc"}); got != 10 {
		t.Errorf("Sum(B) = %v, want 10", got)
	}
	if got := c.Sum("C", nil); got != 0 {
		t.Errorf("Sum(C) = %v, want 0 for a metric never recorded", got)
	}
}

func TestCapturePoints(t *testing.T) {
	c := metricstest.NewCapture("svc")
	c.Recorder.Count("A", 1, "Outcome", "ok")
	c.Recorder.Put("B", 2.5, metrics.UnitMilliseconds)
	want := []metricstest.Point{
		{Name: "A", Value: 1, Unit: metrics.UnitCount, Dimensions: map[string]string{"Service": "svc", "Outcome": "ok"}},
		{Name: "B", Value: 2.5, Unit: metrics.UnitMilliseconds, Dimensions: map[string]string{"Service": "svc"}},
	}
	if diff := cmp.Diff(want, c.Points()); diff != "" {
		t.Errorf("Points() mismatch (-want +got):\n%s", diff)
	}
}
