package appconfig

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/access"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{EnvLinksTable: "links"}), EnvLinksTable)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.KlaviBaseURL != DefaultKlaviBaseURL {
		t.Errorf("KlaviBaseURL = %q, want %q", c.KlaviBaseURL, DefaultKlaviBaseURL)
	}
	if diff := cmp.Diff([]string{"all"}, c.ReportProducts); diff != "" {
		t.Errorf("ReportProducts (-want +got):\n%s", diff)
	}
	if !c.AutoRequestReports {
		t.Errorf("AutoRequestReports = false, want true by default")
	}
	if c.SignatureTolerance != 5*time.Minute || c.ReconcileAfter != 15*time.Minute {
		t.Errorf("durations = %v, %v; want 5m, 15m", c.SignatureTolerance, c.ReconcileAfter)
	}
	if c.SourceIPs.Enabled() {
		t.Errorf("source allow list enabled without KLAVI_SOURCE_IPS")
	}
	if c.ReportCooldown != 10*time.Minute {
		t.Errorf("ReportCooldown = %v, want 10m", c.ReportCooldown)
	}
	// The zero policy is the defaults: sub and klavi-link/admin.
	if c.Access != (access.Policy{}) {
		t.Errorf("Access = %+v, want the zero (default) policy", c.Access)
	}
}

func TestLoadAccess(t *testing.T) {
	c, err := Load(env(map[string]string{EnvJWTOwnerClaim: "client_id", EnvJWTAdminScope: "ops/admin", EnvReportCooldown: "90s"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := (access.Policy{OwnerClaim: "client_id", AdminScope: "ops/admin"}); c.Access != want {
		t.Errorf("Access = %+v, want %+v", c.Access, want)
	}
	if c.ReportCooldown != 90*time.Second {
		t.Errorf("ReportCooldown = %v, want 90s", c.ReportCooldown)
	}
	for name, m := range map[string]map[string]string{
		"owner claim email":       {EnvJWTOwnerClaim: "email"},
		"admin scope spaces":      {EnvJWTAdminScope: "a b"},
		"cooldown not a duration": {EnvReportCooldown: "ten minutes"},
		"cooldown zero":           {EnvReportCooldown: "0s"},
	} {
		if _, err := Load(env(m)); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(env(map[string]string{
		EnvKlaviBaseURL:         "https://api.klavi.ai",
		EnvReportProducts:       " pf_checking_account, pf_credit_card ,",
		EnvAutoRequestReports:   "false",
		EnvAllowedRedirectHosts: "app.example.com,*.example.org",
		EnvKlaviSourceIPs:       "18.230.43.17/32",
		EnvSignatureTolerance:   "2m",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff([]string{"pf_checking_account", "pf_credit_card"}, c.ReportProducts); diff != "" {
		t.Errorf("ReportProducts (-want +got):\n%s", diff)
	}
	if c.AutoRequestReports {
		t.Errorf("AutoRequestReports = true, want false")
	}
	if diff := cmp.Diff([]string{"app.example.com", "*.example.org"}, c.AllowedRedirectHosts); diff != "" {
		t.Errorf("AllowedRedirectHosts (-want +got):\n%s", diff)
	}
	if !c.SourceIPs.Enabled() || c.SignatureTolerance != 2*time.Minute {
		t.Errorf("SourceIPs enabled = %v, tolerance = %v", c.SourceIPs.Enabled(), c.SignatureTolerance)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{
		EnvKlaviBaseURL:       "not a url",
		EnvAutoRequestReports: "maybe",
		EnvKlaviSourceIPs:     "300.1.1.1",
		EnvSignatureTolerance: "five minutes",
		EnvReportWebhookURL:   "/relative",
	}), EnvLinksTable, EnvReportsBucket)
	if err == nil {
		t.Fatal("Load succeeded, want error")
	}
	for _, want := range []string{EnvLinksTable, EnvReportsBucket, EnvKlaviBaseURL, EnvAutoRequestReports, EnvKlaviSourceIPs, EnvSignatureTolerance, EnvReportWebhookURL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestLoadReportURLTTL(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        time.Duration
		fails       bool
	}{
		{"default", "", 5 * time.Minute, false},
		{"set", "90s", 90 * time.Second, false},
		{"at most an hour", "1h", time.Hour, false},
		{"over an hour", "61m", 0, true},
		{"zero", "0s", 0, true},
		{"negative", "-5m", 0, true},
		{"not a duration", "5", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(map[string]string{EnvReportURLTTL: tc.value}))
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), EnvReportURLTTL) {
					t.Fatalf("Load(%q) = %v, want an error naming %s", tc.value, err, EnvReportURLTTL)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%q): %v", tc.value, err)
			}
			if c.ReportURLTTL != tc.want {
				t.Errorf("ReportURLTTL = %v, want %v", c.ReportURLTTL, tc.want)
			}
		})
	}
}
