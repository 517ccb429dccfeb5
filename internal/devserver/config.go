package devserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/openfinance-br/klavi-link-lambda/pkg/appconfig"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Environment variables read by FromEnv besides appconfig's.
const (
	// EnvKlaviAccessKey and EnvKlaviSecretKey are the Klavi key pair used
	// for /auth and to verify webhooks when no credentials secret is named.
	// Local runs only: deployed functions read them from Secrets Manager.
	EnvKlaviAccessKey = "KLAVI_ACCESS_KEY"
	EnvKlaviSecretKey = "KLAVI_SECRET_KEY"
	// EnvReportsDir is where reports are stored when no bucket is named.
	EnvReportsDir = "REPORTS_DIR"
	// EnvEventBusName is the EventBridge bus integration events go to, as
	// for the deployed integration-events function.
	EnvEventBusName = "EVENT_BUS_NAME"
)

// DiskBucketName is the bucket Report Stored events name when reports are
// stored on disk.
const DiskBucketName = "local-reports"

// DefaultReportsDir is where reports go on disk, relative to the working
// directory (the repository root under `make run`; git ignores .local/).
const DefaultReportsDir = ".local/reports"

// DefaultTokenRefresh is how often the token is renewed, as the deployed
// token-refresh schedule does.
const DefaultTokenRefresh = 20 * time.Minute

// DefaultReportURLTTL is the lifetime of a report download URL, as
// REPORT_URL_TTL's default.
const DefaultReportURLTTL = 5 * time.Minute

// DefaultSweepInterval is how often authorised consents still waiting for
// their report request are looked for (the local stand-in for the
// reconciliation sweep; with a DynamoDB link store also for the stream).
const DefaultSweepInterval = 3 * time.Second

// DevCredentials is the key pair of the embedded simulator when none is
// configured. It is not a secret: it opens nothing but the simulator.
func DevCredentials() klavi.Credentials {
	return klavi.Credentials{AccessKey: "local-dev-access-key", SecretKey: "local-dev-secret-key"}
}

// Config selects, part by part, the embedded stand-in or the real thing.
// The zero value runs everything embedded: the Klavi simulator, an
// in-memory link store with its change feed, reports on disk under
// DefaultReportsDir and a token from the simulator's /auth.
type Config struct {
	// KlaviBaseURL is a Klavi API to use instead of the embedded simulator,
	// such as https://api-sandbox.klavi.ai. Klavi's webhooks then need a
	// public URL for this server (a tunnel): see ReportWebhookURL.
	KlaviBaseURL string
	// KlaviCredentials authenticate at Klavi and key webhook signatures
	// when CredentialsSecret is empty. With the simulator they default to
	// DevCredentials; with a real Klavi they are required.
	KlaviCredentials klavi.Credentials
	// CredentialsSecret and TokenSecret (both or neither) make the token
	// source the deployed one, over Secrets Manager (AWS must be set).
	CredentialsSecret, TokenSecret string
	// LinksTable makes the link store the DynamoDB table of that name
	// (AWS must be set). Without a table the store is in memory.
	LinksTable string
	// ReportsBucket makes the report store that S3 bucket (AWS must be
	// set). Without a bucket reports go to ReportsDir.
	ReportsBucket string
	// ReportsDir is the directory of the disk report store; default
	// DefaultReportsDir.
	ReportsDir string
	// ReportURLTTL is the lifetime of a report download URL; default
	// DefaultReportURLTTL.
	ReportURLTTL time.Duration
	// EventBusName makes integration events go to that EventBridge bus
	// (AWS must be set) as well as to the server's own list of them
	// (GET /dev/events). Without it the server's list is the bus.
	EventBusName string
	// KeptEvents is how many integration events the server lists;
	// default DefaultKeptEvents.
	KeptEvents int

	// ReportProducts are requested when a consent is authorised; default
	// ["all"].
	ReportProducts []string
	// ManualReportsOnly turns the automatic report request off
	// (AUTO_REQUEST_REPORTS=false): reports are then only requested
	// through POST /links/{linkId}/reports.
	ManualReportsOnly bool
	// AllowedRedirectHosts for redirectURL; default 127.0.0.1 and
	// localhost. Plain http is accepted on loopback hosts.
	AllowedRedirectHosts []string
	// ReportWebhookURL is the productsCallbackURL given to Klavi; default
	// this server's /webhooks/klavi/reports.
	ReportWebhookURL string
	// SourceIPs restricts who may call the webhooks; default anyone.
	SourceIPs httpapi.Allowlist
	// SignatureTolerance bounds |now - X-Klavi-Timestamp|; default 5m.
	SignatureTolerance time.Duration

	// Seed makes the simulator's ids and report data reproducible; 0 is
	// random.
	Seed int64
	// TokenRefresh is how often the token is renewed; default
	// DefaultTokenRefresh.
	TokenRefresh time.Duration
	// SweepInterval: see DefaultSweepInterval.
	SweepInterval time.Duration
	// PublicURL is the base URL this server is reached at; default the
	// address Start listens on, as http://host:port.
	PublicURL string

	// AWS is the SDK configuration for the parts that use AWS; required
	// when any of them does (NeedsAWS).
	AWS *aws.Config
	// Logger receives every log line; default discard. Lines carry the
	// requestId of the invocation they belong to.
	Logger *slog.Logger
}

