// Package lambdaapp builds, once per cold start, what every function of the
// project shares: configuration from the environment, the SDK's standard AWS
// configuration, the JSON logger carrying the Lambda request id, the metrics
// recorder, the shared Klavi token source and the Klavi client.
//
// Each functions/<name>/main.go calls Load, builds the SDK clients it needs
// from App.AWS with the SDK's own NewFromConfig, builds its handler and
// starts the Lambda runtime. Nothing here runs per request.
package lambdaapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

// App holds the shared dependencies of one function instance.
type App struct {
	Config  appconfig.Config
	AWS     aws.Config
	Logger  *slog.Logger
	Metrics *metrics.Recorder
}

// Load reads the environment (failing on any missing required variable) and
// the AWS configuration. service names the function in metrics.
//
// The AWS configuration is the SDK's standard one (config.LoadDefaultConfig):
// the execution role's credentials, AWS_REGION, AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE>, retry mode and attempts, so tests and local
// runs point the same binaries at an emulator with the same settings.
func Load(ctx context.Context, service string, required ...string) (*App, error) {
	logger := lambdacontext.NewLogger().With("service", service)
	cfg, err := appconfig.Load(os.Getenv, required...)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	// Lambda always sets AWS_REGION; without it every AWS call would fail,
	// so the function refuses to start and says why.
	if awsCfg.Region == "" {
		return nil, errors.New("load AWS configuration: no region (AWS_REGION is not set)")
	}
	return &App{Config: cfg, AWS: awsCfg, Logger: logger, Metrics: metrics.New(os.Stdout, service)}, nil
}

// S3Options are the options every function builds its S3 client with:
// s3.NewFromConfig(app.AWS, lambdaapp.S3Options).
//
// With an endpoint configured (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3,
// only ever an emulator or a local run), requests use path-style URLs:
// emulators served under a host name such as localhost or a container name
// cannot answer for bucket subdomains. The SDK already chooses path style
// for an endpoint given as an IP address. Without an endpoint (AWS itself)
// addressing stays the SDK's virtual-hosted default.
func S3Options(o *s3.Options) {
	if o.BaseEndpoint != nil {
		o.UsePathStyle = true
	}
}

// Fatal logs why the function cannot start and exits. Only main calls it.
func Fatal(logger *slog.Logger, msg string, err error) {
	if logger == nil {
		logger = lambdacontext.NewLogger()
	}
	logger.Error(msg, "error", err)
	os.Exit(1)
}

// Tokens builds the shared token source over Secrets Manager. Its Klavi
// client is used only for /auth when the token secret is missing or stale.
func (a *App) Tokens() (*tokensource.Source, error) {
	authClient, err := klavi.New(a.Config.KlaviBaseURL, klavi.WithObserver(a.observeKlavi))
	if err != nil {
		return nil, fmt.Errorf("build Klavi auth client: %w", err)
	}
	src, err := tokensource.New(secretsmanager.NewFromConfig(a.AWS), authClient, tokensource.Config{
		CredentialsSecretID: a.Config.CredentialsSecret,
		TokenSecretID:       a.Config.TokenSecret,
	})
	if err != nil {
		return nil, fmt.Errorf("build token source: %w", err)
	}
	return src, nil
}

// Klavi builds the data API client that authenticates through tokens.
func (a *App) Klavi(tokens klavi.TokenSource) (*klavi.Client, error) {
	c, err := klavi.New(a.Config.KlaviBaseURL, klavi.WithTokenSource(tokens), klavi.WithObserver(a.observeKlavi))
	if err != nil {
		return nil, fmt.Errorf("build Klavi client: %w", err)
	}
	return c, nil
}

// observeKlavi turns every Klavi HTTP attempt into metrics: calls by
// endpoint and status class, and latency by endpoint.
func (a *App) observeKlavi(c klavi.Call) {
	a.Metrics.Count("KlaviCalls", 1, "Endpoint", c.Endpoint, "Outcome", outcome(c))
	a.Metrics.Put("KlaviLatency", float64(c.Duration)/float64(time.Millisecond), metrics.UnitMilliseconds, "Endpoint", c.Endpoint)
}

func outcome(c klavi.Call) string {
	switch {
	case c.Status == 0:
		return "network_error"
	case c.Status >= 200 && c.Status < 300:
		return "ok"
	default:
		return strconv.Itoa(c.Status/100) + "xx"
	}
}
