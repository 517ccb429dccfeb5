package klavi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCreateLinkWire(t *testing.T) {
	full := CreateLinkRequest{
		PersonalTaxID:       testCPF,
		BusinessTaxID:       testCNPJ,
		Email:               testEmail,
		Phone:               testPhone,
		InstitutionCode:     "033",
		RedirectURL:         "https://app.example.com/done",
		ProductsCallbackURL: map[string]string{"all": "https://api.example.com/webhooks/klavi/reports"},
		ExternalInfo:        json.RawMessage(`{"myTraceId":"t-1"}`),
		ConnectionKey:       "ck",
		AppLink:             "app://x",
		AppRedirectURLKey:   "k",
	}
	tests := []struct {
		name     string
		req      CreateLinkRequest
		wantKeys []string
	}{
		{
			name: "all fields",
			req:  full,
			wantKeys: []string{
				"appLink", "appRedirectURLKey", "businessTaxId", "connectionKey", "email", "externalInfo",
				"institutionCode", "personalTaxId", "phone", "productsCallbackURL", "redirectURL",
			},
		},
		{name: "empty", req: CreateLinkRequest{}, wantKeys: []string{}},
		{
			name:     "typical",
			req:      CreateLinkRequest{PersonalTaxID: testCPF, RedirectURL: "https://app.example.com/done"},
			wantKeys: []string{"personalTaxId", "redirectURL"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
				keys = bodyKeys(t, r)
				writeJSON(w, 200, `{"linkId":"4437b139-8a16-11ee-b636-487b6bad036a","linkURL":"https://conecte-sandbox.klavi.ai/path?v=tok","linkToken":"tok","expireIn":1800}`)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			got, err := c.CreateLink(t.Context(), tc.req)
			if err != nil {
				t.Fatalf("CreateLink: %v", err)
			}
			if diff := cmp.Diff(keys, tc.wantKeys); diff != "" {
				t.Errorf("body keys (-got +want):\n%s", diff)
			}
			want := &Link{
				LinkID:    "4437b139-8a16-11ee-b636-487b6bad036a",
				LinkURL:   "https://conecte-sandbox.klavi.ai/path?v=tok",
				LinkToken: "tok",
				ExpiresIn: 30 * time.Minute,
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("link (-got +want):\n%s", diff)
			}
		})
	}
}

func TestCreateLinkValues(t *testing.T) {
	var body map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		writeJSON(w, 200, `{"linkId":"l1","expireIn":"1800"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

	link, err := c.CreateLink(t.Context(), CreateLinkRequest{
		PersonalTaxID:       testCPF,
		ProductsCallbackURL: map[string]string{"pf_checking_account": "https://x/c", "other": "https://x/o"},
		ExternalInfo:        json.RawMessage(`{"myTraceId":"t-1","n":2}`),
	})
	if err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	if link.ExpiresIn != 30*time.Minute {
		t.Errorf("ExpiresIn = %v, want 30m from a string expireIn", link.ExpiresIn)
	}
	want := map[string]any{
		"personalTaxId":       testCPF,
		"productsCallbackURL": map[string]any{"pf_checking_account": "https://x/c", "other": "https://x/o"},
		"externalInfo":        map[string]any{"myTraceId": "t-1", "n": float64(2)},
	}
	if diff := cmp.Diff(body, want); diff != "" {
		t.Errorf("body (-got +want):\n%s", diff)
	}
}

func TestCreateLinkFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		response string
		wantIs   []error
	}{
		{name: "invalid phone", status: 400, response: `{"statusCode":400,"error":"Bad Request","message":"Invalid phone ` + testPhone + `"}`, wantIs: []error{ErrBadRequest}},
		{name: "tax id echoed", status: 422, response: `{"statusCode":422,"message":["personalTaxId ` + testCPF + ` is invalid"]}`, wantIs: []error{ErrBadRequest}},
		{name: "bad callback", status: 416, response: `{"statusCode":4006,"error":"Business Error","message":"invalid productsCallbackURL"}`, wantIs: []error{ErrBusiness, ErrInvalidCallbackURL}},
		{name: "no link id", status: 200, response: `{"linkURL":"https://x?v=` + testCPF + `"}`, wantIs: []error{ErrMalformedResponse}},
		{name: "wrong type", status: 200, response: `{"linkId":12}`, wantIs: []error{ErrMalformedResponse}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits int
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
				hits++
				writeJSON(w, tc.status, tc.response)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF, Email: testEmail, Phone: testPhone})
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("CreateLink error = %v, want %v", err, want)
				}
			}
			assertNoSecrets(t, err)
			if hits != 1 {
				t.Errorf("server got %d requests, want 1", hits)
			}
		})
	}
}

func TestCreateLinkInvalidExternalInfo(t *testing.T) {
	c, _ := testClient(t, "http://127.0.0.1:1", WithTokenSource(newFakeTokens(testToken)))
	for _, raw := range []string{`{"a":`, `[1]`, `"s"`, `null`} {
		_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF, ExternalInfo: json.RawMessage(raw)})
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("CreateLink with externalInfo %s: error %v, want ErrInvalidRequest", raw, err)
		}
		assertNoSecrets(t, err)
	}
}

func TestLinkTypesAreNotFormattedWithSecrets(t *testing.T) {
	req := CreateLinkRequest{
		PersonalTaxID: testCPF, BusinessTaxID: testCNPJ, Email: testEmail, Phone: testPhone,
		RedirectURL:  "https://app.example.com/done?cpf=" + testCPF,
		ExternalInfo: json.RawMessage(`{"cpf":"` + testCPF + `"}`),
	}
	link := Link{LinkID: "l1", LinkURL: "https://conecte-sandbox.klavi.ai/p?v=" + testToken, LinkToken: testToken}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb+" "+verb, req, link)
		for _, s := range secretValues {
			if strings.Contains(out, s) {
				t.Errorf("%s output %q contains %q", verb, out, s)
			}
		}
	}
}
