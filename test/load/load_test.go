package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
)

// TestLoadBurst replays a burst of LOAD_LINKS links (default 60), checks
// that the store and the bucket hold exactly what was sent, and logs the
// figures. Speed is not asserted: the figures are for reading, and
// BenchmarkLoadBurst reports them as metrics.
func TestLoadBurst(t *testing.T) {
	res := runBurst(t, linksFor(t, testLinks))
	t.Log("\n" + res.table())
}

// BenchmarkLoadBurst replays one burst of LOAD_LINKS links (default 500),
// checked as TestLoadBurst checks it, and reports per route the throughput
// over the route's phase (req/s) and the latency percentiles (ms). The
// burst runs once whatever -benchtime says: each route's figures are
// reported by a sub-benchmark that measures nothing itself.
func BenchmarkLoadBurst(b *testing.B) {
	res := runBurst(b, linksFor(b, benchLinks))
	b.Log("\n" + res.table())
	for _, s := range res.sums {
		b.Run(benchName(s.Route), func(b *testing.B) {
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(s.Count), "requests")
			b.ReportMetric(s.PerSecond, "req/s")
			b.ReportMetric(msf(s.P50), "p50-ms")
			b.ReportMetric(msf(s.P90), "p90-ms")
			b.ReportMetric(msf(s.P99), "p99-ms")
			b.ReportMetric(msf(s.Max), "max-ms")
		})
	}
}

func benchName(route string) string {
	switch route {
	case routeCreateLink:
		return "links-api"
	case routeGetLink:
		return "get-link"
	case routeEvents:
		return "event-webhook"
	case routeReports:
		return "report-webhook"
	default:
		return route
	}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// burstResult is what one burst measured.
type burstResult struct {
	links int
	// phases is the time spent creating links and delivering events and
	// reports, without the time taken to plan the traffic in between.
	phases time.Duration
	sums   []summary
}

func (r burstResult) table() string { return table(r.sums, r.phases, r.links) }

// deadliner is the part of *testing.T that knows the -timeout.
type deadliner interface {
	Deadline() (time.Time, bool)
}

// runBurst runs one burst of n links and checks its outcome, failing tb on
// any difference.
func runBurst(tb testing.TB, n int) burstResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), budget(n))
	defer cancel()
	if d, ok := tb.(deadliner); ok {
		if end, ok := d.Deadline(); ok {
			// Stop early enough to report, rather than be killed by -timeout.
			var stop context.CancelFunc
			ctx, stop = context.WithDeadline(ctx, end.Add(-15*time.Second))
			defer stop()
		}
	}

	be := startBackend(ctx, tb)
	rec := newRecorder()
	c, err := newClient(be.url, []byte(klaviSecretKey), rec)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.close()
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	links := newLinkPlans(rng, n)
	p := &problems{}

	var phases time.Duration
	timed := func(name string, run func() error) {
		tb.Helper()
		start := time.Now()
		err := run()
		phases += time.Since(start)
		if err != nil {
			tb.Fatalf("%s: %v (answers so far: %v)", name, err, statusesByRoute(rec))
		}
	}

	timed("create links", func() error { return createLinks(ctx, c, links, be.url+"/?returned=1", p) })
	requireLinks(tb, p, rec)
	tr := planTraffic(rng, links, time.Now().UTC().Truncate(time.Millisecond))
	tallies := make([]eventTally, len(tr.events))
	timed("deliver events", func() error { return deliverEvents(ctx, c, tr, tallies, p) })
	timed("deliver reports", func() error { return deliverReports(ctx, c, tr, p) })
	views := make([]*linkapi.View, len(links))
	if err := fetchViews(ctx, c, links, views, p); err != nil {
		tb.Fatalf("read link views: %v", err)
	}

	checkAnswers(tb, rec, be.logs, map[string]int{
		routeCreateLink: len(links),
		routeEvents:     copies * len(tr.events),
		routeReports:    copies * len(tr.reports),
		routeGetLink:    len(links),
	})
	for _, msg := range p.list() {
		tb.Error(msg)
	}
	checkDedupe(tb, tr, tallies)
	checkViews(tb, links, views)
	checkTable(ctx, tb, be, links, tr)
	checkBucket(ctx, tb, be, tr)
	return burstResult{links: len(links), phases: phases, sums: rec.summaries()}
}

// requireLinks stops the burst when links could not be created: nothing after
// makes sense without them.
func requireLinks(tb testing.TB, p *problems, rec *recorder) {
	tb.Helper()
	if msgs := p.list(); len(msgs) > 0 {
		tb.Fatalf("%d problems creating links, first: %s (answers: %v)", len(msgs), msgs[0], statusesByRoute(rec))
	}
}

