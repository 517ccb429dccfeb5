package klavi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const consentJSON = `{
	"consentId": "c-1",
	"linkId": "l-1",
	"externalTrackId": "ext-1",
	"personalTaxId": "` + testCPF + `",
	"businessTaxId": "",
	"institutionCode": "001",
	"status": "authorised",
	"permissionsApply": ["ACCOUNTS_ALL", "CREDIT_CARDS_ALL"],
	"permissionsGranted": ["ACCOUNTS_ALL"],
	"expireAt": "2024-12-08T23:59:59.999Z",
	"createdAt": "2023-12-08T09:19:19.253Z",
	"updatedAt": "2023-12-08T09:20:00"
}`

func wantConsent() Consent {
	return Consent{
		ConsentID:          "c-1",
		LinkID:             "l-1",
		ExternalTrackID:    "ext-1",
		PersonalTaxID:      testCPF,
		InstitutionCode:    "001",
		Status:             ConsentAuthorised,
		PermissionsApply:   []string{"ACCOUNTS_ALL", "CREDIT_CARDS_ALL"},
		PermissionsGranted: []string{"ACCOUNTS_ALL"},
		ExpireAt:           time.Date(2024, 12, 8, 23, 59, 59, 999e6, time.UTC),
		CreatedAt:          time.Date(2023, 12, 8, 9, 19, 19, 253e6, time.UTC),
		UpdatedAt:          time.Date(2023, 12, 8, 9, 20, 0, 0, time.UTC),
	}
}

