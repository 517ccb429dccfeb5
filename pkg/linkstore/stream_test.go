package linkstore

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

func TestConsentFromStreamImage(t *testing.T) {
	s := events.NewStringAttribute
	full := map[string]events.DynamoDBAttributeValue{
		"pk":              s("LINK#l-1"),
		"sk":              s("CONSENT#c-1"),
		"type":            s("consent"),
		"linkId":          s("l-1"),
		"consentId":       s("c-1"),
		"institutionCode": s("260"),
		"status":          s("AUTHORISED"),
		"eventTime":       s("2026-03-02T13:00:00.123Z"),
		"eventRank":       events.NewNumberAttribute("4"),
		"updatedAt":       s("2026-03-02T13:00:01.000Z"),
		"requestId":       s("r-1"),
		"leaseUntil":      s("2026-03-02T13:01:00.000Z"),
	}
	without := func(name string) map[string]events.DynamoDBAttributeValue {
		img := map[string]events.DynamoDBAttributeValue{}
		for k, v := range full {
			if k != name {
				img[k] = v
			}
		}
		return img
	}
	with := func(name string, v events.DynamoDBAttributeValue) map[string]events.DynamoDBAttributeValue {
		img := without(name)
		img[name] = v
		return img
	}
	wantConsent := Consent{
		ConsentID: "c-1", InstitutionCode: "260", Status: ConsentAuthorised,
		EventTime:  time.Date(2026, 3, 2, 13, 0, 0, 123e6, time.UTC),
		UpdatedAt:  time.Date(2026, 3, 2, 13, 0, 1, 0, time.UTC),
		RequestID:  "r-1",
		LeaseUntil: time.Date(2026, 3, 2, 13, 1, 0, 0, time.UTC),
	}
	tests := []struct {
		name      string
		img       map[string]events.DynamoDBAttributeValue
		wantLink  string
		wantOK    bool
		isConsent bool
	}{
		{"consent", full, "l-1", true, true},
		{"link id from the key", without("linkId"), "l-1", true, true},
		{"link item", with("type", s("link")), "", false, false},
		{"no type", without("type"), "", false, false},
		{"type of another kind", with("type", events.NewNumberAttribute("1")), "", false, false},
		{"no consent id", without("consentId"), "", false, true},
		{"empty image", nil, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsConsentItem(tc.img); got != tc.isConsent {
				t.Errorf("IsConsentItem = %v, want %v", got, tc.isConsent)
			}
			linkID, c, ok := ConsentFromStreamImage(tc.img)
			if linkID != tc.wantLink || ok != tc.wantOK {
				t.Fatalf("ConsentFromStreamImage = %q, ok %v; want %q, ok %v", linkID, ok, tc.wantLink, tc.wantOK)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(wantConsent, c); diff != "" {
				t.Errorf("consent mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
