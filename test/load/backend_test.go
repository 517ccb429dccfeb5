package load_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/devserver"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
)

// Klavi's key pair for the burst. The secretKey also keys the webhook
// signatures; the backend reads both from the credentials secret.
const (
	klaviAccessKey = "load-access-key"
	klaviSecretKey = "load-secret-key-for-webhook-signatures"
)

// backend is the server under load and what it runs on.
type backend struct {
	url    string
	aws    aws.Config
	table  string
	bucket string
	logs   *logCounter
}

// startBackend starts the server as `make run` does, from the functions'
// environment: the links table, the reports bucket and the token source
// over Secrets Manager in the emulator, Klavi reached over HTTP (a
// simulator that sends no webhooks of its own), automatic report requests
// off. It stops when the test ends or ctx is done.
func startBackend(ctx context.Context, tb testing.TB) *backend {
	tb.Helper()
	cfg := awstest.Config(tb)
	sm := secretsmanager.NewFromConfig(cfg)
	credsSecret, tokenSecret := awstest.Name(tb, "load-klavi-creds"), awstest.Name(tb, "load-klavi-token")
	secrets := map[string]string{
		credsSecret: fmt.Sprintf(`{"accessKey":%q,"secretKey":%q}`, klaviAccessKey, klaviSecretKey),
		tokenSecret: `{}`,
	}
	for name, value := range secrets {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
			tb.Fatalf("create secret %s: %v", name, err)
		}
	}

	sim := klavisim.New(klavisim.Options{AccessKey: klaviAccessKey, SecretKey: klaviSecretKey, Seed: seed})
	simSrv := httptest.NewServer(sim) // 127.0.0.1
	tb.Cleanup(func() {
		sim.Close()
		simSrv.Close()
	})

	be := &backend{aws: cfg, table: awstest.Name(tb, "load-links"), bucket: awstest.Name(tb, "load-reports"), logs: newLogCounter()}
	env := map[string]string{
		appconfig.EnvKlaviBaseURL:       simSrv.URL,
		appconfig.EnvCredentialsSecret:  credsSecret,
		appconfig.EnvTokenSecret:        tokenSecret,
		appconfig.EnvLinksTable:         be.table,
		appconfig.EnvReportsBucket:      be.bucket,
		appconfig.EnvAutoRequestReports: "false",
	}
	dc, err := devserver.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		tb.Fatalf("server configuration: %v", err)
	}
	dc.AWS = &cfg
	dc.Seed = seed
	dc.Logger = slog.New(be.logs)
	srv, err := devserver.New(dc)
	if err != nil {
		tb.Fatalf("build server: %v", err)
	}
	// Cleanups run last registered first: the server stops before Klavi.
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("close server: %v", err)
		}
	})
	if be.url, err = srv.Start(ctx, "127.0.0.1:0"); err != nil {
		tb.Fatalf("start server: %v", err)
	}
	return be
}

// logCounter is the server's log handler: it counts the access log lines
// (one per request) by route and status, and keeps the warnings and errors.
type logCounter struct {
	mu       sync.Mutex
	access   map[string]map[int]int
	problems []string
}

func newLogCounter() *logCounter { return &logCounter{access: map[string]map[int]int{}} }

// maxProblems bounds what is kept of a flood of warnings.
const maxProblems = 20

func (c *logCounter) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		line := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" || a.Key == "error_code" || a.Key == "function" {
				line += " " + a.String()
			}
			return true
		})
		c.mu.Lock()
		if len(c.problems) < maxProblems {
			c.problems = append(c.problems, line)
		} else if len(c.problems) == maxProblems {
			c.problems = append(c.problems, "... (more)")
		}
		c.mu.Unlock()
	}
	if r.Message != "request" {
		return nil
	}
	var route string
	var status int
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "routeKey":
			route = a.Value.String()
		case "status":
			status = int(a.Value.Int64())
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access[route] == nil {
		c.access[route] = map[int]int{}
	}
	c.access[route][status]++
	return nil
}

// WithAttrs and WithGroup keep counting into the same place; the attributes
// they add (service, webhook, ...) are not needed.
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// served returns the server's count of answers by status for route.
func (c *logCounter) served(route string) map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.access[route])
}

func (c *logCounter) warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}
