package lambda_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

// configEnv is a complete configuration whose dependencies are never
// reached: a function missing one variable must fail before it calls
// anything.
func configEnv() []string {
	return []string{
		"AWS_ENDPOINT_URL=http://127.0.0.1:9",
		"KLAVI_BASE_URL=http://127.0.0.1:9",
		"KLAVI_CREDENTIALS_SECRET=init-credentials",
		"KLAVI_TOKEN_SECRET=init-token",
		"LINKS_TABLE=init-links",
		"REPORTS_BUCKET=init-reports",
		"ALLOWED_REDIRECT_HOSTS=" + redirectHost,
		"EVENT_BUS_NAME=init-bus",
	}
}

func without(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

// TestMissingConfigFailsInit: each function refuses to start without each
// variable it requires, visibly: the invocation fails as a failed init
// does, and the log names the variable.
func TestMissingConfigFailsInit(t *testing.T) {
	bins := buildFunctions(t)
	required := map[string][]string{
		fnTokenRefresh:      {"KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnCreateLink:        {"LINKS_TABLE", "KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnEventWebhook:      {"LINKS_TABLE", "KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnReportRequest:     {"LINKS_TABLE", "REPORTS_BUCKET", "KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnReportWebhook:     {"LINKS_TABLE", "REPORTS_BUCKET", "KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnReconcile:         {"LINKS_TABLE", "KLAVI_CREDENTIALS_SECRET", "KLAVI_TOKEN_SECRET"},
		fnIntegrationEvents: {"EVENT_BUS_NAME", "LINKS_TABLE", "REPORTS_BUCKET"},
	}
	for _, fn := range functionNames() {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			for _, name := range required[fn] {
				t.Run(name, func(t *testing.T) {
					f := lambdatest.Start(t, bins[fn], without(configEnv(), name))

					out, ierr := f.Invoke(t, []byte(`{}`))

					if ierr == nil || ierr.StatusCode != http.StatusBadGateway {
						t.Fatalf("invoke without %s = %s, %v; want a failed init (502)\nlogs:\n%s", name, out, ierr, tail(f.Logs()))
					}
					f.Stop()
					var found bool
					for line := range strings.Lines(f.Logs()) {
						var rec struct {
							Level string `json:"level"`
							Error string `json:"error"`
						}
						if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" && strings.Contains(rec.Error, name) {
							found = true
						}
					}
					if !found {
						t.Errorf("no JSON error record names %s; logs:\n%s", name, tail(f.Logs()))
					}
				})
			}
		})
	}
}
