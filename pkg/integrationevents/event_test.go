package integrationevents

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

const (
	fixtureLink    = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureConsent = "9b1f6c2e-8a16-11ee-a1c3-0242ac120002"
	fixtureRequest = "5f0c9a7e-3d21-4b8e-9f6a-1c2b3d4e5f60"
	fixtureReport  = "c0ffee00-1d2e-4f3a-8b9c-0a1b2c3d4e5f"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestMapFixture(t *testing.T) {
	ev := loadFixture(t)
	var got []any
	ids := map[string]bool{}
	for _, rec := range ev.Records {
		e, ok := Map(rec, "reports-bucket")
		if !ok {
			continue
		}
		if !uuidShape.MatchString(e.EventID) {
			t.Errorf("eventId %q is not a version 8 UUID", e.EventID)
		}
		if ids[e.EventID] {
			t.Errorf("eventId %s given to two changes", e.EventID)
		}
		ids[e.EventID] = true
		if e.LinkID != fixtureLink {
			t.Errorf("%s: linkId %q, want %q", e.DetailType, e.LinkID, fixtureLink)
		}
		got = append(got, e.Detail)
	}
	common := func(typ string, at string, parts ...string) Common {
		return Common{EventID: eventID(append([]string{typ, fixtureLink}, parts...)...), OccurredAt: at, LinkID: fixtureLink}
	}
	want := []any{
		&ConsentStatusChanged{
			Common:    common(TypeConsentStatusChanged, "2026-11-24T12:01:02.100Z", fixtureConsent, "AWAITING_AUTHORISATION", "2026-11-24T12:01:02.1Z"),
			ConsentID: fixtureConsent, InstitutionCode: "260", Status: "AWAITING_AUTHORISATION",
		},
		&ConsentStatusChanged{
			Common:    common(TypeConsentStatusChanged, "2026-11-24T12:01:58.412Z", fixtureConsent, "AUTHORISED", "2026-11-24T12:01:58.412Z"),
			ConsentID: fixtureConsent, InstitutionCode: "260", Status: "AUTHORISED", PreviousStatus: "AWAITING_AUTHORISATION",
		},
		&ReportRequested{
			Common:    common(TypeReportRequested, "2026-11-24T12:02:01.874Z", fixtureRequest),
			ConsentID: fixtureConsent, RequestID: fixtureRequest, Products: []string{"checking_account", "credit_card"},
		},
		&ReportStored{
			Common:          common(TypeReportStored, "2026-11-24T12:03:15.402Z", fixtureReport),
			ProductReportID: fixtureReport, ProductName: "checking_account", RequestID: fixtureRequest, Code: 200, Bytes: 48213,
			SHA256: "9f2c6a1d0b8e7f5a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918a7b6c5d",
			Bucket: "reports-bucket", Key: "reports/" + fixtureLink + "/" + fixtureReport + ".json",
		},
		&ConsentStatusChanged{
			Common:    common(TypeConsentStatusChanged, "2026-11-24T13:09:58.000Z", fixtureConsent, "DELETED_BY_USER", "2026-11-24T13:09:58Z"),
			ConsentID: fixtureConsent, InstitutionCode: "260", Status: "DELETED_BY_USER", PreviousStatus: "AUTHORISED",
		},
		&LinkDataPurged{
			Common: common(TypeLinkDataPurged, "2026-11-24T13:10:01.906Z", "2026-11-24T13:10:01.906Z"),
			Reason: linkstore.PurgeConsentDeletedByUser,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events of the fixture (-want +got):\n%s", diff)
	}
}

func TestMapDetailJSON(t *testing.T) {
	ev := loadFixture(t)
	var keys [][]string
	for _, rec := range ev.Records {
		e, ok := Map(rec, "reports-bucket")
		if !ok {
			continue
		}
		e.SetExternalInfo(json.RawMessage(`{"customerId":"cus_8841"}`))
		raw, err := json.Marshal(e.Detail)
		if err != nil {
			t.Fatalf("encode %s: %v", e.DetailType, err)
		}
		checkNoPersonalData(t, string(raw), fixtureTaxID, "user-7f3a", "https://app.example.com/done")
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("decode %s: %v", e.DetailType, err)
		}
		if _, err := time.Parse(time.RFC3339, m["occurredAt"].(string)); err != nil {
			t.Errorf("%s occurredAt %v is not RFC 3339: %v", e.DetailType, m["occurredAt"], err)
		}
		var k []string
		for name := range m {
			k = append(k, name)
		}
		keys = append(keys, sorted(k))
	}
	base := []string{"eventId", "linkId", "occurredAt"}
	with := func(more ...string) []string { return sorted(append(append([]string{}, base...), more...)) }
	want := [][]string{
		with("consentId", "institutionCode", "status", "externalInfo"),
		with("consentId", "institutionCode", "status", "previousStatus", "externalInfo"),
		with("consentId", "requestId", "products"),
		with("productReportId", "productName", "requestId", "code", "bytes", "sha256", "bucket", "key", "externalInfo"),
		with("consentId", "institutionCode", "status", "previousStatus", "externalInfo"),
		with("reason"),
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("detail fields (-want +got):\n%s", diff)
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func consentRecord(t *testing.T, old, new *linkstore.Consent, seq string) events.DynamoDBEventRecord {
	t.Helper()
	return linkstoretest.StreamRecord("link-1", old, new, seq)
}

func TestMapConsentChanges(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	c := func(status klavi.ConsentStatus, eventTime time.Time, mod ...func(*linkstore.Consent)) *linkstore.Consent {
		x := &linkstore.Consent{ConsentID: "c-1", InstitutionCode: "001", Status: status, EventTime: eventTime, UpdatedAt: eventTime.Add(time.Second)}
		for _, m := range mod {
			m(x)
		}
		return x
	}
	tests := []struct {
		name     string
		old, new *linkstore.Consent
		want     bool
		previous string
	}{
		{"new consent", nil, c("STARTED", at), true, ""},
		{"status moves on", c("STARTED", at), c("AUTHORISED", at.Add(time.Minute)), true, "STARTED"},
		{"lease taken", c("AUTHORISED", at), c("AUTHORISED", at, func(x *linkstore.Consent) { x.LeaseUntil = at.Add(time.Minute) }), false, ""},
		{"request id set", c("AUTHORISED", at), c("AUTHORISED", at, func(x *linkstore.Consent) { x.RequestID = "r-1" }), false, ""},
		{"later event, same status", c("AUTHORISED", at), c("AUTHORISED", at.Add(time.Hour)), false, ""},
		{"removed by a purge", c("DELETED_BY_USER", at), nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := Map(consentRecord(t, tc.old, tc.new, "100"), "b")
			if ok != tc.want {
				t.Fatalf("Map ok = %v, want %v (event %+v)", ok, tc.want, e)
			}
			if !ok {
				return
			}
			d := e.Detail.(*ConsentStatusChanged)
			if d.PreviousStatus != tc.previous || d.Status != string(tc.new.Status) {
				t.Errorf("status %q previous %q, want %q previous %q", d.Status, d.PreviousStatus, tc.new.Status, tc.previous)
			}
		})
	}
}

func TestEventIDFollowsTheChange(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	old := &linkstore.Consent{ConsentID: "c-1", Status: "STARTED", EventTime: at}
	authorised := &linkstore.Consent{ConsentID: "c-1", Status: "AUTHORISED", EventTime: at.Add(time.Minute), UpdatedAt: at.Add(time.Minute)}
	first, _ := Map(consentRecord(t, old, authorised, "100"), "b")
	// The same change in another record (a retry, another shard iterator,
	// a local run): another sequence number, another creation time.
	again := consentRecord(t, old, authorised, "999")
	again.EventID = "other"
	again.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.Add(time.Hour)}
	second, _ := Map(again, "b")
	if first.EventID != second.EventID {
		t.Errorf("eventId of the same change: %s then %s", first.EventID, second.EventID)
	}
	later := *authorised
	later.Status, later.EventTime = "REVOKED", at.Add(2*time.Minute)
	third, _ := Map(consentRecord(t, authorised, &later, "101"), "b")
	if third.EventID == first.EventID {
		t.Errorf("two changes share eventId %s", first.EventID)
	}
	// Same status again after a revoke is a new change: its event time differs.
	reauth := *authorised
	reauth.EventTime = at.Add(3 * time.Minute)
	fourth, _ := Map(consentRecord(t, &later, &reauth, "102"), "b")
	if fourth.EventID == first.EventID {
		t.Errorf("a second authorisation reuses the first one's eventId %s", first.EventID)
	}
}

func linkRecord(op string, old, new map[string]events.DynamoDBAttributeValue) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventName: op, Change: events.DynamoDBStreamRecord{
		SequenceNumber: "1", NewImage: new, OldImage: old, StreamViewType: "NEW_AND_OLD_IMAGES",
	}}
}

