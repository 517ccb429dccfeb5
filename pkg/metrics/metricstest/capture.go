// Package metricstest captures the metrics a piece of code records, for its
// tests. A Capture is a real metrics.Recorder whose EMF lines are kept in
// memory and read back, so a test sees what CloudWatch would receive.
package metricstest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

// Point is one recorded measurement, as a test sees it.
type Point struct {
	Name       string
	Value      float64
	Unit       string
	Dimensions map[string]string
}

// Capture records metrics in memory. Hand Recorder to the code under test
// and read back with Points and Sum.
type Capture struct {
	// Recorder writes to this Capture; it is what the code under test gets.
	Recorder *metrics.Recorder

	mu     sync.Mutex
	points []Point
}

// NewCapture returns a Capture whose Recorder names service as the
// "Service" dimension of every metric.
func NewCapture(service string) *Capture {
	c := &Capture{}
	c.Recorder = metrics.New(sink{c}, service)
	return c
}

// Points returns what was recorded, in order.
func (c *Capture) Points() []Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.points)
}

// Sum adds the values recorded for name whose dimensions include want.
func (c *Capture) Sum(name string, want map[string]string) float64 {
	var total float64
	for _, p := range c.Points() {
		if p.Name != name {
			continue
		}
		match := true
		for k, v := range want {
			if p.Dimensions[k] != v {
				match = false
				break
			}
		}
		if match {
			total += p.Value
		}
	}
	return total
}

// sink receives the Recorder's EMF lines, one per Write.
type sink struct{ c *Capture }

// emf is the part of an Embedded Metric Format record a test reads.
type emf struct {
	AWS struct {
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
}

// Write parses one EMF line. A line that does not parse is a broken
// encoder, which no test should get past quietly: Write panics.
func (s sink) Write(line []byte) (int, error) {
	var rec emf
	var fields map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		panic(fmt.Sprintf("metricstest: EMF line %q: %v", line, err))
	}
	if err := json.Unmarshal(line, &fields); err != nil {
		panic(fmt.Sprintf("metricstest: EMF line %q: %v", line, err))
	}
	var got []Point
	for _, d := range rec.AWS.CloudWatchMetrics {
		if d.Namespace != metrics.Namespace {
			panic(fmt.Sprintf("metricstest: EMF line %q: namespace %q, want %q", line, d.Namespace, metrics.Namespace))
		}
		dims := map[string]string{}
		for _, set := range d.Dimensions {
			for _, k := range set {
				v, ok := fields[k].(string)
				if !ok {
					panic(fmt.Sprintf("metricstest: EMF line %q: dimension %q is not a string member", line, k))
				}
				dims[k] = v
			}
		}
		for _, m := range d.Metrics {
			v, ok := fields[m.Name].(float64)
			if !ok {
				panic(fmt.Sprintf("metricstest: EMF line %q: metric %q has no numeric value", line, m.Name))
			}
			got = append(got, Point{Name: m.Name, Value: v, Unit: m.Unit, Dimensions: dims})
		}
	}
	s.c.mu.Lock()
	s.c.points = append(s.c.points, got...)
	s.c.mu.Unlock()
	return len(line), nil
}
