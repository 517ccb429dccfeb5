package klavi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func itoa(i int) string { return strconv.Itoa(i) }

var allSentinels = []error{
	ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrRateLimited, ErrServer, ErrBusiness,
	ErrInvalidAuthorisation, ErrInvalidProduct, ErrConsentLimit, ErrInvalidInstitution, ErrNoProducts,
	ErrInvalidCallbackURL, ErrProductRequestFailed, ErrNoOpenFinanceConsent, ErrKYCRequired,
	ErrMalformedResponse, ErrInvalidRequest,
}

func TestAPIErrorSentinels(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		response string
		want     []error
	}{
		{name: "400", status: 400, response: `{"statusCode":400,"error":"Bad Request","message":"Invalid phone"}`, want: []error{ErrBadRequest}},
		{name: "422", status: 422, response: `{}`, want: []error{ErrBadRequest}},
		{name: "401", status: 401, response: `{"statusCode":401,"error":"Unauthorized"}`, want: []error{ErrUnauthorized}},
		{name: "403", status: 403, response: `{}`, want: []error{ErrForbidden}},
		{name: "404", status: 404, response: `{}`, want: []error{ErrNotFound}},
		{name: "409", status: 409, response: `{}`, want: []error{ErrConflict}},
		{name: "429", status: 429, response: `{}`, want: []error{ErrRateLimited}},
		{name: "500", status: 500, response: `{}`, want: []error{ErrServer}},
		{name: "502 html", status: 502, response: `<html>Bad Gateway</html>`, want: []error{ErrServer}},
		{name: "503", status: 503, response: ``, want: []error{ErrServer}},
		{name: "416 without code", status: 416, response: `{"error":"Business"}`, want: []error{ErrBusiness}},
		{name: "416 4001", status: 416, response: `{"statusCode":4001}`, want: []error{ErrBusiness, ErrInvalidAuthorisation}},
		{name: "416 4002 as string", status: 416, response: `{"statusCode":"4002"}`, want: []error{ErrBusiness, ErrInvalidProduct}},
		{name: "416 4003 in code", status: 416, response: `{"code":4003,"message":"too many consents"}`, want: []error{ErrBusiness, ErrConsentLimit}},
		{name: "416 4004", status: 416, response: `{"statusCode":4004}`, want: []error{ErrBusiness, ErrInvalidInstitution}},
		{name: "416 4005", status: 416, response: `{"statusCode":4005}`, want: []error{ErrBusiness, ErrNoProducts}},
		{name: "416 4006", status: 416, response: `{"statusCode":4006}`, want: []error{ErrBusiness, ErrInvalidCallbackURL}},
		{name: "416 4007", status: 416, response: `{"statusCode":4007}`, want: []error{ErrBusiness, ErrProductRequestFailed}},
		{name: "416 4008", status: 416, response: `{"statusCode":4008}`, want: []error{ErrBusiness, ErrNoOpenFinanceConsent}},
		{name: "416 4009", status: 416, response: `{"statusCode":4009}`, want: []error{ErrBusiness, ErrKYCRequired}},
		{name: "418", status: 418, response: `{}`, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /data/v1/consents/{id}", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, tc.status, tc.response)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))

			_, err := c.GetConsent(t.Context(), "c-1")
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if apiErr.HTTPStatus != tc.status {
				t.Errorf("HTTPStatus = %d, want %d", apiErr.HTTPStatus, tc.status)
			}
			for _, s := range allSentinels {
				want := false
				for _, w := range tc.want {
					want = want || w == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
}

func TestAPIErrorFields(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amzn-RequestId", "req-42")
		writeJSON(w, 416, `{"statusCode":4006,"error":"Business Error","message":"invalid productsCallbackURL"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

	_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v is not an *APIError", err)
	}
	want := &APIError{
		HTTPStatus: 416,
		StatusCode: 4006,
		ErrorText:  "Business Error",
		Message:    "invalid productsCallbackURL",
		RequestID:  "req-42",
		Endpoint:   "POST /data/v1/links",
	}
	if diff := cmp.Diff(apiErr, want); diff != "" {
		t.Errorf("APIError (-got +want):\n%s", diff)
	}
	msg := err.Error()
	for _, part := range []string{"POST /data/v1/links", "416", "4006", "invalid productsCallbackURL", "req-42"} {
		if !strings.Contains(msg, part) {
			t.Errorf("Error() = %q, want it to contain %q", msg, part)
		}
	}
	if apiErr.Retryable() {
		t.Error("416 is Retryable, want not")
	}
}

func TestAPIErrorRetryable(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 404: false, 408: true, 416: false, 429: true, 500: true, 502: true, 503: true, 504: true} {
		if got := (&APIError{HTTPStatus: status}).Retryable(); got != want {
			t.Errorf("APIError{HTTPStatus: %d}.Retryable() = %v, want %v", status, got, want)
		}
	}
}

func TestAPIErrorRedaction(t *testing.T) {
	tests := []struct {
		name     string
		message  string
		mustNot  []string
		mustKeep []string
	}{
		{name: "cpf", message: "taxId 76109277673 is invalid", mustNot: []string{"76109277673"}, mustKeep: []string{"is invalid"}},
		{name: "masked cpf", message: "cpf 761.092.776-73 is invalid", mustNot: []string{"761.092.776-73", "776-73"}},
		{name: "cnpj", message: "cnpj 21128159000166 rejected", mustNot: []string{"21128159000166"}},
		{name: "masked cnpj", message: "cnpj 21.128.159/0001-66 rejected", mustNot: []string{"159/0001-66"}},
		{name: "alphanumeric cnpj", message: "cnpj 12ABC34501DE35 rejected", mustNot: []string{"12ABC34501DE35"}},
		{name: "masked alphanumeric cnpj", message: "cnpj 12.ABC.345/01DE-35 rejected", mustNot: []string{"345/01DE-35"}},
		{name: "phone", message: "Invalid phone +55 (11) 98765-4321", mustNot: []string{"98765-4321"}, mustKeep: []string{"Invalid phone"}},
		{name: "jwt", message: "token eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig expired", mustNot: []string{"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9"}},
		{name: "known secrets", message: "bad " + testAccessKey + " " + testSecretKey + " " + testToken + " " + testEmail, mustNot: secretValues},
		{name: "known secrets in another case", message: "bad " + strings.ToUpper(testEmail) + " " + strings.ToLower(testAccessKey) + " " + strings.ToUpper(testSecretKey), mustNot: []string{strings.ToUpper(testEmail), strings.ToLower(testAccessKey), strings.ToUpper(testSecretKey)}},
		{name: "any e-mail address", message: "user Maria.Silva+x@Example.COM.br already linked", mustNot: []string{"Maria.Silva", "Example.COM"}, mustKeep: []string{"already linked"}},
		{name: "short numbers kept", message: "institution 033 code 4002 at 2023-12-08T09:19:19Z", mustKeep: []string{"033", "4002", "2023-12-08T09:19:19Z"}},
		{name: "newlines", message: "line1\nline2\r\nfake log", mustNot: []string{"\n", "\r"}},
		{name: "long", message: strings.Repeat("é", 1000), mustNot: []string{strings.Repeat("é", maxMessageLen)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &request{endpoint: "POST /data/v1/auth", sensitive: []string{testAccessKey, testSecretKey, testEmail, ""}}
			res := attemptResult{
				status: 400,
				header: http.Header{},
				body:   []byte(`{"statusCode":400,"error":"` + jsonEscape(tc.message) + `","message":"` + jsonEscape(tc.message) + `"}`),
			}
			e := newAPIError(r, res, testToken, time.Now())
			for _, field := range []string{e.Error(), e.Message, e.ErrorText} {
				for _, s := range tc.mustNot {
					if strings.Contains(field, s) {
						t.Errorf("%q contains %q", field, s)
					}
				}
			}
			for _, s := range tc.mustKeep {
				if !strings.Contains(e.Message, s) {
					t.Errorf("Message %q lost %q", e.Message, s)
				}
			}
			if len(e.Message) > maxMessageLen+3 || len(e.Error()) > 600 {
				t.Errorf("message of %d bytes, error of %d bytes: want them capped", len(e.Message), len(e.Error()))
			}
		})
	}
}

func jsonEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
	return r.Replace(s)
}

func TestMalformedResponseHidesBody(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "syntax", body: `{"linkId":"` + testCPF + `",`},
		{name: "type", body: `{"linkId":["` + testCPF + `"]}`},
		{name: "not json", body: testCPF + " " + testToken},
		{name: "too large", body: `{"linkId":"l","pad":"` + strings.Repeat(testCPF, maxResponseBytes/len(testCPF)+1) + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits int
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/links", func(w http.ResponseWriter, r *http.Request) {
				hits++
				writeJSON(w, 200, tc.body)
			})
			srv := newServer(t, mux)
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken)))

			_, err := c.CreateLink(t.Context(), CreateLinkRequest{PersonalTaxID: testCPF})
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("CreateLink error = %v, want ErrMalformedResponse", err)
			}
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				t.Errorf("malformed 2xx became an *APIError: %v", apiErr)
			}
			assertNoSecrets(t, err)
			if hits != 1 {
				t.Errorf("server got %d requests, want 1 (no retry)", hits)
			}
		})
	}
}