func linkImage(attrs ...string) map[string]events.DynamoDBAttributeValue {
	img := map[string]events.DynamoDBAttributeValue{
		"pk": events.NewStringAttribute("LINK#link-1"), "sk": events.NewStringAttribute("#LINK"),
		"type": events.NewStringAttribute("link"), "linkId": events.NewStringAttribute("link-1"),
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		img[attrs[i]] = events.NewStringAttribute(attrs[i+1])
	}
	return img
}

func TestMapPurge(t *testing.T) {
	live := linkImage("taxId", fixtureTaxID, "externalInfo", `{"a":1}`)
	tests := []struct {
		name       string
		rec        events.DynamoDBEventRecord
		wantReason string // "" for no event
	}{
		{"purged on the user's deletion", linkRecord("MODIFY", live, linkImage("purgedAt", "2026-11-24T13:10:01.906Z")), linkstore.PurgeConsentDeletedByUser},
		{"purged at the fintech's request", linkRecord("MODIFY", live, linkImage("purgedAt", "2026-11-24T13:10:01.906Z", "purgeReason", "deleted_by_request")), linkstore.PurgeDeletedByRequest},
		{"purge finished again", linkRecord("MODIFY", linkImage("purgedAt", "2026-11-24T13:10:01.906Z"), linkImage("purgedAt", "2026-11-24T13:10:01.906Z")), ""},
		{"link touched", linkRecord("MODIFY", live, linkImage("taxId", fixtureTaxID, "updatedAt", "2026-11-24T13:10:01.906Z")), ""},
		{"link created", linkRecord("INSERT", nil, live), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := Map(tc.rec, "b")
			if ok != (tc.wantReason != "") {
				t.Fatalf("Map ok = %v, want an event: %v", ok, tc.wantReason != "")
			}
			if !ok {
				return
			}
			if got := e.Detail.(*LinkDataPurged).Reason; got != tc.wantReason {
				t.Errorf("reason %q, want %q", got, tc.wantReason)
			}
		})
	}
}

func TestMapIgnoresRepeatsOfParts(t *testing.T) {
	ev := loadFixture(t)
	for _, rec := range ev.Records {
		typ := rec.Change.NewImage["type"]
		if rec.EventName != "INSERT" || (typ.String() != "request" && typ.String() != "report") {
			continue
		}
		// A MODIFY of a request or report item is no new request or report.
		rec.EventName = "MODIFY"
		rec.Change.OldImage = rec.Change.NewImage
		if e, ok := Map(rec, "b"); ok {
			t.Errorf("MODIFY of a %s item gave %s", typ.String(), e.DetailType)
		}
	}
}
