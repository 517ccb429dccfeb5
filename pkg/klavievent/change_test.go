package klavievent

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// consentArrayBody is a consent_authorised delivery for a link with two
// consents (two banks).
const consentArrayBody = `[{
  "partnerAppId": "12345678",
  "eventID": "1495468585434-0e73d1719173766fe4dfe1a9",
  "eventType": "api",
  "eventName": "consent_authorised",
  "eventTime": "2022-06-25T20:08:17.848Z",
  "payload": {
    "personalTaxId": "25872252137", "businessTaxId": "", "linkId": "link-1",
    "consents": [
      { "consentId": "c-1", "externalTrackId": "t-1", "institutionCode": "001", "permissionsGranted": ["ACCOUNTS_ALL"] },
      { "consentId": "c-2", "externalTrackId": "t-2", "institutionCode": "260", "linkId": "link-2" }
    ]
  },
  "externalInfo": { "myTraceId": "yourTraceId-1" }
}]`

// envelope builds a one-event body with the given name and payload JSON.
func envelope(name, payload string) string {
	return fmt.Sprintf(`{"eventId":"e1","eventType":"api","eventName":%q,"eventTime":"2022-06-25T20:08:17.848Z","payload":%s,"externalInfo":{"k":"v"}}`, name, payload)
}

