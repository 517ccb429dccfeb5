package coldstart

import (
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

// coldStartBar is design section 6's cold-start bar: a function's process
// start to first answer at most this many times the hello-world baseline's,
// measured in the same run. Binary size has no bar; it is reported.
const coldStartBar = 2.0

// function is one binary to measure.
type function struct {
	name  string
	pkg   string // main package, relative to the module root
	event string // absolute path of the first invocation's event; empty for {}
}

// functions returns the baseline followed by every function directory that
// has a main.go, in name order.
func functions(tb testing.TB) []function {
	tb.Helper()
	root := lambdatest.ModuleRoot(tb)
	mains, err := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
	if err != nil {
		tb.Fatalf("find functions: %v", err)
	}
	sort.Strings(mains)
	fns := []function{{name: "baseline", pkg: "./test/baseline"}}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		fns = append(fns, function{
			name:  name,
			pkg:   "./functions/" + name,
			event: firstEvent(tb, root, name),
		})
	}
	return fns
}

// firstEvent returns events/<name>.json or, failing that, the first of
// events/<name>-*.json; empty when there is none.
func firstEvent(tb testing.TB, root, name string) string {
	tb.Helper()
	exact := filepath.Join(root, "events", name+".json")
	if _, err := os.Stat(exact); err == nil {
		return exact
	}
	matches, err := filepath.Glob(filepath.Join(root, "events", name+"-*.json"))
	if err != nil {
		tb.Fatalf("find events of %s: %v", name, err)
	}
	if len(matches) == 0 {
		return ""
	}
	sort.Strings(matches)
	return matches[0]
}

func packages(fns []function) []string {
	pkgs := make([]string, len(fns))
	for i, fn := range fns {
		pkgs[i] = fn.pkg
	}
	return pkgs
}

// dependencyEnv is a complete configuration whose every dependency (AWS and
// Klavi) is a local server refusing each request with 400, which no client
// retries: a function's first answer then costs its init and one pass of
// its handler, with no network waits.
func dependencyEnv(tb testing.TB) []string {
	tb.Helper()
	body := []byte(`{"__type":"ValidationException","message":"cold start stub"}`)
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		// DynamoDB clients check this and warn in the log without it.
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(body)
	}))
	tb.Cleanup(stub.Close)
	return []string{
		"AWS_ENDPOINT_URL=" + stub.URL,
		"AWS_MAX_ATTEMPTS=1",
		"KLAVI_BASE_URL=" + stub.URL,
		"KLAVI_CREDENTIALS_SECRET=coldstart-credentials",
		"KLAVI_TOKEN_SECRET=coldstart-token",
		"LINKS_TABLE=coldstart-links",
		"REPORTS_BUCKET=coldstart-reports",
		"ALLOWED_REDIRECT_HOSTS=app.example.com",
		"REPORT_WEBHOOK_URL=https://api.example.com/webhooks/klavi/reports",
		"EVENT_BUS_NAME=coldstart-bus",
	}
}
