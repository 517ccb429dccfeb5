package devserver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

func envOf(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		want          Config
		wantSimulated bool
		wantAWS       bool
	}{
		{
			name:          "nothing set: everything embedded",
			env:           map[string]string{},
			want:          Config{ReportProducts: []string{"all"}, SignatureTolerance: 5 * time.Minute, ReportURLTTL: 5 * time.Minute},
			wantSimulated: true,
		},
		{
			name: "real Klavi with keys",
			env: map[string]string{
				"KLAVI_BASE_URL":     "https://api-sandbox.klavi.ai",
				"KLAVI_ACCESS_KEY":   "ak",
				"KLAVI_SECRET_KEY":   "sk",
				"REPORT_WEBHOOK_URL": "https://tunnel.example.com/webhooks/klavi/reports",
			},
			want: Config{
				KlaviBaseURL:       "https://api-sandbox.klavi.ai",
				KlaviCredentials:   klavi.Credentials{AccessKey: "ak", SecretKey: "sk"},
				ReportWebhookURL:   "https://tunnel.example.com/webhooks/klavi/reports",
				ReportProducts:     []string{"all"},
				SignatureTolerance: 5 * time.Minute,
				ReportURLTTL:       5 * time.Minute,
			},
		},
		{
			name:          "event bus only: the memory store's events go to EventBridge",
			env:           map[string]string{"EVENT_BUS_NAME": " klavi-link-dev "},
			want:          Config{EventBusName: "klavi-link-dev", ReportProducts: []string{"all"}, SignatureTolerance: 5 * time.Minute, ReportURLTTL: 5 * time.Minute},
			wantSimulated: true,
			wantAWS:       true,
		},
		{
			name: "AWS parts and options",
			env: map[string]string{
				"LINKS_TABLE":              "links",
				"REPORTS_BUCKET":           "reports",
				"KLAVI_CREDENTIALS_SECRET": "creds",
				"KLAVI_TOKEN_SECRET":       "token",
				"REPORTS_DIR":              "/tmp/r",
				"REPORT_PRODUCTS":          "pf_checking_account, pf_credit_card",
				"AUTO_REQUEST_REPORTS":     "false",
				"ALLOWED_REDIRECT_HOSTS":   "localhost",
				"SIGNATURE_TOLERANCE":      "1m",
				"REPORT_URL_TTL":           "2m",
			},
			want: Config{
				CredentialsSecret:    "creds",
				TokenSecret:          "token",
				LinksTable:           "links",
				ReportsBucket:        "reports",
				ReportsDir:           "/tmp/r",
				ReportProducts:       []string{"pf_checking_account", "pf_credit_card"},
				ManualReportsOnly:    true,
				AllowedRedirectHosts: []string{"localhost"},
				SignatureTolerance:   time.Minute,
				ReportURLTTL:         2 * time.Minute,
			},
			wantSimulated: true,
			wantAWS:       true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(envOf(tc.env))
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b httpapi.Allowlist) bool { return a.Enabled() == b.Enabled() })); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
			if got.Simulated() != tc.wantSimulated || got.NeedsAWS() != tc.wantAWS {
				t.Errorf("Simulated, NeedsAWS = %v, %v; want %v, %v", got.Simulated(), got.NeedsAWS(), tc.wantSimulated, tc.wantAWS)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"one secret", map[string]string{"KLAVI_CREDENTIALS_SECRET": "c"}, "KLAVI_TOKEN_SECRET"},
		{"one key", map[string]string{"KLAVI_ACCESS_KEY": "ak"}, "KLAVI_SECRET_KEY"},
		{"real Klavi without credentials", map[string]string{"KLAVI_BASE_URL": "https://api.klavi.ai"}, "credentials"},
		{"Klavi URL with a query", map[string]string{"KLAVI_BASE_URL": "https://api.klavi.ai/?x=1", "KLAVI_ACCESS_KEY": "a", "KLAVI_SECRET_KEY": "b"}, "KLAVI_BASE_URL"},
		{"bad report webhook URL", map[string]string{"REPORT_WEBHOOK_URL": "/relative"}, "REPORT_WEBHOOK_URL"},
		{"bad boolean", map[string]string{"AUTO_REQUEST_REPORTS": "maybe"}, "AUTO_REQUEST_REPORTS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("FromEnv error = %v, want one naming %s", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "ak") && tc.env["KLAVI_ACCESS_KEY"] == "ak" {
				t.Errorf("error %q quotes a key", err)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"AWS part without AWS", Config{LinksTable: "links", ReportsDir: dir}, "AWS configuration"},
		{"secrets without AWS", Config{CredentialsSecret: "c", TokenSecret: "t", ReportsDir: dir}, "AWS configuration"},
		{"event bus without AWS", Config{EventBusName: "bus", ReportsDir: dir}, "AWS configuration"},
		{"negative kept events", Config{KeptEvents: -1, ReportsDir: dir}, "negative"},
		{"download URLs living too long", Config{ReportURLTTL: 2 * time.Hour, ReportsDir: dir}, "REPORT_URL_TTL"},
		{"bad public URL", Config{PublicURL: "ftp://x", ReportsDir: dir}, "public URL"},
		{"negative interval", Config{SweepInterval: -time.Second, ReportsDir: dir}, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New error = %v, want one about %s", err, tc.wantErr)
			}
		})
	}
	if _, err := New(Config{LinksTable: "links", ReportsBucket: "b", AWS: &aws.Config{Region: "us-east-1"}}); err != nil {
		t.Errorf("New with AWS parts and a configuration: %v", err)
	}
}
