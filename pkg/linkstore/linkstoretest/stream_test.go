package linkstoretest_test

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func TestStreamRecordRoundTrip(t *testing.T) {
	full := linkstore.Consent{
		ConsentID: "c-1", InstitutionCode: "260", Status: klavi.ConsentAuthorised,
		EventTime:  time.Date(2026, 3, 2, 13, 0, 0, 123e6, time.UTC),
		UpdatedAt:  time.Date(2026, 3, 2, 13, 0, 1, 0, time.UTC),
		RequestID:  "r-1",
		LeaseUntil: time.Date(2026, 3, 2, 13, 1, 0, 0, time.UTC),
	}
	bare := linkstore.Consent{ConsentID: "c-2", Status: klavi.ConsentStarted}
	earlier := linkstore.Consent{ConsentID: "c-1", InstitutionCode: "260", Status: klavi.ConsentAwaitingAuthorisation,
		EventTime: full.EventTime.Add(-time.Minute), UpdatedAt: full.UpdatedAt.Add(-time.Minute)}
	tests := []struct {
		name          string
		old, new      *linkstore.Consent
		wantEventName string
		wantKeySK     string
	}{
		{"insert", nil, &full, "INSERT", "CONSENT#c-1"},
		{"insert without optional attributes", nil, &bare, "INSERT", "CONSENT#c-2"},
		{"modify", &earlier, &full, "MODIFY", "CONSENT#c-1"},
		{"remove", &full, nil, "REMOVE", "CONSENT#c-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := linkstoretest.StreamRecord("l-1", tc.old, tc.new, "000042")
			if rec.EventName != tc.wantEventName {
				t.Errorf("EventName = %q, want %q", rec.EventName, tc.wantEventName)
			}
			if got := rec.Change.SequenceNumber; got != "000042" {
				t.Errorf("SequenceNumber = %q, want 000042", got)
			}
			if got := rec.Change.StreamViewType; got != "NEW_AND_OLD_IMAGES" {
				t.Errorf("StreamViewType = %q, want NEW_AND_OLD_IMAGES", got)
			}
			if got := rec.Change.Keys["pk"].String(); got != "LINK#l-1" {
				t.Errorf("key pk = %q, want LINK#l-1", got)
			}
			if got := rec.Change.Keys["sk"].String(); got != tc.wantKeySK {
				t.Errorf("key sk = %q, want %q", got, tc.wantKeySK)
			}
			for _, side := range []struct {
				name string
				img  map[string]events.DynamoDBAttributeValue
				want *linkstore.Consent
			}{{"new", rec.Change.NewImage, tc.new}, {"old", rec.Change.OldImage, tc.old}} {
				linkID, c, ok := linkstore.ConsentFromStreamImage(side.img)
				if side.want == nil {
					if ok || len(side.img) != 0 {
						t.Errorf("%s image = %v, want none", side.name, side.img)
					}
					continue
				}
				if !ok || linkID != "l-1" {
					t.Fatalf("ConsentFromStreamImage(%s image) = %q, ok %v; want l-1, ok true", side.name, linkID, ok)
				}
				if diff := cmp.Diff(*side.want, c); diff != "" {
					t.Errorf("%s image round trip mismatch (-want +got):\n%s", side.name, diff)
				}
			}
		})
	}
}

func TestStreamRecordNothingWritten(t *testing.T) {
	rec := linkstoretest.StreamRecord("l-1", nil, nil, "7")
	if rec.EventName != "" || rec.Change.NewImage != nil || rec.Change.OldImage != nil || rec.Change.Keys != nil {
		t.Errorf("StreamRecord(nil, nil) = %+v, want a record without event name, keys or images", rec)
	}
}
