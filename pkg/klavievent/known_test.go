package klavievent

import (
	"testing"
)

func TestKnown(t *testing.T) {
	for _, name := range []string{"link_created", "link_action_status", "consent_authorised", "consent_error",
		"consent_rejected", "consent_expired", "consent_revoked", "consent_deleted_by_user",
		"product_request_received", "product_generated_success", "product_generated_failed"} {
		if !Known(name) {
			t.Errorf("Known(%q) = false, want true", name)
		}
	}
	if !Known(" CONSENT_AUTHORISED ") {
		t.Errorf("Known is case-sensitive; klavi.ConsentStatusForEvent is not")
	}
	for _, name := range []string{"", "page_view", "consent.approved", "consent_approved"} {
		if Known(name) {
			t.Errorf("Known(%q) = true, want false", name)
		}
	}
}