// FromEnv reads the configuration from the environment, with the
// variables and defaults of the deployed functions (appconfig) where they
// apply. KLAVI_BASE_URL unset means the embedded simulator.
func FromEnv(getenv func(string) string) (Config, error) {
	app, err := appconfig.Load(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		KlaviBaseURL: strings.TrimSpace(getenv(appconfig.EnvKlaviBaseURL)),
		KlaviCredentials: klavi.Credentials{
			AccessKey: strings.TrimSpace(getenv(EnvKlaviAccessKey)),
			SecretKey: strings.TrimSpace(getenv(EnvKlaviSecretKey)),
		},
		CredentialsSecret:    app.CredentialsSecret,
		TokenSecret:          app.TokenSecret,
		LinksTable:           app.LinksTable,
		ReportsBucket:        app.ReportsBucket,
		ReportsDir:           strings.TrimSpace(getenv(EnvReportsDir)),
		EventBusName:         strings.TrimSpace(getenv(EnvEventBusName)),
		ReportProducts:       app.ReportProducts,
		ManualReportsOnly:    !app.AutoRequestReports,
		AllowedRedirectHosts: app.AllowedRedirectHosts,
		ReportWebhookURL:     app.ReportWebhookURL,
		SourceIPs:            app.SourceIPs,
		SignatureTolerance:   app.SignatureTolerance,
		ReportURLTTL:         app.ReportURLTTL,
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// NeedsAWS reports whether any part runs on AWS (or an emulator of it), so
// that AWS must be set.
func (c Config) NeedsAWS() bool {
	return c.LinksTable != "" || c.ReportsBucket != "" || c.CredentialsSecret != "" || c.TokenSecret != "" || c.EventBusName != ""
}

// Simulated reports whether the embedded Klavi simulator is used.
func (c Config) Simulated() bool { return c.KlaviBaseURL == "" }

// check reports every inconsistency at once. It never quotes a key.
func (c Config) check() error {
	var errs []error
	if (c.CredentialsSecret == "") != (c.TokenSecret == "") {
		errs = append(errs, fmt.Errorf("set both %s and %s, or neither", appconfig.EnvCredentialsSecret, appconfig.EnvTokenSecret))
	}
	if (c.KlaviCredentials.AccessKey == "") != (c.KlaviCredentials.SecretKey == "") {
		errs = append(errs, fmt.Errorf("set both %s and %s, or neither", EnvKlaviAccessKey, EnvKlaviSecretKey))
	}
	if !c.Simulated() {
		if err := checkBaseURL(c.KlaviBaseURL); err != nil {
			errs = append(errs, err)
		}
		if c.CredentialsSecret == "" && c.KlaviCredentials.AccessKey == "" {
			errs = append(errs, fmt.Errorf("%s names a Klavi API: give its credentials in %s and %s, or in the secret %s names",
				appconfig.EnvKlaviBaseURL, EnvKlaviAccessKey, EnvKlaviSecretKey, appconfig.EnvCredentialsSecret))
		}
	}
	if c.PublicURL != "" {
		if err := checkBaseURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("public URL: %w", err))
		}
	}
	if c.ReportWebhookURL != "" {
		if u, err := url.Parse(c.ReportWebhookURL); err != nil || !u.IsAbs() || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute URL", appconfig.EnvReportWebhookURL))
		}
	}
	if c.TokenRefresh < 0 || c.SweepInterval < 0 || c.SignatureTolerance < 0 || c.KeptEvents < 0 || c.ReportURLTTL < 0 {
		errs = append(errs, errors.New("intervals and tolerances must not be negative"))
	}
	if c.ReportURLTTL > appconfig.MaxReportURLTTL {
		errs = append(errs, fmt.Errorf("%s must be at most %s", appconfig.EnvReportURLTTL, appconfig.MaxReportURLTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s must be an absolute http(s) URL without credentials or query", appconfig.EnvKlaviBaseURL)
	}
	return nil
}

// withDefaults fills in what the zero value leaves open.
func (c Config) withDefaults() Config {
	if c.Simulated() && c.CredentialsSecret == "" && c.KlaviCredentials.AccessKey == "" {
		c.KlaviCredentials = DevCredentials()
	}
	if c.ReportsDir == "" {
		c.ReportsDir = DefaultReportsDir
	}
	if len(c.ReportProducts) == 0 {
		c.ReportProducts = []string{"all"}
	}
	if len(c.AllowedRedirectHosts) == 0 {
		c.AllowedRedirectHosts = []string{"127.0.0.1", "localhost"}
	}
	if c.SignatureTolerance == 0 {
		c.SignatureTolerance = 5 * time.Minute
	}
	if c.TokenRefresh == 0 {
		c.TokenRefresh = DefaultTokenRefresh
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.ReportURLTTL == 0 {
		c.ReportURLTTL = DefaultReportURLTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.KlaviBaseURL = strings.TrimRight(c.KlaviBaseURL, "/")
	return c
}
