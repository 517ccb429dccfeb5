package coldstart

import (
	"os"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

// lambdaSizes builds every function and the baseline for Lambda exactly as
// the Makefile does and returns their sizes in bytes, baseline first.
func lambdaSizes(tb testing.TB, fns []function) []int64 {
	tb.Helper()
	bins := lambdatest.BuildFor(tb, lambdatest.Lambda(), packages(fns)...)
	sizes := make([]int64, len(bins))
	for i, bin := range bins {
		fi, err := os.Stat(bin)
		if err != nil {
			tb.Fatalf("size of %s: %v", fns[i].name, err)
		}
		sizes[i] = fi.Size()
	}
	return sizes
}

// BenchmarkBinarySize reports each function's linux/arm64 bootstrap size
// and its ratio to the baseline's. Size has no bar (design section 6): the
// SDK's own clients are worth their bytes.
func BenchmarkBinarySize(b *testing.B) {
	fns := functions(b)
	sizes := lambdaSizes(b, fns)
	for i, fn := range fns {
		b.Run(fn.name, func(b *testing.B) {
			// A size, not a speed: nothing is timed.
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(sizes[i]), "bytes")
			b.ReportMetric(float64(sizes[i])/float64(sizes[0]), "x-baseline")
		})
	}
}
