package klavi

import (
	"testing"
	"time"
)

func TestRankOrder(t *testing.T) {
	// Each group ranks above every earlier group and equal within itself.
	order := [][]ConsentStatus{
		{"STARTED"},
		{"AWAITING_AUTHORISATION"},
		{"AWAITING_LGPD_AUTHORISATION"},
		{"AUTHORISED"},
		{"ERROR", "REJECTED", "EXPIRED"},
		{"REVOKED"},
		{"DELETED_BY_USER"},
	}
	for i, group := range order {
		for _, s := range group {
			if s.Rank() <= 0 {
				t.Errorf("%q.Rank() = %d, want > 0", s, s.Rank())
			}
			for _, same := range group {
				if s.Rank() != same.Rank() {
					t.Errorf("%q.Rank() = %d, %q.Rank() = %d, want equal", s, s.Rank(), same, same.Rank())
				}
			}
			for _, earlier := range order[:i] {
				for _, e := range earlier {
					if s.Rank() <= e.Rank() {
						t.Errorf("%q.Rank() = %d, want > %q.Rank() = %d", s, s.Rank(), e, e.Rank())
					}
				}
			}
		}
	}
}

func TestRankCasingAndUnknown(t *testing.T) {
	tests := []struct {
		status string
		want   int
	}{
		{"authorised", ConsentAuthorised.Rank()},
		{" Deleted_By_User ", ConsentDeletedByUser.Rank()},
		{"AUTHORIZED", 0},
		{"consent_authorised", 0},
		{"", 0},
		{"PENDING", 0},
	}
	for _, tc := range tests {
		if got := ParseConsentStatus(tc.status).Rank(); got != tc.want {
			t.Errorf("ParseConsentStatus(%q).Rank() = %d, want %d", tc.status, got, tc.want)
		}
	}
	// Rank itself matches exactly: an unparsed lower-case status is unknown.
	if got := ConsentStatus("authorised").Rank(); got != 0 {
		t.Errorf(`ConsentStatus("authorised").Rank() = %d, want 0`, got)
	}
	if ConsentStatus("authorised").Known() || !ConsentAuthorised.Known() {
		t.Errorf("Known: want exact spelling only")
	}
}

func TestPendingEndedAndFinal(t *testing.T) {
	tests := []struct {
		status                ConsentStatus
		pending, ended, final bool
	}{
		{ConsentStarted, true, false, false},
		{ConsentAwaitingAuthorisation, true, false, false},
		{ConsentAwaitingLGPDAuthorisation, true, false, false},
		{ConsentAuthorised, false, false, false},
		{ConsentError, false, true, false},
		{ConsentRejected, false, true, false},
		{ConsentExpired, false, true, false},
		{ConsentRevoked, false, true, false},
		{ConsentDeletedByUser, false, true, true},
		{"PENDING", false, false, false},
		{"started", false, false, false},
		{"", false, false, false},
	}
	for _, tc := range tests {
		if got := tc.status.Pending(); got != tc.pending {
			t.Errorf("%q.Pending() = %t, want %t", tc.status, got, tc.pending)
		}
		if got := tc.status.Ended(); got != tc.ended {
			t.Errorf("%q.Ended() = %t, want %t", tc.status, got, tc.ended)
		}
		if got := tc.status.Final(); got != tc.final {
			t.Errorf("%q.Final() = %t, want %t", tc.status, got, tc.final)
		}
	}
}

func TestSupersedes(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	tests := []struct {
		name      string
		next      ConsentStatus
		nextAt    time.Time
		cur       ConsentStatus
		curAt     time.Time
		supersede bool
	}{
		{"newer event wins", ConsentStarted, t1, ConsentAuthorised, t0, true},
		{"older event loses", ConsentRevoked, t0, ConsentAuthorised, t1, false},
		{"same time, later stage wins", ConsentRevoked, t0, ConsentAuthorised, t0, true},
		{"same time, earlier stage loses", ConsentAuthorised, t0, ConsentRevoked, t0, false},
		{"same time, same rank loses", ConsentRejected, t0, ConsentError, t0, false},
		{"same time, unknown loses", "PENDING", t0, ConsentStarted, t0, false},
		{"unknown current loses to known", ConsentStarted, t0, "PENDING", t0, true},
		{"deletion wins though older", ConsentDeletedByUser, t0, ConsentRevoked, t1, true},
		{"nothing replaces deletion, newer", ConsentRevoked, t1, ConsentDeletedByUser, t0, false},
		{"nothing replaces deletion, second deletion", ConsentDeletedByUser, t1, ConsentDeletedByUser, t0, false},
		{"new consent", ConsentAuthorised, t0, "", time.Time{}, true},
	}
	for _, tc := range tests {
		if got := Supersedes(tc.next, tc.nextAt, tc.cur, tc.curAt); got != tc.supersede {
			t.Errorf("%s: Supersedes(%q, %v, %q, %v) = %t, want %t", tc.name, tc.next, tc.nextAt, tc.cur, tc.curAt, got, tc.supersede)
		}
	}
}

func TestConsentStatusForEvent(t *testing.T) {
	tests := []struct {
		name   string
		want   ConsentStatus
		wantOK bool
	}{
		{"consent_authorised", "AUTHORISED", true},
		{"consent_error", "ERROR", true},
		{"consent_rejected", "REJECTED", true},
		{"consent_expired", "EXPIRED", true},
		{"consent_revoked", "REVOKED", true},
		{"consent_deleted_by_user", "DELETED_BY_USER", true},
		{"CONSENT_Authorised", "AUTHORISED", true},
		{" consent_revoked\n", "REVOKED", true},
		{"consent_authorized", "", false},
		{"link_created", "", false},
		{"link_action_status", "", false},
		{"AUTHORISED", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := ConsentStatusForEvent(tc.name)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ConsentStatusForEvent(%q) = %q, %t, want %q, %t", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestEventName(t *testing.T) {
	for _, s := range []ConsentStatus{ConsentAuthorised, ConsentError, ConsentRejected, ConsentExpired, ConsentRevoked, ConsentDeletedByUser} {
		name, ok := s.EventName()
		if !ok {
			t.Errorf("%q.EventName() not ok", s)
			continue
		}
		if back, ok := ConsentStatusForEvent(name); !ok || back != s {
			t.Errorf("%q.EventName() = %q, which maps back to %q, %t", s, name, back, ok)
		}
	}
	for _, s := range []ConsentStatus{ConsentStarted, ConsentAwaitingAuthorisation, ConsentAwaitingLGPDAuthorisation, "authorised", "PENDING", ""} {
		if name, ok := s.EventName(); ok {
			t.Errorf("%q.EventName() = %q, true, want no event", s, name)
		}
	}
}