func statusesByRoute(rec *recorder) map[string]map[int]int {
	out := map[string]map[int]int{}
	for _, r := range routes() {
		if s := rec.statuses(r); len(s) > 0 {
			out[r] = s
		}
	}
	return out
}

// problems collects what the phases found wrong in answers, to report
// once the burst is over.
type problems struct {
	mu   sync.Mutex
	msgs []string
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.msgs) < maxProblems {
		p.msgs = append(p.msgs, fmt.Sprintf(format, args...))
	}
}

func (p *problems) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.msgs...)
}

// createLinks creates every link, as a frontend does, and keeps its id.
func createLinks(ctx context.Context, c *client, links []*linkPlan, redirectURL string, p *problems) error {
	return each(ctx, len(links), func(ctx context.Context, i int) error {
		l := links[i]
		status, answer, err := c.send(ctx, routeCreateLink, http.MethodPost, "/links", l.createBody(redirectURL), false)
		if err != nil {
			return err
		}
		if status != http.StatusCreated {
			p.add("POST /links for link %d = %d %s", i, status, answer)
			return nil
		}
		var created struct {
			LinkID string `json:"linkId"`
		}
		if err := json.Unmarshal(answer, &created); err != nil || created.LinkID == "" {
			p.add("POST /links for link %d answered %s, want a linkId", i, answer)
			return nil
		}
		l.linkID = created.LinkID
		return nil
	})
}

// eventTally sums the event webhook's answers for one event over its
// deliveries.
type eventTally struct {
	received, applied, duplicates, stale atomic.Int64
}

// deliverEvents sends every event delivery in tr's order.
func deliverEvents(ctx context.Context, c *client, tr *traffic, tallies []eventTally, p *problems) error {
	return each(ctx, len(tr.eventOrder), func(ctx context.Context, i int) error {
		idx := tr.eventOrder[i]
		status, answer, err := c.send(ctx, routeEvents, http.MethodPost, "/webhooks/klavi/events", tr.events[idx].body, true)
		if err != nil || status != http.StatusOK {
			return err // a wrong status is counted by the recorder
		}
		var res struct {
			Received   int64 `json:"received"`
			Applied    int64 `json:"applied"`
			Duplicates int64 `json:"duplicates"`
			Stale      int64 `json:"stale"`
		}
		if err := json.Unmarshal(answer, &res); err != nil {
			p.add("event webhook answered %q: %v", answer, err)
			return nil
		}
		t := &tallies[idx]
		t.received.Add(res.Received)
		t.applied.Add(res.Applied)
		t.duplicates.Add(res.Duplicates)
		t.stale.Add(res.Stale)
		return nil
	})
}

// deliverReports sends every report delivery in tr's order.
func deliverReports(ctx context.Context, c *client, tr *traffic, p *problems) error {
	return each(ctx, len(tr.reportOrder), func(ctx context.Context, i int) error {
		r := tr.reports[tr.reportOrder[i]]
		status, answer, err := c.send(ctx, routeReports, http.MethodPost, "/webhooks/klavi/reports", r.body, true)
		if err != nil || status != http.StatusOK {
			return err
		}
		var res struct {
			ProductReportID string `json:"productReportId"`
			Stored          bool   `json:"stored"`
			Matched         bool   `json:"matched"`
		}
		if err := json.Unmarshal(answer, &res); err != nil {
			p.add("report webhook answered %q: %v", answer, err)
			return nil
		}
		if res.ProductReportID != r.productReportID || !res.Stored || !res.Matched {
			p.add("report %s answered %s, want it stored and matched to link %s", r.productReportID, answer, r.link.linkID)
		}
		return nil
	})
}

// fetchViews reads every link through GET /links/{linkId}.
func fetchViews(ctx context.Context, c *client, links []*linkPlan, views []*linkapi.View, p *problems) error {
	return each(ctx, len(links), func(ctx context.Context, i int) error {
		l := links[i]
		status, answer, err := c.send(ctx, routeGetLink, http.MethodGet, "/links/"+url.PathEscape(l.linkID), nil, false)
		if err != nil || status != http.StatusOK {
			return err
		}
		if bytes.Contains(answer, []byte(l.taxID)) {
			p.add("GET /links/%s shows the full tax id", l.linkID)
		}
		var v linkapi.View
		if err := json.Unmarshal(answer, &v); err != nil {
			p.add("GET /links/%s answered %q: %v", l.linkID, answer, err)
			return nil
		}
		views[i] = &v
		return nil
	})
}