func TestListConsents(t *testing.T) {
	tests := []struct {
		name      string
		filter    ConsentFilter
		response  string
		wantQuery url.Values
		want      []Consent
	}{
		{
			name:      "bare array",
			filter:    ConsentFilter{PersonalTaxID: testCPF},
			response:  `[` + consentJSON + `]`,
			wantQuery: url.Values{"personalTaxId": {testCPF}},
			want:      []Consent{wantConsent()},
		},
		{
			name:      "wrapped in consents",
			filter:    ConsentFilter{BusinessTaxID: testCNPJ, LinkID: "l-1"},
			response:  `{"consents":[` + consentJSON + `]}`,
			wantQuery: url.Values{"businessTaxId": {testCNPJ}, "linkId": {"l-1"}},
			want:      []Consent{wantConsent()},
		},
		{
			name:      "wrapped in data",
			filter:    ConsentFilter{PersonalTaxID: testCPF},
			response:  `{"data":[` + consentJSON + `,` + consentJSON + `]}`,
			wantQuery: url.Values{"personalTaxId": {testCPF}},
			want:      []Consent{wantConsent(), wantConsent()},
		},
		{
			name:      "empty",
			filter:    ConsentFilter{PersonalTaxID: testCPF},
			response:  `[]`,
			wantQuery: url.Values{"personalTaxId": {testCPF}},
			want:      []Consent{},
		},
		{
			name:      "null",
			filter:    ConsentFilter{PersonalTaxID: testCPF},
			response:  `null`,
			wantQuery: url.Values{"personalTaxId": {testCPF}},
			want:      []Consent{},
		},
		{
			name:      "wrapped null",
			filter:    ConsentFilter{PersonalTaxID: testCPF},
			response:  `{"consents":null}`,
			wantQuery: url.Values{"personalTaxId": {testCPF}},
			want:      []Consent{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var query url.Values
			mux := http.NewServeMux()
			mux.HandleFunc("GET /data/v1/consents", func(w http.ResponseWriter, r *http.Request) {
				query = r.URL.Query()
				writeJSON(w, 200, tc.response)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			got, err := c.ListConsents(t.Context(), tc.filter)
			if err != nil {
				t.Fatalf("ListConsents: %v", err)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("consents (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(query, tc.wantQuery); diff != "" {
				t.Errorf("query (-got +want):\n%s", diff)
			}
		})
	}
}

func TestListConsentsMalformed(t *testing.T) {
	for _, body := range []string{
		`{"items":[]}`,
		`{"consents":{"consentId":"c"}}`,
		`"` + testCPF + `"`,
		`[{"consentId":1,"personalTaxId":"` + testCPF + `"}]`,
		`[` + consentJSON,
		``,
	} {
		t.Run(body, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /data/v1/consents", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, body)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			_, err := c.ListConsents(t.Context(), ConsentFilter{PersonalTaxID: testCPF})
			if !errors.Is(err, ErrMalformedResponse) {
				t.Errorf("ListConsents error = %v, want ErrMalformedResponse", err)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestListConsentsFilterValidation(t *testing.T) {
	c, _ := testClient(t, "http://127.0.0.1:1", WithTokenSource(newFakeTokens(testToken)))
	for _, f := range []ConsentFilter{{}, {LinkID: "l"}, {PersonalTaxID: testCPF, BusinessTaxID: testCNPJ}} {
		_, err := c.ListConsents(t.Context(), f)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ListConsents(%v) error = %v, want ErrInvalidRequest", f, err)
		}
		assertNoSecrets(t, err)
	}
}

func TestGetConsent(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		wantPath string
		response string
	}{
		{name: "bare", id: "c-1", wantPath: "/data/v1/consents/c-1", response: consentJSON},
		{name: "wrapped in consent", id: "c-1", wantPath: "/data/v1/consents/c-1", response: `{"consent":` + consentJSON + `}`},
		{name: "wrapped in data", id: "c-1", wantPath: "/data/v1/consents/c-1", response: `{"data":` + consentJSON + `}`},
		{name: "escaped id", id: "a/b c?d", wantPath: "/data/v1/consents/a%2Fb%20c%3Fd", response: consentJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotPath, gotID string
			mux := http.NewServeMux()
			mux.HandleFunc("GET /data/v1/consents/{id}", func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotID = r.URL.EscapedPath(), r.PathValue("id")
				writeJSON(w, 200, tc.response)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			got, err := c.GetConsent(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("GetConsent: %v", err)
			}
			want := wantConsent()
			if diff := cmp.Diff(got, &want); diff != "" {
				t.Errorf("consent (-got +want):\n%s", diff)
			}
			if gotPath != tc.wantPath || gotID != tc.id {
				t.Errorf("path, id = %q, %q, want %q, %q", gotPath, gotID, tc.wantPath, tc.id)
			}
		})
	}
}

func TestGetConsentFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		response string
		want     error
	}{
		{name: "not found", status: 404, response: `{"statusCode":404,"error":"Not Found","message":"consent not found"}`, want: ErrNotFound},
		{name: "forbidden", status: 403, response: `{"statusCode":403,"error":"Forbidden"}`, want: ErrForbidden},
		{name: "no consent", status: 200, response: `{"message":"ok"}`, want: ErrMalformedResponse},
		{name: "array", status: 200, response: `[` + consentJSON + `]`, want: ErrMalformedResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /data/v1/consents/{id}", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, tc.status, tc.response)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			_, err := c.GetConsent(t.Context(), "c-1")
			if !errors.Is(err, tc.want) {
				t.Errorf("GetConsent error = %v, want %v", err, tc.want)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestConsentIDValidation(t *testing.T) {
	c, _ := testClient(t, "http://127.0.0.1:1", WithTokenSource(newFakeTokens(testToken)))
	for _, id := range []string{"", ".", "..", strings.Repeat("x", 257)} {
		if _, err := c.GetConsent(t.Context(), id); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("GetConsent(%q) error = %v, want ErrInvalidRequest", id, err)
		}
		if err := c.RevokeConsent(t.Context(), id); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("RevokeConsent(%q) error = %v, want ErrInvalidRequest", id, err)
		}
	}
}

func TestRevokeConsent(t *testing.T) {
	var gotPath, authz string
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /data/v1/consents/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		gotPath, authz = r.URL.EscapedPath(), r.Header.Get("Authorization")
		writeJSON(w, 200, `{"message":"ok"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

	if err := c.RevokeConsent(t.Context(), "c 1"); err != nil {
		t.Fatalf("RevokeConsent: %v", err)
	}
	if want := "/data/v1/consents/c%201/revoke"; gotPath != want {
		t.Errorf("path = %q, want %q", gotPath, want)
	}
	if authz != "Bearer "+testToken {
		t.Errorf("Authorization = %q, want the bearer token", authz)
	}
}

func TestConsentLenientTimes(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2023-12-08T09:19:19.253Z"`, time.Date(2023, 12, 8, 9, 19, 19, 253e6, time.UTC)},
		{`"2023-12-08T06:19:19-03:00"`, time.Date(2023, 12, 8, 9, 19, 19, 0, time.UTC)},
		{`"2023-12-08T09:19:19"`, time.Date(2023, 12, 8, 9, 19, 19, 0, time.UTC)},
		{`"2023-12-08 09:19:19"`, time.Date(2023, 12, 8, 9, 19, 19, 0, time.UTC)},
		{`"2023-12-08"`, time.Date(2023, 12, 8, 0, 0, 0, 0, time.UTC)},
		{`1702027159`, time.Date(2023, 12, 8, 9, 19, 19, 0, time.UTC)},
		{`1702027159253`, time.Date(2023, 12, 8, 9, 19, 19, 253e6, time.UTC)},
		{`"1702027159"`, time.Date(2023, 12, 8, 9, 19, 19, 0, time.UTC)},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
		{`"yesterday"`, time.Time{}},
		{`{}`, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var c Consent
			if err := json.Unmarshal([]byte(`{"consentId":"c","updatedAt":`+tc.in+`}`), &c); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !c.UpdatedAt.Equal(tc.want) {
				t.Errorf("UpdatedAt = %v, want %v", c.UpdatedAt, tc.want)
			}
		})
	}
}

func TestConsentTypesAreNotFormattedWithTaxIDs(t *testing.T) {
	c := wantConsent()
	c.BusinessTaxID = testCNPJ
	f := ConsentFilter{PersonalTaxID: testCPF, BusinessTaxID: testCNPJ, LinkID: "l"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb+" "+verb+" "+verb, c, f, []Consent{c})
		for _, s := range []string{testCPF, testCNPJ} {
			if strings.Contains(out, s) {
				t.Errorf("%s output %q contains %q", verb, out, s)
			}
		}
	}
}
