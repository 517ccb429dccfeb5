package klavi

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReportRequestsWire(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		call     func(c *Client) (*ReportRequestAccepted, error)
		wantKeys []string
	}{
		{
			name: "personal institution data, all fields",
			path: "/data/v1/personal/institution-data",
			call: func(c *Client) (*ReportRequestAccepted, error) {
				return c.RequestInstitutionData(t.Context(), Personal, InstitutionDataRequest{
					TaxID: testCPF, InstitutionCode: "033", LinkID: "l1", ConsentIDs: []string{"c1"},
					Products:            []string{"pf_checking_account"},
					ProductsCallbackURL: map[string]string{"all": "https://x/r"},
					ExternalInfo:        json.RawMessage(`{"a":1}`),
				})
			},
			wantKeys: []string{"consentIds", "externalInfo", "institutionCode", "linkId", "products", "productsCallbackURL", "taxId"},
		},
		{
			name: "business institution data, required fields",
			path: "/data/v1/business/institution-data",
			call: func(c *Client) (*ReportRequestAccepted, error) {
				return c.RequestInstitutionData(t.Context(), Business, InstitutionDataRequest{
					TaxID: testCNPJ, InstitutionCode: "260", Products: []string{"all"},
				})
			},
			wantKeys: []string{"institutionCode", "products", "taxId"},
		},
		{
			name: "personal user data, all fields",
			path: "/data/v1/personal/user-data",
			call: func(c *Client) (*ReportRequestAccepted, error) {
				return c.RequestUserData(t.Context(), Personal, UserDataRequest{
					TaxID: testCPF, LinkID: "l1", ConsentIDs: []string{"c1", "c2"},
					Products:            []string{"all"},
					ProductsCallbackURL: map[string]string{"all": "https://x/r"},
					ExternalInfo:        json.RawMessage(`{"a":1}`),
				})
			},
			wantKeys: []string{"consentIds", "externalInfo", "linkId", "products", "productsCallbackURL", "taxId"},
		},
		{
			name: "business user data, required fields",
			path: "/data/v1/business/user-data",
			call: func(c *Client) (*ReportRequestAccepted, error) {
				return c.RequestUserData(t.Context(), Business, UserDataRequest{TaxID: testCNPJ, Products: []string{"all"}})
			},
			wantKeys: []string{"products", "taxId"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			var authz string
			mux := http.NewServeMux()
			mux.HandleFunc("POST "+tc.path, func(w http.ResponseWriter, r *http.Request) {
				authz = r.Header.Get("Authorization")
				keys = bodyKeys(t, r)
				writeJSON(w, 200, `{"requestId":"xxxsssaa","message":"ok"}`)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			got, err := tc.call(c)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if diff := cmp.Diff(got, &ReportRequestAccepted{RequestID: "xxxsssaa", Message: "ok"}); diff != "" {
				t.Errorf("answer (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(keys, tc.wantKeys); diff != "" {
				t.Errorf("body keys (-got +want):\n%s", diff)
			}
			if authz != "Bearer "+testToken {
				t.Errorf("Authorization = %q, want the bearer token", authz)
			}
		})
	}
}

func TestReportRequestValues(t *testing.T) {
	var body map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/personal/institution-data", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		writeJSON(w, 200, `{"message":"ok"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

	got, err := c.RequestInstitutionData(t.Context(), Personal, InstitutionDataRequest{
		TaxID: testCPF, InstitutionCode: "001", ConsentIDs: []string{"c1"}, Products: []string{"pf_credit_card", "pf_loans"},
	})
	if err != nil {
		t.Fatalf("RequestInstitutionData: %v", err)
	}
	// A 2xx without requestId is still an accepted request.
	if diff := cmp.Diff(got, &ReportRequestAccepted{Message: "ok"}); diff != "" {
		t.Errorf("answer (-got +want):\n%s", diff)
	}
	want := map[string]any{
		"taxId":           testCPF,
		"institutionCode": "001",
		"consentIds":      []any{"c1"},
		"products":        []any{"pf_credit_card", "pf_loans"},
	}
	if diff := cmp.Diff(body, want); diff != "" {
		t.Errorf("body (-got +want):\n%s", diff)
	}
}

func TestReportRequestValidation(t *testing.T) {
	var hits int
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))
	ok := InstitutionDataRequest{TaxID: testCPF, InstitutionCode: "001", Products: []string{"all"}}

	tests := []struct {
		name string
		call func() error
	}{
		{"unknown kind", func() error {
			_, err := c.RequestInstitutionData(t.Context(), "pf", ok)
			return err
		}},
		{"no tax id", func() error {
			r := ok
			r.TaxID = ""
			_, err := c.RequestInstitutionData(t.Context(), Personal, r)
			return err
		}},
		{"no institution", func() error {
			r := ok
			r.InstitutionCode = ""
			_, err := c.RequestInstitutionData(t.Context(), Personal, r)
			return err
		}},
		{"no products", func() error {
			r := ok
			r.Products = nil
			_, err := c.RequestInstitutionData(t.Context(), Personal, r)
			return err
		}},
		{"bad external info", func() error {
			r := ok
			r.ExternalInfo = json.RawMessage(`[`)
			_, err := c.RequestInstitutionData(t.Context(), Personal, r)
			return err
		}},
		{"user data unknown kind", func() error {
			_, err := c.RequestUserData(t.Context(), "", UserDataRequest{TaxID: testCPF, Products: []string{"all"}})
			return err
		}},
		{"user data no products", func() error {
			_, err := c.RequestUserData(t.Context(), Business, UserDataRequest{TaxID: testCNPJ, Products: []string{}})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("error = %v, want ErrInvalidRequest", err)
			}
			assertNoSecrets(t, err)
		})
	}
	if hits != 0 {
		t.Errorf("server got %d requests, want 0", hits)
	}
}

func TestReportRequestBusinessErrors(t *testing.T) {
	tests := []struct {
		code int
		want error
	}{
		{4001, ErrInvalidAuthorisation},
		{4002, ErrInvalidProduct},
		{4003, ErrConsentLimit},
		{4004, ErrInvalidInstitution},
		{4005, ErrNoProducts},
		{4006, ErrInvalidCallbackURL},
		{4007, ErrProductRequestFailed},
		{4008, ErrNoOpenFinanceConsent},
		{4009, ErrKYCRequired},
	}
	for _, tc := range tests {
		t.Run(tc.want.Error(), func(t *testing.T) {
			var hits int
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/business/user-data", func(w http.ResponseWriter, r *http.Request) {
				hits++
				writeJSON(w, 416, `{"statusCode":`+itoa(tc.code)+`,"error":"Business Error","message":"taxId `+testCNPJ+` rejected"}`)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			_, err := c.RequestUserData(t.Context(), Business, UserDataRequest{TaxID: testCNPJ, Products: []string{"all"}})
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrBusiness) {
				t.Errorf("error = %v, want %v and ErrBusiness", err, tc.want)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if apiErr.HTTPStatus != 416 || apiErr.StatusCode != tc.code {
				t.Errorf("HTTPStatus, StatusCode = %d, %d, want 416, %d", apiErr.HTTPStatus, apiErr.StatusCode, tc.code)
			}
			assertNoSecrets(t, err)
			if hits != 1 {
				t.Errorf("server got %d requests, want 1", hits)
			}
		})
	}
}
