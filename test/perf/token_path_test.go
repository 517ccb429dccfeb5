package perf_test

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// requestsPerRun is the number of warm requests the token-path figures are
// given for.
const requestsPerRun = 1000

// barWindow is the window of the /auth bar: at most 1 call per 25 minutes
// per deployment while the schedule runs.
const barWindow = 25 * time.Minute

// tokenPath is one links-api instance on the token path: the real
// handler, Klavi client and token source over Secrets Manager. Its link
// store is in memory: DynamoDB's cost per request is BenchmarkWarmCalls'
// subject, and 1,000 emulator writes per run would make the run long
// without changing a token-path count.
type tokenPath struct {
	d   *deployment
	in  *instance
	h   *linkapi.Handler
	req httpapi.Request
}

func newTokenPath(tb testing.TB, d *deployment) *tokenPath {
	tb.Helper()
	in := d.newInstance(tb)
	return &tokenPath{
		d:  d,
		in: in,
		h: linkapi.New(in.klavi, linkstoretest.NewMemory(linkstoretest.WithClock(d.now)), nil, linkapi.Config{
			AllowedRedirectHosts: []string{"app.example.com"},
			Now:                  d.now,
		}),
		req: loadEvent(tb, "links-api-post.json"),
	}
}

func (p *tokenPath) request(ctx context.Context, tb testing.TB) {
	tb.Helper()
	handle(ctx, tb, p.h, p.req, http.StatusCreated)
}

// scheduleRun is the outcome of simulated time on one instance while the
// token-refresh schedule runs.
type scheduleRun struct {
	elapsed   time.Duration
	refreshes int   // scheduled token-refresh runs, each one /refresh or /auth
	requests  int   // links-api requests the instance served
	calls     calls // counted at the proxies: the deployment's Klavi calls, the instance's AWS calls
}

// authPer25Min is the deployment's /auth calls per barWindow.
func (r scheduleRun) authPer25Min() float64 {
	return float64(r.calls.auth) * float64(barWindow) / float64(r.elapsed)
}

// schedule drives a deployment on a fake clock: token-refresh runs every
// period from start, and one links-api instance serves requests spread
// evenly over the time.
type schedule struct {
	clock  *fakeClock
	d      *deployment
	path   *tokenPath
	period time.Duration
	start  time.Time
	now    time.Duration // simulated time since start
	next   time.Duration // of the next token-refresh run
	run    scheduleRun
	before calls
}

func newSchedule(tb testing.TB, period time.Duration) *schedule {
	tb.Helper()
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	d := newDeployment(tb, clock.Now)
	s := &schedule{clock: clock, d: d, period: period, start: start}
	s.path = newTokenPath(tb, d)
	// Counting starts before the first run: it is on the schedule.
	s.before = d.count(s.path.in)
	return s
}

// advance serves n requests spread evenly over d of simulated time,
// running token-refresh whenever the schedule says.
func (s *schedule) advance(ctx context.Context, tb testing.TB, d time.Duration, n int) {
	tb.Helper()
	end := s.now + d
	for i := range n {
		at := s.now + time.Duration(i)*d/time.Duration(n)
		s.refreshUntil(tb, at)
		s.clock.Set(s.start.Add(at))
		s.path.request(ctx, tb)
		s.run.requests++
	}
	// Runs due in the last step, up to (not at) the end.
	s.refreshUntil(tb, end-1)
	s.now = end
	s.clock.Set(s.start.Add(end))
	s.run.elapsed = s.now
	s.run.calls = s.d.count(s.path.in).minus(s.before)
}

func (s *schedule) refreshUntil(tb testing.TB, at time.Duration) {
	tb.Helper()
	for s.next <= at {
		s.clock.Set(s.start.Add(s.next))
		s.d.refresh(tb)
		s.run.refreshes++
		s.next += s.period
	}
}

// refreshPeriod reads the token-refresh schedule from template.yaml, so the
// figures are those of what is deployed. Only rate(N minute[s]) is
// understood.
func refreshPeriod(tb testing.TB) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		tb.Fatalf("read template: %v", err)
	}
	_, fn, ok := strings.Cut(string(raw), "\n  TokenRefreshFunction:\n")
	if !ok {
		tb.Fatalf("template.yaml has no TokenRefreshFunction resource")
	}
	// The resource ends where the next one starts (two-space indent).
	if i := regexp.MustCompile(`\n  [A-Za-z0-9]+:\n`).FindStringIndex(fn); i != nil {
		fn = fn[:i[0]]
	}
	m := regexp.MustCompile(`Schedule:\s*rate\((\d+) minutes?\)`).FindStringSubmatch(fn)
	if m == nil {
		tb.Fatalf("TokenRefreshFunction has no rate(N minutes) schedule")
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Minute
}

// BenchmarkTokenPath1000 reports the token path's external calls.
//
// warm: one links-api instance, the token secret filled by token-refresh
// first and the instance warmed by one request; each iteration is 1,000
// requests within the token's lifetime. auth/1000req and secrets/1000req
// are Klavi /auth calls and Secrets Manager reads per 1,000 requests. Bars:
// no /auth on a warm request; at most 1 read per instance per token
// lifetime.
//
// schedule: a fake clock shared by the token sources and the Klavi
// simulator (which expires tokens on it); token-refresh runs on
// template.yaml's schedule; each iteration is 3 schedule periods (an hour
// at 20 minutes, past two token lifetimes) with 1,000 requests spread over
// it. auth/25min is the deployment's /auth calls per 25 minutes (bar: at
// most 1); auth/1000req counts those not made by a scheduled run (bar: 0);
// secrets/token is the instance's token-secret reads per token issued (bar:
// at most 1 per token lifetime).
func BenchmarkTokenPath1000(b *testing.B) {
	b.Run("warm", func(b *testing.B) {
		d := newDeployment(b, nil)
		d.refresh(b)
		p := newTokenPath(b, d)
		ctx := b.Context()
		p.request(ctx, b)
		before := d.count(p.in)
		runs := 0
		for b.Loop() {
			for range requestsPerRun {
				p.request(ctx, b)
			}
			runs++
		}
		got := d.count(p.in).minus(before)
		b.ReportMetric(float64(got.auth)/float64(runs), "auth/1000req")
		b.ReportMetric(float64(got.secrets)/float64(runs), "secrets/1000req")
	})

	b.Run("schedule", func(b *testing.B) {
		period := refreshPeriod(b)
		s := newSchedule(b, period)
		ctx := b.Context()
		for b.Loop() {
			s.advance(ctx, b, 3*period, requestsPerRun)
		}
		r := s.run
		perRun := float64(requestsPerRun) / float64(r.requests)
		b.ReportMetric(r.authPer25Min(), "auth/25min")
		// Token calls the functions made themselves: all but the scheduled runs'.
		b.ReportMetric(float64(r.calls.auth+r.calls.refresh-r.refreshes)*perRun, "auth/1000req")
		b.ReportMetric(float64(r.calls.secrets)*perRun, "secrets/1000req")
		b.ReportMetric(float64(r.calls.secrets)/float64(r.refreshes), "secrets/token")
		b.ReportMetric(period.Minutes(), "min/refresh")
	})
}
