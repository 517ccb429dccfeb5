// Package appconfig reads the functions' environment (design section 3) once,
// at cold start, into one validated struct. Secret values never come from the
// environment: only the names or ARNs of the secrets that hold them.
package appconfig

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/access"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

// Environment variable names.
const (
	EnvKlaviBaseURL         = "KLAVI_BASE_URL"
	EnvCredentialsSecret    = "KLAVI_CREDENTIALS_SECRET"
	EnvTokenSecret          = "KLAVI_TOKEN_SECRET"
	EnvLinksTable           = "LINKS_TABLE"
	EnvReportsBucket        = "REPORTS_BUCKET"
	EnvReportProducts       = "REPORT_PRODUCTS"
	EnvAutoRequestReports   = "AUTO_REQUEST_REPORTS"
	EnvAllowedRedirectHosts = "ALLOWED_REDIRECT_HOSTS"
	EnvReportWebhookURL     = "REPORT_WEBHOOK_URL"
	EnvKlaviSourceIPs       = "KLAVI_SOURCE_IPS"
	EnvSignatureTolerance   = "SIGNATURE_TOLERANCE"
	EnvReconcileAfter       = "RECONCILE_AFTER"
	EnvReportURLTTL         = "REPORT_URL_TTL"
	EnvJWTOwnerClaim        = "JWT_OWNER_CLAIM"
	EnvJWTAdminScope        = "JWT_ADMIN_SCOPE"
	EnvReportCooldown       = "REPORT_REQUEST_COOLDOWN"
)

// MaxReportURLTTL bounds REPORT_URL_TTL: a download URL is a bearer
// credential for the report, so it must not live long.
const MaxReportURLTTL = time.Hour

// DefaultReportCooldown is REPORT_REQUEST_COOLDOWN's default.
const DefaultReportCooldown = 10 * time.Minute

// DefaultKlaviBaseURL is Klavi's sandbox.
const DefaultKlaviBaseURL = "https://api-sandbox.klavi.ai"

// Config is the environment of every function, parsed.
type Config struct {
	KlaviBaseURL         string
	CredentialsSecret    string
	TokenSecret          string
	LinksTable           string
	ReportsBucket        string
	ReportProducts       []string
	AutoRequestReports   bool
	AllowedRedirectHosts []string
	ReportWebhookURL     string
	SourceIPs            httpapi.Allowlist
	// SignatureTolerance bounds |now - X-Klavi-Timestamp|; default 5m.
	SignatureTolerance time.Duration
	// ReconcileAfter is how long an authorised consent may wait for its
	// reports before the reconciliation sweep acts; default 15m.
	ReconcileAfter time.Duration
	// ReportURLTTL is the lifetime of a report download URL; default 5m,
	// at most MaxReportURLTTL.
	ReportURLTTL time.Duration
	// Access names the JWT claim of a link's owner (JWT_OWNER_CLAIM,
	// default sub) and the back office's scope (JWT_ADMIN_SCOPE, default
	// klavi-link/admin).
	Access access.Policy
	// ReportCooldown is how long a manual report request for a consent and
	// products holds off the same request (REPORT_REQUEST_COOLDOWN,
	// default 10m).
	ReportCooldown time.Duration
}

// Load reads the environment through getenv (os.Getenv in main) and checks
// that every variable in required is set. Every problem is reported at once.
func Load(getenv func(string) string, required ...string) (Config, error) {
	var errs []error
	for _, name := range required {
		if strings.TrimSpace(getenv(name)) == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	c := Config{
		KlaviBaseURL:         strings.TrimSpace(getenv(EnvKlaviBaseURL)),
		CredentialsSecret:    strings.TrimSpace(getenv(EnvCredentialsSecret)),
		TokenSecret:          strings.TrimSpace(getenv(EnvTokenSecret)),
		LinksTable:           strings.TrimSpace(getenv(EnvLinksTable)),
		ReportsBucket:        strings.TrimSpace(getenv(EnvReportsBucket)),
		ReportProducts:       list(getenv(EnvReportProducts)),
		AllowedRedirectHosts: list(getenv(EnvAllowedRedirectHosts)),
		ReportWebhookURL:     strings.TrimSpace(getenv(EnvReportWebhookURL)),
		AutoRequestReports:   true,
		SignatureTolerance:   5 * time.Minute,
		ReconcileAfter:       15 * time.Minute,
		ReportURLTTL:         5 * time.Minute,
		ReportCooldown:       DefaultReportCooldown,
	}
	if c.KlaviBaseURL == "" {
		c.KlaviBaseURL = DefaultKlaviBaseURL
	}
	if u, err := url.Parse(c.KlaviBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s must be an absolute URL", EnvKlaviBaseURL))
	}
	if len(c.ReportProducts) == 0 {
		c.ReportProducts = []string{"all"}
	}
	if v := strings.TrimSpace(getenv(EnvAutoRequestReports)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s must be true or false", EnvAutoRequestReports))
		}
		c.AutoRequestReports = b
	}
	if c.ReportWebhookURL != "" {
		if u, err := url.Parse(c.ReportWebhookURL); err != nil || !u.IsAbs() || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute URL", EnvReportWebhookURL))
		}
	}
	allow, err := httpapi.ParseAllowlist(getenv(EnvKlaviSourceIPs))
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvKlaviSourceIPs, err))
	}
	c.SourceIPs = allow
	if d, ok, err := duration(getenv(EnvSignatureTolerance)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvSignatureTolerance, err))
	} else if ok {
		c.SignatureTolerance = d
	}
	if d, ok, err := duration(getenv(EnvReconcileAfter)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvReconcileAfter, err))
	} else if ok {
		c.ReconcileAfter = d
	}
	if d, ok, err := duration(getenv(EnvReportURLTTL)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvReportURLTTL, err))
	} else if ok && (d <= 0 || d > MaxReportURLTTL) {
		errs = append(errs, fmt.Errorf("%s must be more than 0 and at most %s", EnvReportURLTTL, MaxReportURLTTL))
	} else if ok {
		c.ReportURLTTL = d
	}
	if p, err := access.NewPolicy(getenv(EnvJWTOwnerClaim), getenv(EnvJWTAdminScope)); err != nil {
		errs = append(errs, fmt.Errorf("%s/%s: %w", EnvJWTOwnerClaim, EnvJWTAdminScope, err))
	} else {
		c.Access = p
	}
	if d, ok, err := duration(getenv(EnvReportCooldown)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvReportCooldown, err))
	} else if ok && d <= 0 {
		errs = append(errs, fmt.Errorf("%s must be positive", EnvReportCooldown))
	} else if ok {
		c.ReportCooldown = d
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

func list(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func duration(s string) (time.Duration, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false, errors.New("must be a Go duration such as 5m")
	}
	return d, true, nil
}