func TestChanges(t *testing.T) {
	when := time.Date(2022, 6, 25, 20, 8, 17, 848_000_000, time.UTC)
	info := json.RawMessage(`{"k":"v"}`)
	// base returns the envelope fields every Change of envelope() carries.
	base := func(kind Kind, name string) Change {
		return Change{Kind: kind, EventID: "e1", EventName: name, EventTime: when, ExternalInfo: info}
	}
	with := func(c Change, f func(*Change)) Change {
		f(&c)
		return c
	}
	nested := `{"personalTaxId":"` + testCPF + `","businessTaxId":"","linkId":"l1",
		"consents":{"consentId":"c1","externalTrackId":"t1","institutionCode":"001"}}`
	consent := func(name string, status klavi.ConsentStatus) Change {
		return with(base(KindConsent, name), func(c *Change) {
			c.LinkID, c.ConsentID, c.ExternalTrackID, c.InstitutionCode = "l1", "c1", "t1", "001"
			c.PersonalTaxID, c.ConsentStatus = testCPF, status
		})
	}

	tests := []struct {
		name    string
		body    string
		want    []Change
		wantErr error
	}{
		{
			name: "docs link_created example",
			body: linkCreatedExample,
			want: []Change{{
				Kind: KindLinkCreated, EventID: "1495468585434-0e73d1719173766fe4dfe1a8", EventName: "link_created",
				EventTime: when, LinkID: "4437b139-8a16-11ee-b636-487b6bad036a", PersonalTaxID: testCPF,
				ExternalInfo: json.RawMessage(`{ "myTraceId": "yourTraceId-1", "myUUID": "yourUUID-1" }`),
			}},
		},
		{
			name: "link_created business",
			body: envelope("link_created", `{"personalTaxId":"","businessTaxId":"`+testCNPJ+`","linkId":"l1"}`),
			want: []Change{with(base(KindLinkCreated, "link_created"), func(c *Change) {
				c.LinkID, c.BusinessTaxID = "l1", testCNPJ
			})},
		},
		{name: "consent_authorised nested object", body: envelope("consent_authorised", nested), want: []Change{consent("consent_authorised", "AUTHORISED")}},
		{name: "consent_error", body: envelope("consent_error", nested), want: []Change{consent("consent_error", "ERROR")}},
		{name: "consent_rejected", body: envelope("consent_rejected", nested), want: []Change{consent("consent_rejected", "REJECTED")}},
		{name: "consent_expired", body: envelope("consent_expired", nested), want: []Change{consent("consent_expired", "EXPIRED")}},
		{name: "consent_revoked", body: envelope("consent_revoked", nested), want: []Change{consent("consent_revoked", "REVOKED")}},
		{name: "consent_deleted_by_user", body: envelope("consent_deleted_by_user", nested), want: []Change{consent("consent_deleted_by_user", "DELETED_BY_USER")}},
		{
			name: "event name casing",
			body: envelope("CONSENT_Authorised", nested),
			want: []Change{consent("consent_authorised", "AUTHORISED")},
		},
		{
			name: "flat consent",
			body: envelope("consent_authorised", `{"personalTaxId":"`+testCPF+`","linkId":"l1","consentId":"c1","externalTrackId":"t1","institutionCode":"001"}`),
			want: []Change{consent("consent_authorised", "AUTHORISED")},
		},
		{
			name: "consents array one change per consent",
			body: consentArrayBody,
			want: []Change{
				{
					Kind: KindConsent, EventID: "1495468585434-0e73d1719173766fe4dfe1a9", EventName: "consent_authorised",
					EventTime: when, LinkID: "link-1", ConsentID: "c-1", ExternalTrackID: "t-1", InstitutionCode: "001",
					ConsentStatus: "AUTHORISED", PersonalTaxID: testCPF,
					ExternalInfo: json.RawMessage(`{ "myTraceId": "yourTraceId-1" }`),
				},
				{
					Kind: KindConsent, EventID: "1495468585434-0e73d1719173766fe4dfe1a9", EventName: "consent_authorised",
					EventTime: when, LinkID: "link-2", ConsentID: "c-2", ExternalTrackID: "t-2", InstitutionCode: "260",
					ConsentStatus: "AUTHORISED", PersonalTaxID: testCPF,
					ExternalInfo: json.RawMessage(`{ "myTraceId": "yourTraceId-1" }`),
				},
			},
		},
		{
			name: "single-element array falls back to flat consent fields",
			body: envelope("consent_revoked", `{"linkId":"l1","personalTaxId":"`+testCPF+`","consentId":"c1","institutionCode":"001","consents":[null,{"externalTrackId":"t1"}]}`),
			want: []Change{consent("consent_revoked", "REVOKED")},
		},
		{
			name: "several consents do not share the flat consentId",
			body: envelope("consent_expired", `{"linkId":"l1","consentId":"flat","consents":[{"consentId":"c1"},{"institutionCode":"260"}]}`),
			want: []Change{
				with(base(KindConsent, "consent_expired"), func(c *Change) {
					c.LinkID, c.ConsentID, c.ConsentStatus = "l1", "c1", "EXPIRED"
				}),
				with(base(KindConsent, "consent_expired"), func(c *Change) {
					c.LinkID, c.InstitutionCode, c.ConsentStatus = "l1", "260", "EXPIRED"
				}),
			},
		},
		{
			name: "tax ids from consent element",
			body: envelope("consent_authorised", `{"linkId":"l1","consents":[{"consentId":"c1","businessTaxId":"`+testCNPJ+`"}]}`),
			want: []Change{with(base(KindConsent, "consent_authorised"), func(c *Change) {
				c.LinkID, c.ConsentID, c.BusinessTaxID, c.ConsentStatus = "l1", "c1", testCNPJ, "AUTHORISED"
			})},
		},
		{
			name: "empty consents array uses flat fields",
			body: envelope("consent_rejected", `{"linkId":"l1","consentId":"c1","consents":[]}`),
			want: []Change{with(base(KindConsent, "consent_rejected"), func(c *Change) {
				c.LinkID, c.ConsentID, c.ConsentStatus = "l1", "c1", "REJECTED"
			})},
		},
		{
			name: "consent event without ids still returned",
			body: envelope("consent_error", `{"errorCode":"X"}`),
			want: []Change{with(base(KindConsent, "consent_error"), func(c *Change) { c.ConsentStatus = "ERROR" })},
		},
		{
			name: "consent event with null payload",
			body: envelope("consent_error", `null`),
			want: []Change{with(base(KindConsent, "consent_error"), func(c *Change) { c.ConsentStatus = "ERROR" })},
		},
		{
			name: "numeric ids kept as literal",
			body: envelope("consent_authorised", `{"linkId":12345678901234567890,"consentId":1e3,"institutionCode":1}`),
			want: []Change{with(base(KindConsent, "consent_authorised"), func(c *Change) {
				c.LinkID, c.ConsentID, c.InstitutionCode, c.ConsentStatus = "12345678901234567890", "1e3", "1", "AUTHORISED"
			})},
		},
		{
			name:    "consent payload not an object",
			body:    envelope("consent_authorised", `["`+testCPF+`"]`),
			wantErr: ErrMalformed,
		},
		{
			name:    "consents element not an object",
			body:    envelope("consent_authorised", `{"consents":[{"consentId":"c1"},"`+testCPF+`"]}`),
			wantErr: ErrMalformed,
		},
		{
			name:    "consents a string",
			body:    envelope("consent_authorised", `{"consents":"`+testCNPJ+`"}`),
			wantErr: ErrMalformed,
		},
		{
			name:    "link_created payload not an object",
			body:    envelope("link_created", `"`+testCPF+`"`),
			wantErr: ErrMalformed,
		},
		{
			name: "link_action_status actionStatus",
			body: envelope("link_action_status", `{"actionStatus":"consent_authorised","personalTaxId":"`+testCPF+`","linkId":"l1","consents":{"consentId":"c1","externalTrackId":"t1","institutionCode":"001"}}`),
			want: []Change{consent("link_action_status", "AUTHORISED")},
		},
		{
			name: "link_action_status action_status upper case",
			body: envelope("link_action_status", `{"action_status":"CONSENT_REVOKED","linkId":"l1"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) {
				c.LinkID, c.ConsentStatus = "l1", "REVOKED"
			})},
		},
		{
			name: "link_action_status status name",
			body: envelope("link_action_status", `{"status":"expired","linkId":"l1","consentId":"c1"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) {
				c.LinkID, c.ConsentID, c.ConsentStatus = "l1", "c1", "EXPIRED"
			})},
		},
		{
			name: "link_action_status action",
			body: envelope("link_action_status", `{"action":"consent_deleted_by_user"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) { c.ConsentStatus = "DELETED_BY_USER" })},
		},
		{
			name: "link_action_status payload eventName",
			body: envelope("link_action_status", `{"eventName":"consent_error"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) { c.ConsentStatus = "ERROR" })},
		},
		{
			name: "link_action_status skips keys without a status value",
			body: envelope("link_action_status", `{"actionStatus":"done","status":"Consent_Rejected"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) { c.ConsentStatus = "REJECTED" })},
		},
		{
			name: "link_action_status earlier stage",
			body: envelope("link_action_status", `{"status":"awaiting_authorisation"}`),
			want: []Change{with(base(KindConsent, "link_action_status"), func(c *Change) { c.ConsentStatus = "AWAITING_AUTHORISATION" })},
		},
		{
			name: "link_action_status without status is unknown",
			body: envelope("link_action_status", `{"linkId":"l1","personalTaxId":"`+testCPF+`","result":"consent_authorised"}`),
			want: []Change{base(KindUnknown, "link_action_status")},
		},
		{
			name: "product_request_received productNames",
			body: envelope("product_request_received", `{"linkId":"l1","requestId":"r1","productNames":["pf_checking_account","",7,"pf_credit_card","pf_checking_account"]}`),
			want: []Change{
				with(base(KindProduct, "product_request_received"), func(c *Change) {
					c.LinkID, c.RequestID, c.ProductName = "l1", "r1", "pf_checking_account"
				}),
				with(base(KindProduct, "product_request_received"), func(c *Change) {
					c.LinkID, c.RequestID, c.ProductName = "l1", "r1", "7"
				}),
				with(base(KindProduct, "product_request_received"), func(c *Change) {
					c.LinkID, c.RequestID, c.ProductName = "l1", "r1", "pf_credit_card"
				}),
			},
		},
		{
			name: "product_generated_success productName",
			body: envelope("product_generated_success", `{"linkId":"l1","requestId":"r1","productName":"pf_checking_account","productNames":["x"],"personalTaxId":"`+testCPF+`","consentId":"c1","institutionCode":"001"}`),
			want: []Change{with(base(KindProduct, "product_generated_success"), func(c *Change) {
				c.LinkID, c.RequestID, c.ProductName, c.PersonalTaxID = "l1", "r1", "pf_checking_account", testCPF
				c.ConsentID, c.InstitutionCode = "c1", "001"
			})},
		},
		{
			name: "product_generated_failed lone productNames string",
			body: envelope("product_generated_failed", `{"linkId":"l1","productNames":"pf_credit_card","reason":"timeout"}`),
			want: []Change{with(base(KindProduct, "product_generated_failed"), func(c *Change) {
				c.LinkID, c.ProductName = "l1", "pf_credit_card"
			})},
		},
		{
			name: "product event without product name",
			body: envelope("product_generated_failed", `{"linkId":"l1","productNames":{"a":"b"}}`),
			want: []Change{with(base(KindProduct, "product_generated_failed"), func(c *Change) { c.LinkID = "l1" })},
		},
		{
			name: "web-tracking event",
			body: envelope("page_view", `{"page":"landing"}`),
			want: []Change{base(KindUnknown, "page_view")},
		},
		{
			name: "unknown event with unreadable payload",
			body: envelope("something_new", `"`+testCPF+`"`),
			want: []Change{base(KindUnknown, "something_new")},
		},
		{
			name: "unknown eventType",
			body: `{"eventId":"e1","eventType":"web","eventName":"consent_authorised","eventTime":"2022-06-25T20:08:17.848Z","payload":{"linkId":"l1"},"externalInfo":{"k":"v"}}`,
			want: []Change{base(KindUnknown, "consent_authorised")},
		},
		{
			name: "eventType casing",
			body: `{"eventId":"e1","eventType":" API ","eventName":"consent_revoked","eventTime":"2022-06-25T20:08:17.848Z","payload":{"linkId":"l1"},"externalInfo":{"k":"v"}}`,
			want: []Change{with(base(KindConsent, "consent_revoked"), func(c *Change) { c.LinkID, c.ConsentStatus = "l1", "REVOKED" })},
		},
		{
			name: "missing eventType",
			body: `{"eventId":"e1","eventName":"link_created","eventTime":"2022-06-25T20:08:17.848Z","payload":{"linkId":"l1"},"externalInfo":{"k":"v"}}`,
			want: []Change{with(base(KindLinkCreated, "link_created"), func(c *Change) { c.LinkID = "l1" })},
		},
		{
			name: "missing eventName",
			body: `{"eventId":"e1","eventType":"api","eventTime":"2022-06-25T20:08:17.848Z","externalInfo":{"k":"v"}}`,
			want: []Change{base(KindUnknown, "")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events, err := Parse([]byte(tc.body))
			if err != nil {
				t.Fatalf("Parse() error = %v, want nil", err)
			}
			if len(events) != 1 {
				t.Fatalf("Parse() returned %d events, want 1", len(events))
			}
			got, err := events[0].Changes()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Changes() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				assertNoTaxID(t, err)
				return
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("Changes() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

// TestChangesArrayBody checks that each event of a multi-event body is
// interpreted on its own.
func TestChangesArrayBody(t *testing.T) {
	body := `[` + envelope("link_created", `{"linkId":"l1"}`) + `,` + envelope("consent_authorised", `{"linkId":"l1","consentId":"c1"}`) + `]`
	events, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse() error = %v, want nil", err)
	}
	var got []Kind
	for _, e := range events {
		changes, err := e.Changes()
		if err != nil {
			t.Fatalf("Changes() error = %v, want nil", err)
		}
		for _, c := range changes {
			got = append(got, c.Kind)
		}
	}
	if diff := cmp.Diff(got, []Kind{KindLinkCreated, KindConsent}); diff != "" {
		t.Errorf("kinds mismatch (-got +want):\n%s", diff)
	}
}

// TestChangesHandBuiltEvent covers Events not produced by Parse, e.g.
// decoded from storage, whose payload may carry surrounding whitespace.
func TestChangesHandBuiltEvent(t *testing.T) {
	e := Event{EventID: "e1", EventName: "consent_revoked", Payload: json.RawMessage(" \n{\"consents\": [ {\"consentId\":\"c1\"} ] } ")}
	got, err := e.Changes()
	if err != nil {
		t.Fatalf("Changes() error = %v, want nil", err)
	}
	want := []Change{{Kind: KindConsent, EventID: "e1", EventName: "consent_revoked", ConsentID: "c1", ConsentStatus: "REVOKED"}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Changes() mismatch (-got +want):\n%s", diff)
	}
}
