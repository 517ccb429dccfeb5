package klavievent

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(linkCreatedExample))
	f.Add([]byte(consentArrayBody))
	f.Add([]byte(envelope("consent_authorised", `{"linkId":"l1","consents":{"consentId":"c1"}}`)))
	f.Add([]byte(envelope("link_action_status", `{"actionStatus":"consent_revoked"}`)))
	f.Add([]byte(envelope("product_generated_success", `{"productNames":["a","b"]}`)))
	f.Add([]byte(`{"eventId":"a","eventID":"b"}`))
	f.Add([]byte(`[{"eventId":1e999,"payload":{"consents":[null,1]}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"eventId":`))

	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEmpty) &&
				!errors.Is(err, ErrMissingEventID) && !errors.Is(err, ErrTooManyEvents) {
				t.Fatalf("Parse() error = %v, want one of the sentinel errors", err)
			}
			if events != nil {
				t.Fatalf("Parse() = %d events with error, want nil", len(events))
			}
			return
		}
		if len(events) == 0 || len(events) > MaxEvents {
			t.Fatalf("Parse() returned %d events, want 1..%d", len(events), MaxEvents)
		}
		for _, e := range events {
			if e.EventID == "" {
				t.Fatal("Parse() returned an event with an empty EventID")
			}
			changes, err := e.Changes()
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Changes() error = %v, want ErrMalformed", err)
				}
				continue
			}
			if len(changes) == 0 {
				t.Fatal("Changes() returned no change and no error")
			}
			for _, c := range changes {
				if c.EventID != e.EventID {
					t.Fatalf("Change.EventID = %q, want %q", c.EventID, e.EventID)
				}
				switch c.Kind {
				case KindLinkCreated, KindProduct, KindUnknown:
					if c.ConsentStatus != "" {
						t.Fatalf("Change of kind %s has ConsentStatus %q", c.Kind, c.ConsentStatus)
					}
				case KindConsent:
					if !c.ConsentStatus.Known() {
						t.Fatalf("consent Change has unknown ConsentStatus %q", c.ConsentStatus)
					}
				default:
					t.Fatalf("Change.Kind = %q, not a known kind", c.Kind)
				}
			}
		}
	})
}
