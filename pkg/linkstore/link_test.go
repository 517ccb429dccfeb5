package linkstore

import (
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

func TestLinkStatus(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return now.Add(time.Duration(min) * time.Minute) }
	consent := func(id string, status klavi.ConsentStatus, min int) Consent {
		return Consent{ConsentID: id, Status: status, EventTime: at(min)}
	}
	tests := []struct {
		name string
		link Link
		want string
	}{
		{"new link", Link{ExpiresAt: at(30)}, StatusCreated},
		{"no expiry", Link{}, StatusCreated},
		{"expired link without consent", Link{ExpiresAt: at(0)}, StatusExpired},
		{"consent started, link expired", Link{ExpiresAt: at(-1), Consents: []Consent{consent("a", klavi.ConsentStarted, -5)}}, StatusCreated},
		{"awaiting authorisation", Link{Consents: []Consent{consent("a", klavi.ConsentAwaitingAuthorisation, -5)}}, StatusCreated},
		{"awaiting LGPD", Link{Consents: []Consent{consent("a", klavi.ConsentAwaitingLGPDAuthorisation, -5)}}, StatusCreated},
		{"unknown consent status", Link{Consents: []Consent{consent("a", "SOMETHING_NEW", -5)}}, StatusCreated},
		{"authorised", Link{Consents: []Consent{consent("a", klavi.ConsentAuthorised, -5)}}, StatusAuthorised},
		{"authorised beats a later rejection", Link{Consents: []Consent{consent("a", klavi.ConsentAuthorised, -5), consent("b", klavi.ConsentRejected, -1)}}, StatusAuthorised},
		{"requested", Link{Consents: []Consent{consent("a", klavi.ConsentAuthorised, -5)}, ReportRequests: []ReportRequest{{RequestID: "r"}}}, StatusReportsRequested},
		{"requested via consent", Link{Consents: []Consent{{ConsentID: "a", Status: klavi.ConsentAuthorised, RequestID: "r"}}}, StatusReportsRequested},
		{"request but consent revoked", Link{Consents: []Consent{consent("a", klavi.ConsentRevoked, -1)}, ReportRequests: []ReportRequest{{RequestID: "r"}}}, StatusRevoked},
		{"reports received", Link{Consents: []Consent{consent("a", klavi.ConsentRevoked, -1)}, Reports: []Report{{ProductReportID: "p"}}}, StatusReportsReceived},
		{"purged", Link{PurgedAt: at(-1), Reports: []Report{{ProductReportID: "p"}}}, StatusDeletedByUser},
		{"error", Link{Consents: []Consent{consent("a", klavi.ConsentError, -1)}}, StatusError},
		{"rejected", Link{Consents: []Consent{consent("a", klavi.ConsentRejected, -1)}}, StatusRejected},
		{"consent expired", Link{Consents: []Consent{consent("a", klavi.ConsentExpired, -1)}}, StatusExpired},
		{"revoked", Link{Consents: []Consent{consent("a", klavi.ConsentRevoked, -1)}}, StatusRevoked},
		{"deleted by user", Link{Consents: []Consent{consent("a", klavi.ConsentDeletedByUser, -1)}}, StatusDeletedByUser},
		{"most recent consent wins", Link{Consents: []Consent{consent("a", klavi.ConsentRejected, -1), consent("b", klavi.ConsentError, -3)}}, StatusRejected},
		{"most recent consent wins, any order", Link{Consents: []Consent{consent("b", klavi.ConsentError, -3), consent("a", klavi.ConsentRejected, -1)}}, StatusRejected},
		{"same time: later state wins", Link{Consents: []Consent{consent("a", klavi.ConsentRevoked, -1), consent("b", klavi.ConsentStarted, -1)}}, StatusRevoked},
		{"same time and rank: consent id decides", Link{Consents: []Consent{consent("b", klavi.ConsentRejected, -1), consent("a", klavi.ConsentError, -1)}}, StatusRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.link.Status(now); got != tc.want {
				t.Errorf("Status() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTimeFormatOrdersAsTime(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("BRT", -3*60*60))
	times := []time.Time{base, base.Add(time.Millisecond), base.Add(999 * time.Millisecond), base.Add(time.Second), base.Add(10 * time.Hour), base.AddDate(1, 0, 0)}
	for i := 1; i < len(times); i++ {
		a, b := formatTime(times[i-1]), formatTime(times[i])
		if len(a) != len(b) || a >= b {
			t.Errorf("formatTime(%v) = %q, formatTime(%v) = %q: want same width and increasing", times[i-1], a, times[i], b)
		}
	}
	if got, want := formatTime(base), "2026-01-02T06:04:05.000Z"; got != want {
		t.Errorf("formatTime = %q, want %q", got, want)
	}
}
