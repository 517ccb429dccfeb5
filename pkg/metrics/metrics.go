// Package metrics writes CloudWatch metrics in the Embedded Metric Format
// (EMF): one JSON line on stdout per metric, which Lambda's log pipeline
// turns into a metric with no API call and no extra latency. The template's
// alarms read these metrics from the namespace Namespace.
//
// Dimensions are kept few and low-cardinality (function, event name,
// endpoint, outcome); ids never become dimensions.
package metrics

import (
	"encoding/json"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace every metric of the project uses.
const Namespace = "KlaviLink"

// Units used by this project.
const (
	UnitCount        = "Count"
	UnitBytes        = "Bytes"
	UnitMilliseconds = "Milliseconds"
)

// Recorder emits EMF records. The zero value and a nil *Recorder discard
// everything, so code under test needs no metrics plumbing.
type Recorder struct {
	mu      sync.Mutex
	w       io.Writer
	service string
	now     func() time.Time
}

// New returns a Recorder writing EMF lines to w (os.Stdout in Lambda). service
// becomes the "Service" dimension of every metric (the function name).
func New(w io.Writer, service string) *Recorder {
	return &Recorder{w: w, service: service, now: time.Now}
}

// Count records n occurrences of name.
func (r *Recorder) Count(name string, n int, dims ...string) {
	r.Put(name, float64(n), UnitCount, dims...)
}

// Put records one value. dims are key, value pairs; an odd trailing key is
// ignored.
func (r *Recorder) Put(name string, value float64, unit string, dims ...string) {
	if r == nil || r.w == nil {
		return
	}
	d := map[string]string{"Service": r.service}
	for i := 0; i+1 < len(dims); i += 2 {
		d[dims[i]] = dims[i+1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.w.Write(encode(r.now(), name, value, unit, d))
}

func encode(at time.Time, name string, value float64, unit string, dims map[string]string) []byte {
	keys := slices.Sorted(maps.Keys(dims))
	rec := map[string]any{
		"_aws": map[string]any{
			"Timestamp": at.UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  Namespace,
				"Dimensions": [][]string{keys},
				"Metrics":    []any{map[string]string{"Name": name, "Unit": unit}},
			}},
		},
		name: value,
	}
	for k, v := range dims {
		rec[k] = v
	}
	line, _ := json.Marshal(rec) // only strings and numbers: cannot fail
	return append(line, '\n')
}
