package load_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder collects every request's latency and status, per route.
type recorder struct {
	mu     sync.Mutex
	routes map[string]*routeRecord
}

type routeRecord struct {
	latencies []time.Duration
	statuses  map[int]int // 0: no answer
	first     time.Time   // earliest start
	last      time.Time   // latest end
}

func newRecorder() *recorder { return &recorder{routes: map[string]*routeRecord{}} }

func (r *recorder) add(route string, start time.Time, elapsed time.Duration, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rr := r.routes[route]
	if rr == nil {
		rr = &routeRecord{statuses: map[int]int{}, first: start}
		r.routes[route] = rr
	}
	rr.latencies = append(rr.latencies, elapsed)
	rr.statuses[status]++
	if start.Before(rr.first) {
		rr.first = start
	}
	if end := start.Add(elapsed); end.After(rr.last) {
		rr.last = end
	}
}

// statuses returns the count of answers by status for route.
func (r *recorder) statuses(route string) map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rr := r.routes[route]; rr != nil {
		return maps.Clone(rr.statuses)
	}
	return map[int]int{}
}

// summary is one route's figures.
type summary struct {
	Route string
	Count int
	// Span is from the route's first request to the end of its last: the
	// burst sends each route in a phase of its own.
	Span      time.Duration
	PerSecond float64
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	Max       time.Duration
}

// summaries returns the figures of every route used, in the order of
// routes().
func (r *recorder) summaries() []summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []summary
	for _, route := range routes() {
		rr := r.routes[route]
		if rr == nil || len(rr.latencies) == 0 {
			continue
		}
		out = append(out, summarize(route, rr.latencies, rr.last.Sub(rr.first)))
	}
	return out
}

func summarize(route string, latencies []time.Duration, span time.Duration) summary {
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	s := summary{
		Route: route,
		Count: len(sorted),
		Span:  span,
		P50:   percentile(sorted, 50),
		P90:   percentile(sorted, 90),
		P99:   percentile(sorted, 99),
		Max:   sorted[len(sorted)-1],
	}
	if span > 0 {
		s.PerSecond = float64(s.Count) / span.Seconds()
	}
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// table formats the figures for a log.
func table(sums []summary, total time.Duration, links int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "load burst: %d links, %s sending links, events and reports (planning aside)\n", links, total.Round(time.Millisecond))
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "route\trequests\tseconds\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, s := range sums {
		fmt.Fprintf(w, "%s\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n", s.Route, s.Count, s.Span.Seconds(), s.PerSecond,
			ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
	}
	_ = w.Flush()
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"median of four is the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p90 of four is the last", []time.Duration{1, 2, 3, 4}, 90, 4},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", hundred, 0, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %d) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestRecorderSummaries(t *testing.T) {
	r := newRecorder()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r.add(routeEvents, t0.Add(time.Second), 30*time.Millisecond, 200)
	r.add(routeEvents, t0, 10*time.Millisecond, 200)
	r.add(routeEvents, t0.Add(1990*time.Millisecond), 10*time.Millisecond, 503)
	r.add(routeCreateLink, t0, 20*time.Millisecond, 201)

	got := r.summaries()
	want := []summary{
		{Route: routeCreateLink, Count: 1, Span: 20 * time.Millisecond, PerSecond: 50,
			P50: 20 * time.Millisecond, P90: 20 * time.Millisecond, P99: 20 * time.Millisecond, Max: 20 * time.Millisecond},
		{Route: routeEvents, Count: 3, Span: 2 * time.Second, PerSecond: 1.5,
			P50: 10 * time.Millisecond, P90: 30 * time.Millisecond, P99: 30 * time.Millisecond, Max: 30 * time.Millisecond},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int{200: 2, 503: 1}, r.statuses(routeEvents)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}
