package coldstart

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

// initReport is the emulator's record of a runtime's init: from starting the
// process to its first request for work.
var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// BenchmarkColdStart reports, per function, the time from sending the first
// invocation to a fresh emulator (which only then starts the function's
// process) to its answer, as ms/coldstart, and its ratio to the baseline's
// as x-baseline, which the bar (coldStartBar, 2x) bounds: a function over it
// fails the benchmark, naming the ratio. ms/init is the emulator's own
// figure for the init alone. An answer is a result or an error the handler
// returned; a crash or a failed init stops the benchmark.
//
// To see where a slow init goes, run a function with GODEBUG=inittrace=1:
// every package initialiser prints its time and allocations.
func BenchmarkColdStart(b *testing.B) {
	fns := functions(b)
	bins := lambdatest.BuildFor(b, lambdatest.Host(), packages(fns)...)
	env := dependencyEnv(b)
	lambdatest.RIEPath(b)

	var baseline float64
	for i, fn := range fns {
		payload := []byte(`{}`)
		if fn.event != "" {
			var err error
			if payload, err = os.ReadFile(fn.event); err != nil {
				b.Fatalf("read event of %s: %v", fn.name, err)
			}
		}
		b.Run(fn.name, func(b *testing.B) {
			var total, inits time.Duration
			var n, initN int
			for b.Loop() {
				b.StopTimer()
				f := lambdatest.Start(b, bins[i], env)
				b.StartTimer()

				start := time.Now()
				_, ierr := f.Invoke(b, payload)
				elapsed := time.Since(start)

				b.StopTimer()
				f.Stop()
				if ierr != nil && ierr.StatusCode != 200 {
					b.Fatalf("%s gave no answer: %v\nlogs:\n%s", fn.name, ierr, f.Logs())
				}
				total += elapsed
				n++
				if d, ok := initDuration(f.Logs()); ok {
					inits += d
					initN++
				}
				b.StartTimer()
			}
			ms := float64(total) / float64(n) / float64(time.Millisecond)
			b.ReportMetric(ms, "ms/coldstart")
			if initN > 0 {
				b.ReportMetric(float64(inits)/float64(initN)/float64(time.Millisecond), "ms/init")
			}
			if i == 0 {
				baseline = ms
			} else if baseline > 0 {
				ratio := ms / baseline
				b.ReportMetric(ratio, "x-baseline")
				if ratio > coldStartBar {
					b.Errorf("%s cold start = %.1f ms, %.2fx the baseline's %.1f ms; the bar is %.1fx", fn.name, ms, ratio, baseline, coldStartBar)
				}
			}
		})
	}
}

func initDuration(logs string) (time.Duration, bool) {
	m := initReport.FindStringSubmatch(logs)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}
