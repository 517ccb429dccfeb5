package klavievent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Tax ids from Klavi's sandbox examples. They appear in test bodies so the
// tests can assert that no error repeats them.
const (
	testCPF  = "25872252137"
	testCNPJ = "11222333000181"
)

// linkCreatedExample is the link_created example of Klavi's docs.
const linkCreatedExample = `[{
  "partnerAppId": "12345678",
  "eventId": "1495468585434-0e73d1719173766fe4dfe1a8",
  "eventType": "api",
  "eventName": "link_created",
  "eventTime": "2022-06-25T20:08:17.848Z",
  "payload": { "personalTaxId": "25872252137", "businessTaxId": "", "linkId": "4437b139-8a16-11ee-b636-487b6bad036a" },
  "externalInfo": { "myTraceId": "yourTraceId-1", "myUUID": "yourUUID-1" }
}]`

func TestParse(t *testing.T) {
	exampleTime := time.Date(2022, 6, 25, 20, 8, 17, 848_000_000, time.UTC)
	example := Event{
		PartnerAppID: "12345678",
		EventID:      "1495468585434-0e73d1719173766fe4dfe1a8",
		EventType:    "api",
		EventName:    "link_created",
		EventTime:    exampleTime,
		RawEventTime: "2022-06-25T20:08:17.848Z",
		Payload:      json.RawMessage(`{ "personalTaxId": "25872252137", "businessTaxId": "", "linkId": "4437b139-8a16-11ee-b636-487b6bad036a" }`),
		ExternalInfo: json.RawMessage(`{ "myTraceId": "yourTraceId-1", "myUUID": "yourUUID-1" }`),
	}
	tests := []struct {
		name    string
		body    string
		want    []Event
		wantErr error
	}{
		{
			name: "docs link_created array",
			body: linkCreatedExample,
			want: []Event{example},
		},
		{
			name: "single object",
			body: `{"eventId":"e1","eventType":"api","eventName":"consent_authorised","eventTime":"2022-06-25T20:08:17Z","payload":{"linkId":"l1"}}`,
			want: []Event{{
				EventID: "e1", EventType: "api", EventName: "consent_authorised",
				EventTime:    time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC),
				RawEventTime: "2022-06-25T20:08:17Z",
				Payload:      json.RawMessage(`{"linkId":"l1"}`),
			}},
		},
		{
			name: "whitespace before array",
			body: " \r\n\t [{\"eventId\":\"e1\"}] \n",
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "byte order mark",
			body: "\xef\xbb\xbf{\"eventId\":\"e1\"}",
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "several events keep order",
			body: `[{"eventId":"e1"},{"eventId":"e2"},{"eventId":"e3"}]`,
			want: []Event{{EventID: "e1"}, {EventID: "e2"}, {EventID: "e3"}},
		},
		{
			name: "eventID casing",
			body: `{"eventID":"e1"}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "eventid lower case",
			body: `{"eventid":"e1"}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "eventId and eventID agree",
			body: `{"eventId":"e1","eventID":"e1"}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "empty eventId spelling ignored",
			body: `{"eventId":"","eventID":"e1"}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "numeric eventId keeps its digits",
			body: `{"eventId":123456789012345678901234567890}`,
			want: []Event{{EventID: "123456789012345678901234567890"}},
		},
		{
			name: "eventId trimmed",
			body: `{"eventId":"  e1 "}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "eventName lower-cased and trimmed",
			body: `{"eventId":"e1","eventName":"  Consent_AUTHORISED "}`,
			want: []Event{{EventID: "e1", EventName: "consent_authorised"}},
		},
		{
			name: "unknown fields and null payload ignored",
			body: `{"eventId":"e1","somethingNew":{"a":[1,2]},"payload":null,"externalInfo":null}`,
			want: []Event{{EventID: "e1"}},
		},
		{
			name: "non-string envelope fields read leniently",
			body: `{"eventId":"e1","eventName":7,"eventType":{"x":1},"partnerAppId":12345678,"eventTime":true}`,
			want: []Event{{EventID: "e1", EventName: "7", PartnerAppID: "12345678"}},
		},
		{
			name:    "eventId and eventID differ",
			body:    `{"eventId":"e1","eventID":"e2","payload":{"personalTaxId":"` + testCPF + `"}}`,
			wantErr: ErrMalformed,
		},
		{
			name:    "duplicate eventId keys differ",
			body:    `{"eventId":"e1","eventId":"e2"}`,
			wantErr: ErrMalformed,
		},
		{
			name:    "eventId is an object",
			body:    `{"eventId":{"id":"` + testCPF + `"}}`,
			wantErr: ErrMalformed,
		},
		{
			name:    "empty body",
			body:    ``,
			wantErr: ErrEmpty,
		},
		{
			name:    "whitespace body",
			body:    " \n\t",
			wantErr: ErrEmpty,
		},
		{
			name:    "empty array",
			body:    ` [ ] `,
			wantErr: ErrEmpty,
		},
		{
			name:    "null",
			body:    `null`,
			wantErr: ErrMalformed,
		},
		{
			name:    "string",
			body:    `"` + testCPF + `"`,
			wantErr: ErrMalformed,
		},
		{
			name:    "number",
			body:    `42`,
			wantErr: ErrMalformed,
		},
		{
			name:    "array of strings",
			body:    `["` + testCPF + `"]`,
			wantErr: ErrMalformed,
		},
		{
			name:    "array with null element",
			body:    `[{"eventId":"e1"},null]`,
			wantErr: ErrMalformed,
		},
		{
			name:    "nested array element",
			body:    `[[{"eventId":"e1"}]]`,
			wantErr: ErrMalformed,
		},
		{
			name:    "invalid JSON",
			body:    `{"eventId":"e1","payload":{"personalTaxId":"` + testCPF + `"`,
			wantErr: ErrMalformed,
		},
		{
			name:    "trailing data",
			body:    `{"eventId":"e1"} {"eventId":"e2"}`,
			wantErr: ErrMalformed,
		},
		{
			name:    "too many events",
			body:    eventsBody(MaxEvents + 1),
			wantErr: ErrTooManyEvents,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.body))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Parse() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				assertNoTaxID(t, err)
				if got != nil {
					t.Errorf("Parse() = %v with error, want nil", got)
				}
				return
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("Parse() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseMaxEvents(t *testing.T) {
	got, err := Parse([]byte(eventsBody(MaxEvents)))
	if err != nil {
		t.Fatalf("Parse(%d events) error = %v, want nil", MaxEvents, err)
	}
	if len(got) != MaxEvents {
		t.Errorf("Parse(%d events) returned %d events, want %d", MaxEvents, len(got), MaxEvents)
	}
}

func TestParseEventTime(t *testing.T) {
	tests := []struct {
		raw  string
		want time.Time
	}{
		{"2022-06-25T20:08:17.848Z", time.Date(2022, 6, 25, 20, 8, 17, 848_000_000, time.UTC)},
		{"2022-06-25T20:08:17Z", time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC)},
		{"2019-12-23T06:10:43", time.Date(2019, 12, 23, 6, 10, 43, 0, time.UTC)},
		{"2019-12-23T06:10:43.5", time.Date(2019, 12, 23, 6, 10, 43, 500_000_000, time.UTC)},
		{"2022-06-25T23:08:17.848+03:00", time.Date(2022, 6, 25, 20, 8, 17, 848_000_000, time.UTC)},
		{"2022-06-25T17:08:17-03:00", time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC)},
		{"2022-06-25T17:08:17-0300", time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC)},
		{"2022-06-25 20:08:17", time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC)},
		{" 2022-06-25T20:08:17Z ", time.Date(2022, 6, 25, 20, 8, 17, 0, time.UTC)},
		{"", time.Time{}},
		{"yesterday", time.Time{}},
		{"2022-13-25T20:08:17Z", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			body := fmt.Sprintf(`{"eventId":"e1","eventTime":%q}`, tc.raw)
			events, err := Parse([]byte(body))
			if err != nil {
				t.Fatalf("Parse() error = %v, want nil", err)
			}
			got := events[0].EventTime
			if !got.Equal(tc.want) {
				t.Errorf("EventTime = %v, want %v", got, tc.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("EventTime location = %v, want UTC", got.Location())
			}
			if want := strings.TrimSpace(tc.raw); events[0].RawEventTime != want {
				t.Errorf("RawEventTime = %q, want %q", events[0].RawEventTime, want)
			}
		})
	}
}

func TestParseMissingEventTime(t *testing.T) {
	events, err := Parse([]byte(`{"eventId":"e1"}`))
	if err != nil {
		t.Fatalf("Parse() error = %v, want nil", err)
	}
	if !events[0].EventTime.IsZero() {
		t.Errorf("EventTime = %v, want zero", events[0].EventTime)
	}
}

// TestParseDoesNotAliasBody guards against a caller reusing its buffer
// (a pooled request body) and silently changing parsed payloads.
func TestParseDoesNotAliasBody(t *testing.T) {
	body := []byte(`{"eventId":"e1","payload":{"linkId":"l1"}}`)
	events, err := Parse(body)
	if err != nil {
		t.Fatalf("Parse() error = %v, want nil", err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if got, want := string(events[0].Payload), `{"linkId":"l1"}`; got != want {
		t.Errorf("Payload after overwriting body = %s, want %s", got, want)
	}
}

// eventsBody returns an array body of n minimal events.
func eventsBody(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"eventId":"e%d","payload":{"personalTaxId":%q}}`, i, testCPF)
	}
	b.WriteByte(']')
	return b.String()
}

// assertNoTaxID fails when err's message repeats a tax id from a test body.
func assertNoTaxID(t *testing.T, err error) {
	t.Helper()
	for _, id := range []string{testCPF, testCNPJ} {
		if strings.Contains(err.Error(), id) {
			t.Errorf("error %q contains a tax id from the body", err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(consentArrayBody)
	b.ReportAllocs()
	for b.Loop() {
		events, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := events[0].Changes(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseDerivesMissingEventID(t *testing.T) {
	bodies := []string{
		`{"eventName":"link_created","payload":{"personalTaxId":"` + testCPF + `"}}`,
		`{"eventId":null,"eventName":"x"}`,
		`{"eventId":"   ","eventName":"y"}`,
		`{}`,
	}
	seen := map[string]bool{}
	for _, body := range bodies {
		evs, err := Parse([]byte(body))
		if err != nil || len(evs) != 1 {
			t.Fatalf("Parse(%q) = %v, %v; want one event", body, evs, err)
		}
		id := evs[0].EventID
		if !strings.HasPrefix(id, DerivedIDPrefix) || len(id) != len(DerivedIDPrefix)+32 {
			t.Errorf("derived id = %q, want %s and 32 hex digits", id, DerivedIDPrefix)
		}
		if strings.Contains(id, testCPF) {
			t.Errorf("derived id carries the tax id")
		}
		if seen[id] {
			t.Errorf("two different events got the same derived id %q", id)
		}
		seen[id] = true
		again, _ := Parse([]byte(body))
		if again[0].EventID != id {
			t.Errorf("the same bytes got ids %q and %q; a redelivery must be a duplicate", id, again[0].EventID)
		}
	}
	// In an array, the event with an id keeps it.
	evs, err := Parse([]byte(`[{"eventId":"e1"},{"eventName":"consent_revoked"}]`))
	if err != nil || len(evs) != 2 || evs[0].EventID != "e1" || !strings.HasPrefix(evs[1].EventID, DerivedIDPrefix) {
		t.Errorf("array with one id-less event = %v, %v", evs, err)
	}
}

// The signature check accepts a signature over the compact form, so added
// whitespace keeps a captured delivery valid: each variant of an event
// without eventId must get the same id, and be a duplicate.
func TestParseDerivedIDIgnoresWhitespace(t *testing.T) {
	compact := `{"eventName":"consent_authorised","payload":{"linkId":"l1","consentId":"c1","note":"a b"}}`
	variants := []string{
		compact,
		`{ "eventName": "consent_authorised", "payload": {"linkId":"l1", "consentId":"c1","note":"a b"} }`,
		"{\n\t\"eventName\":\"consent_authorised\",\r\n\"payload\":{\"linkId\":\"l1\",\"consentId\":\"c1\",\"note\":\"a b\"}}\n",
		`[` + compact + `]`,
		"[ \n" + compact + " ]",
	}
	want := ""
	for _, body := range variants {
		evs, err := Parse([]byte(body))
		if err != nil || len(evs) != 1 {
			t.Fatalf("Parse(%q) = %v, %v; want one event", body, evs, err)
		}
		if want == "" {
			want = evs[0].EventID
		}
		if evs[0].EventID != want {
			t.Errorf("Parse(%q) id = %q, want %q (the id of its compact form)", body, evs[0].EventID, want)
		}
	}
	// Whitespace inside a string is content: another event.
	evs, err := Parse([]byte(strings.Replace(compact, "a b", "a  b", 1)))
	if err != nil || evs[0].EventID == want {
		t.Errorf("an event differing inside a string got the same id (%v)", err)
	}
}

func TestOrderTime(t *testing.T) {
	arrival := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const skew = 5 * time.Minute
	tests := []struct {
		name      string
		eventTime time.Time
		want      time.Time
	}{
		{"past", arrival.Add(-time.Hour), arrival.Add(-time.Hour)},
		{"within the skew", arrival.Add(4 * time.Minute), arrival.Add(4 * time.Minute)},
		{"far future", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), arrival.Add(skew)},
		{"missing", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := Event{EventTime: tc.eventTime, RawEventTime: "as sent"}
			if got := e.OrderTime(arrival, skew); !got.Equal(tc.want) {
				t.Errorf("OrderTime = %v, want %v", got, tc.want)
			}
			if !e.EventTime.Equal(tc.eventTime) {
				t.Errorf("OrderTime changed the event's own time")
			}
		})
	}
}
