package linkstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
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
	wantConsent := linkstore.Consent{
		ConsentID: "c-1", InstitutionCode: "260", Status: klavi.ConsentAuthorised,
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
			if got := linkstore.IsConsentItem(tc.img); got != tc.isConsent {
				t.Errorf("IsConsentItem = %v, want %v", got, tc.isConsent)
			}
			linkID, c, ok := linkstore.ConsentFromStreamImage(tc.img)
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

// TestStreamRecordMatchesDynamoItems makes the same writes to a
// linkstoretest.MemoryStore that reports its consent changes and to a
// DynamoStore, and checks that every change, encoded by
// linkstoretest.StreamRecord with ConsentStreamImage, carries exactly the
// consent item DynamoDB holds after that write.
func TestStreamRecordMatchesDynamoItems(t *testing.T) {
	client, table := newTable(t)
	dyn := linkstore.NewDynamo(client, table, testOptions()...)
	var changes []events.DynamoDBEventRecord
	mem := linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(func(linkID string, old, new *linkstore.Consent) {
		changes = append(changes, linkstoretest.StreamRecord(linkID, old, new, fmt.Sprint(len(changes)+1)))
	}))...)

	ctx := t.Context()
	steps := []struct {
		name  string
		write func(s Store) error
	}{
		{"create", func(s Store) error { return s.CreateLink(ctx, fullLink("L")) }},
		{"awaiting", func(s Store) error {
			_, err := s.ApplyEvent(ctx, consentEvent("e1", "L", "C", klavi.ConsentAwaitingAuthorisation, t0))
			return err
		}},
		{"authorised", func(s Store) error {
			_, err := s.ApplyEvent(ctx, consentEvent("e2", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)))
			return err
		}},
		{"claim", func(s Store) error { return s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0.Add(2*time.Minute)) }},
		{"request", func(s Store) error {
			return s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{RequestID: "R", ConsentID: "C", Trigger: linkstore.TriggerStream})
		}},
	}
	for _, st := range steps {
		before := len(changes)
		if err := st.write(mem); err != nil {
			t.Fatalf("%s on memory: %v", st.name, err)
		}
		if err := st.write(dyn); err != nil {
			t.Fatalf("%s on dynamo: %v", st.name, err)
		}
		if st.name == "create" {
			if len(changes) != before {
				t.Fatalf("%s: %d consent changes, want none", st.name, len(changes)-before)
			}
			continue
		}
		if len(changes) != before+1 {
			t.Fatalf("%s: %d consent changes, want 1", st.name, len(changes)-before)
		}
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: consentItemKey("L", "C"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("%s: get consent item: %v", st.name, err)
		}
		if diff := cmp.Diff(imageText(streamImage(t, out.Item)), imageText(changes[before].Change.NewImage)); diff != "" {
			t.Errorf("%s: stream image mismatch (-dynamo item +StreamRecord):\n%s", st.name, diff)
		}
	}
}

// imageText spells out a stream image of string, number and list attributes
// for comparison: "S:value", "N:value" or "L:[...]" per attribute.
func imageText(img map[string]events.DynamoDBAttributeValue) map[string]string {
	out := map[string]string{}
	for name, v := range img {
		switch v.DataType() {
		case events.DataTypeString:
			out[name] = "S:" + v.String()
		case events.DataTypeNumber:
			out[name] = "N:" + v.Number()
		case events.DataTypeList:
			out[name] = listText(v)
		default:
			out[name] = fmt.Sprintf("type %d", v.DataType())
		}
	}
	return out
}
