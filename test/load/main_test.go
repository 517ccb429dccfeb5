package load_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

func TestMain(m *testing.M) {
	// The emulator internal/awstest starts inherits this environment: Python
	// then imports testdata/emulator/sitecustomize.py, which makes its
	// DynamoDB transactions and queries cost what the items they touch
	// cost instead of what the whole table costs (see that file). Without
	// it the burst checks the same, only slower with every item the table
	// holds.
	if dir, err := filepath.Abs(filepath.Join("testdata", "emulator")); err == nil {
		path := dir
		if prev := os.Getenv("PYTHONPATH"); prev != "" {
			path += string(os.PathListSeparator) + prev
		}
		os.Setenv("PYTHONPATH", path)
	}
	os.Exit(awstest.Main(m))
}

// envLinks sets the number of links of a burst.
const envLinks = "LOAD_LINKS"

const (
	// testLinks is the burst of TestLoadBurst unless LOAD_LINKS says
	// otherwise: short enough for every CI run.
	testLinks = 60
	// benchLinks is the burst of BenchmarkLoadBurst unless LOAD_LINKS says
	// otherwise.
	benchLinks = 500
	// maxLinks bounds LOAD_LINKS: the burst keeps every report in memory.
	maxLinks = 20000

	// workers is how many requests are in flight at once in every phase.
	workers = 16
	// copies is how many times every webhook is delivered.
	copies = 3
	// seed fixes the plan: tax ids, outcomes, products, sizes and order.
	seed = 20261124

	// callTimeout bounds one HTTP call.
	callTimeout = 30 * time.Second
	// burstBase and burstPerLink make the hard deadline of one burst.
	burstBase    = 60 * time.Second
	burstPerLink = time.Second
)

// linksFor returns the burst size: LOAD_LINKS, else def.
func linksFor(tb testing.TB, def int) int {
	tb.Helper()
	v := strings.TrimSpace(os.Getenv(envLinks))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLinks {
		tb.Fatalf("%s = %q, want a number of links from 1 to %d", envLinks, v, maxLinks)
	}
	return n
}

// budget is the hard deadline of a burst of n links.
func budget(n int) time.Duration {
	return burstBase + time.Duration(n)*burstPerLink
}
