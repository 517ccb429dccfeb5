package klavievent

import "testing"

func TestRankOrder(t *testing.T) {
	// Each group ranks above every earlier group and equal within itself.
	order := [][]string{
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
			if Rank(s) <= 0 {
				t.Errorf("Rank(%q) = %d, want > 0", s, Rank(s))
			}
			for _, same := range group {
				if Rank(s) != Rank(same) {
					t.Errorf("Rank(%q) = %d, Rank(%q) = %d, want equal", s, Rank(s), same, Rank(same))
				}
			}
			for _, earlier := range order[:i] {
				for _, e := range earlier {
					if Rank(s) <= Rank(e) {
						t.Errorf("Rank(%q) = %d, want > Rank(%q) = %d", s, Rank(s), e, Rank(e))
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
		{"authorised", Rank("AUTHORISED")},
		{" Deleted_By_User ", Rank("DELETED_BY_USER")},
		{"AUTHORIZED", 0},
		{"consent_authorised", 0},
		{"", 0},
		{"PENDING", 0},
	}
	for _, tc := range tests {
		if got := Rank(tc.status); got != tc.want {
			t.Errorf("Rank(%q) = %d, want %d", tc.status, got, tc.want)
		}
	}
}

func TestStatusForEvent(t *testing.T) {
	tests := []struct {
		name   string
		want   string
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
		got, ok := StatusForEvent(tc.name)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("StatusForEvent(%q) = %q, %t, want %q, %t", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestKnown(t *testing.T) {
	for _, name := range []string{"link_created", "link_action_status", "consent_authorised", "consent_error",
		"consent_rejected", "consent_expired", "consent_revoked", "consent_deleted_by_user",
		"product_request_received", "product_generated_success", "product_generated_failed"} {
		if !Known(name) {
			t.Errorf("Known(%q) = false, want true", name)
		}
	}
	if !Known(" CONSENT_AUTHORISED ") {
		t.Errorf("Known is case-sensitive; StatusForEvent is not")
	}
	for _, name := range []string{"", "page_view", "consent.approved", "consent_approved"} {
		if Known(name) {
			t.Errorf("Known(%q) = true, want false", name)
		}
	}
}
