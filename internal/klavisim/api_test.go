package klavisim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", `{"accessKey":"ak-test","secretKey":"sk-test-secret"}`)
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
	}
	assertKeys(t, res.body, "accessToken", "expireIn")
	var got struct {
		AccessToken string      `json:"accessToken"`
		ExpireIn    json.Number `json:"expireIn"`
	}
	decode(t, res.body, &got)
	if got.ExpireIn != "1800" {
		t.Errorf("expireIn = %s, want the number 1800", got.ExpireIn)
	}
	if got.AccessToken == "" {
		t.Error("accessToken is empty")
	}
	if bytes.Contains(res.body, []byte(testSecretKey)) {
		t.Errorf("body %s contains the secret key", res.body)
	}
	if ok := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, got.AccessToken, ""); ok.status != http.StatusOK {
		t.Errorf("using the token: status %d, want 200; body %s", ok.status, ok.body)
	}
}

func TestAuthRejects(t *testing.T) {
	const wrongKeys = `{"statusCode":401,"error":"Unauthorized","message":"Invalid accessKey or secretKey"}`
	tests := []struct {
		name     string
		body     string
		ctype    string
		status   int
		wantBody string
	}{
		{name: "wrong secretKey", body: `{"accessKey":"ak-test","secretKey":"nope"}`, status: 401, wantBody: wrongKeys},
		{name: "wrong accessKey", body: `{"accessKey":"nope","secretKey":"sk-test-secret"}`, status: 401, wantBody: wrongKeys},
		{name: "missing secretKey", body: `{"accessKey":"ak-test"}`, status: 400},
		{name: "wrong field casing", body: `{"accesskey":"ak-test","secretKey":"sk-test-secret"}`, status: 400},
		{name: "not json", body: `accessKey=ak-test`, status: 400},
		{name: "form content type", body: `{"accessKey":"ak-test","secretKey":"sk-test-secret"}`, ctype: "application/x-www-form-urlencoded", status: 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			res := e.doWith(t, http.MethodPost, "/data/v1/auth", tc.body, func(h http.Header) {
				h.Set("Content-Type", "application/json")
				if tc.ctype != "" {
					h.Set("Content-Type", tc.ctype)
				}
			})
			assertError(t, res, tc.status, tc.status)
			if tc.wantBody != "" && string(res.body) != tc.wantBody {
				t.Errorf("body = %s, want %s", res.body, tc.wantBody)
			}
		})
	}
}

func TestAuthWithoutConfiguredKeysRejectsEverything(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AccessKey, o.SecretKey = "", "" })
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", `{"accessKey":"x","secretKey":"y"}`)
	assertError(t, res, 401, 401)
}

func TestRefresh(t *testing.T) {
	e := newEnv(t, nil)
	old := e.token(t)
	res := e.do(t, http.MethodGet, "/data/v1/refresh", old, "")
	if res.status != http.StatusOK {
		t.Fatalf("refresh: status %d, want 200; body %s", res.status, res.body)
	}
	assertKeys(t, res.body, "accessToken", "expireIn")
	var got tokenResponse
	decode(t, res.body, &got)
	if got.AccessToken == old || got.AccessToken == "" {
		t.Errorf("refreshed token = %q, want a new one", got.AccessToken)
	}
	if got.ExpireIn != 1800 {
		t.Errorf("expireIn = %d, want 1800", got.ExpireIn)
	}
	if r := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, got.AccessToken, ""); r.status != http.StatusOK {
		t.Errorf("using the refreshed token: status %d, want 200", r.status)
	}

	assertError(t, e.do(t, http.MethodGet, "/data/v1/refresh", "", ""), 401, 401)
	assertError(t, e.do(t, http.MethodPost, "/data/v1/refresh", old, `{}`), 405, 405)
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenTTL = 10 * time.Minute })
	res := e.do(t, http.MethodPost, "/data/v1/auth", "", `{"accessKey":"ak-test","secretKey":"sk-test-secret"}`)
	var got tokenResponse
	decode(t, res.body, &got)
	if got.ExpireIn != 600 {
		t.Errorf("expireIn = %d, want 600 for a 10m TTL", got.ExpireIn)
	}
	path := "/data/v1/consents?personalTaxId=" + testCPF

	e.clock.Advance(10*time.Minute - time.Millisecond)
	if r := e.do(t, http.MethodGet, path, got.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("just before expiry: status %d, want 200", r.status)
	}
	e.clock.Advance(time.Millisecond)
	assertError(t, e.do(t, http.MethodGet, path, got.AccessToken, ""), 401, 401, got.AccessToken)
	assertError(t, e.do(t, http.MethodGet, "/data/v1/refresh", got.AccessToken, ""), 401, 401, got.AccessToken)
}

func TestExpireTokens(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	path := "/data/v1/consents?personalTaxId=" + testCPF
	if r := e.do(t, http.MethodGet, path, tok, ""); r.status != http.StatusOK {
		t.Fatalf("before ExpireTokens: status %d, want 200", r.status)
	}
	e.sim.ExpireTokens()
	assertError(t, e.do(t, http.MethodGet, path, tok, ""), 401, 401, tok)
	if r := e.do(t, http.MethodGet, path, e.token(t), ""); r.status != http.StatusOK {
		t.Errorf("with a new token: status %d, want 200", r.status)
	}
}

func TestEveryDataRouteNeedsAToken(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/data/v1/refresh", ""},
		{http.MethodPost, "/data/v1/links", `{}`},
		{http.MethodPost, "/data/v1/personal/institution-data", `{}`},
		{http.MethodPost, "/data/v1/business/institution-data", `{}`},
		{http.MethodPost, "/data/v1/personal/user-data", `{}`},
		{http.MethodPost, "/data/v1/business/user-data", `{}`},
		{http.MethodGet, "/data/v1/consents?personalTaxId=" + testCPF, ""},
		{http.MethodGet, "/data/v1/consents/abc", ""},
		{http.MethodDelete, "/data/v1/consents/abc/revoke", ""},
	}
	auths := []struct{ name, header string }{
		{"none", ""},
		{"unknown token", "Bearer not-a-token"},
		{"basic scheme", "Basic YWs6c2s="},
		{"bearer without token", "Bearer "},
	}
	e := newEnv(t, nil)
	for _, rt := range routes {
		for _, a := range auths {
			t.Run(rt.method+" "+rt.path+" "+a.name, func(t *testing.T) {
				res := e.doWith(t, rt.method, rt.path, rt.body, func(h http.Header) {
					h.Set("Content-Type", "application/json")
					if a.header != "" {
						h.Set("Authorization", a.header)
					}
				})
				assertError(t, res, 401, 401)
			})
		}
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{method: http.MethodGet, path: "/data/v1/nope", status: 404},
		{method: http.MethodGet, path: "/data/v2/consents", status: 404},
		{method: http.MethodPost, path: "/data/personal/institution-data", status: 404},
		{method: http.MethodGet, path: "/data/v1/consents/", status: 404},
		{method: http.MethodGet, path: "/data/v1/links/abc", status: 404},
		{method: http.MethodGet, path: "/data/v1/auth", status: 405, allow: "POST"},
		{method: http.MethodPost, path: "/data/v1/consents", status: 405, allow: "GET"},
		{method: http.MethodPost, path: "/data/v1/consents/abc/revoke", status: 405, allow: "DELETE"},
		{method: http.MethodPut, path: "/data/v1/links", status: 405, allow: "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := e.do(t, tc.method, tc.path, tok, "")
			assertError(t, res, tc.status, tc.status)
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestCreateLink(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	body := `{
		"personalTaxId": "12345678909",
		"email": "ana@example.com",
		"phone": "+5511987654321",
		"institutionCode": "260",
		"redirectURL": "https://app.example.com/back",
		"productsCallbackURL": {"all": "https://api.example.com/webhooks/klavi/reports"},
		"externalInfo": {"myTraceId": "trace-1", "nested": {"n": 1}}
	}`
	res := e.do(t, http.MethodPost, "/data/v1/links", tok, body)
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
	}
	assertKeys(t, res.body, "linkId", "linkURL", "linkToken", "expireIn")
	var got struct {
		LinkID    string      `json:"linkId"`
		LinkURL   string      `json:"linkURL"`
		LinkToken string      `json:"linkToken"`
		ExpireIn  json.Number `json:"expireIn"`
	}
	decode(t, res.body, &got)
	if !uuidRE.MatchString(got.LinkID) {
		t.Errorf("linkId = %q, want a UUID", got.LinkID)
	}
	if want := e.srv.URL + "/link/" + got.LinkID + "?v=" + got.LinkToken; got.LinkURL != want {
		t.Errorf("linkURL = %q, want %q", got.LinkURL, want)
	}
	if got.ExpireIn != "1800" || got.LinkToken == "" {
		t.Errorf("expireIn = %s, linkToken = %q; want 1800 and a token", got.ExpireIn, got.LinkToken)
	}

	l, ok := e.sim.Link(got.LinkID)
	if !ok {
		t.Fatalf("Link(%s) not stored", got.LinkID)
	}
	want := Link{
		ID: got.LinkID, Token: got.LinkToken, URL: got.LinkURL,
		PersonalTaxID: testCPF, Email: "ana@example.com", Phone: "+5511987654321",
		InstitutionCode: "260", RedirectURL: "https://app.example.com/back",
		ProductsCallbackURL: map[string]string{"all": "https://api.example.com/webhooks/klavi/reports"},
		ExternalInfo:        json.RawMessage(`{"myTraceId":"trace-1","nested":{"n":1}}`),
		CreatedAt:           e.clock.Now(), ExpiresAt: e.clock.Now().Add(30 * time.Minute),
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("stored link = %+v, want %+v", l, want)
	}
	if names := e.events.names(); !reflect.DeepEqual(names, []string{EventLinkCreated}) {
		t.Errorf("events = %v, want [link_created]", names)
	}
}

func TestCreateLinkAccepts(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty object", `{}`},
		{"alphanumeric CNPJ", `{"businessTaxId":"12ABC34501DE35"}`},
		{"numeric CNPJ", `{"businessTaxId":"11222333000181"}`},
		{"products and other", `{"productsCallbackURL":{"pf_checking_account":"https://x.example/c","other":"http://x.example/rest"}}`},
		{"other alone", `{"productsCallbackURL":{"other":"https://x.example/rest"}}`},
		{"app link", `{"appLink":"myapp://back","appRedirectURLKey":"k"}`},
		{"legacy app link and connection key", `{"applicationLink":"myapp://back","connectionKey":"ck"}`},
		{"charset in content type", `{"email":"a@b.co"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token(t)
			res := e.doWith(t, http.MethodPost, "/data/v1/links", tc.body, func(h http.Header) {
				h.Set("Content-Type", "application/json; charset=utf-8")
				h.Set("Authorization", "Bearer "+tok)
			})
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
			}
			if n := len(e.sim.Links()); n != 1 {
				t.Errorf("stored links = %d, want 1", n)
			}
		})
	}
}

func TestCreateLinkRejects(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		code   int
	}{
		{"productsCallbackUrl casing", `{"productsCallbackUrl":{"all":"https://x.example/r"}}`, 400, 400},
		{"redirectUrl casing", `{"redirectUrl":"https://x.example/back"}`, 400, 400},
		{"unknown field", `{"cpf":"12345678909"}`, 400, 400},
		{"masked CPF", `{"personalTaxId":"123.456.789-09"}`, 400, 400},
		{"masked CNPJ", `{"businessTaxId":"11.222.333/0001-81"}`, 400, 400},
		{"CPF check digit", `{"personalTaxId":"12345678900"}`, 400, 400},
		{"CPF of repeated digits", `{"personalTaxId":"11111111111"}`, 400, 400},
		{"CPF too short", `{"personalTaxId":"1234567890"}`, 400, 400},
		{"CNPJ check digit", `{"businessTaxId":"11222333000182"}`, 400, 400},
		{"alphanumeric CNPJ lower case", `{"businessTaxId":"12abc34501de35"}`, 400, 400},
		{"CPF as businessTaxId", `{"businessTaxId":"12345678909"}`, 400, 400},
		{"CNPJ as personalTaxId", `{"personalTaxId":"11222333000181"}`, 400, 400},
		{"both tax ids", `{"personalTaxId":"12345678909","businessTaxId":"11222333000181"}`, 400, 400},
		{"empty tax id", `{"personalTaxId":"12345678909","businessTaxId":""}`, 400, 400},
		{"null field", `{"email":null}`, 400, 400},
		{"tax id as number", `{"personalTaxId":12345678909}`, 400, 400},
		{"invalid phone", `{"phone":"(11) 98765-4321"}`, 400, 400},
		{"invalid email", `{"email":"Ana <ana@example.com>"}`, 400, 400},
		{"institution code lost zeros", `{"institutionCode":"1"}`, 400, 400},
		{"relative redirectURL", `{"redirectURL":"/back"}`, 400, 400},
		{"externalInfo array", `{"externalInfo":["a"]}`, 400, 400},
		{"appLink without key", `{"appLink":"myapp://back"}`, 400, 400},
		{"body is an array", `[]`, 400, 400},
		{"body is malformed", `{"email":`, 400, 400},
		{"data after object", `{} {}`, 400, 400},
		{"all with other", `{"productsCallbackURL":{"all":"https://x.example/a","other":"https://x.example/o"}}`, 416, 4006},
		{"all with product", `{"productsCallbackURL":{"all":"https://x.example/a","pf_credit_card":"https://x.example/c"}}`, 416, 4006},
		{"unknown product key", `{"productsCallbackURL":{"pf_nope":"https://x.example/a"}}`, 416, 4006},
		{"relative callback", `{"productsCallbackURL":{"all":"/reports"}}`, 416, 4006},
		{"ftp callback", `{"productsCallbackURL":{"all":"ftp://x.example/reports"}}`, 416, 4006},
		{"callback as string", `{"productsCallbackURL":"https://x.example/reports"}`, 416, 4006},
		{"empty callback object", `{"productsCallbackURL":{}}`, 416, 4006},
		{"callback value not a string", `{"productsCallbackURL":{"all":1}}`, 416, 4006},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token(t)
			assertError(t, e.do(t, http.MethodPost, "/data/v1/links", tok, tc.body), tc.status, tc.code, "12abc34501de35")
			if n := len(e.sim.Links()); n != 0 {
				t.Errorf("stored links = %d, want 0", n)
			}
			if names := e.events.names(); len(names) != 0 {
				t.Errorf("events = %v, want none", names)
			}
		})
	}
}

func TestCreateLinkBodyLimits(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)

	t.Run("empty body", func(t *testing.T) {
		assertError(t, e.do(t, http.MethodPost, "/data/v1/links", tok, ""), 415, 415)
		res := e.doWith(t, http.MethodPost, "/data/v1/links", "", func(h http.Header) {
			h.Set("Content-Type", "application/json")
			h.Set("Authorization", "Bearer "+tok)
		})
		assertError(t, res, 400, 400)
	})
	t.Run("text/plain", func(t *testing.T) {
		res := e.doWith(t, http.MethodPost, "/data/v1/links", `{}`, func(h http.Header) {
			h.Set("Content-Type", "text/plain")
			h.Set("Authorization", "Bearer "+tok)
		})
		assertError(t, res, 415, 415)
	})
	t.Run("too large", func(t *testing.T) {
		big := `{"externalInfo":{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}}`
		assertError(t, e.do(t, http.MethodPost, "/data/v1/links", tok, big), 413, 413)
	})
	if n := len(e.sim.Links()); n != 0 {
		t.Errorf("stored links = %d, want 0", n)
	}
}

func TestLinkURLFromRequestHost(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.SetPublicURL("")
	tok := e.token(t)
	id := e.createLink(t, tok, `{}`)
	l, _ := e.sim.Link(id)
	if want := e.srv.URL + "/link/" + id + "?v="; !strings.HasPrefix(l.URL, want) {
		t.Errorf("linkURL = %q, want prefix %q", l.URL, want)
	}
}

func TestReportRequest(t *testing.T) {
	tests := []struct {
		name, path, taxField, taxID, body string
		want                              ReportRequest
	}{
		{
			name: "personal institution", path: "/data/v1/personal/institution-data",
			taxField: "personalTaxId", taxID: testCPF,
			body: `{"taxId":"12345678909","institutionCode":"260","products":["all"],
				"productsCallbackURL":{"all":"https://api.example.com/r"},"externalInfo":{"a":"b"}}`,
			want: ReportRequest{
				Level: LevelInstitution, PersonType: PersonPersonal, TaxID: testCPF, InstitutionCode: "260",
				Products: []string{"all"}, ProductsCallbackURL: map[string]string{"all": "https://api.example.com/r"},
				ExternalInfo: json.RawMessage(`{"a":"b"}`),
			},
		},
		{
			name: "personal user", path: "/data/v1/personal/user-data",
			taxField: "personalTaxId", taxID: testCPF,
			body: `{"taxId":"12345678909","products":["pf_checking_account","pf_credit_card"]}`,
			want: ReportRequest{
				Level: LevelUser, PersonType: PersonPersonal, TaxID: testCPF,
				Products: []string{"pf_checking_account", "pf_credit_card"},
			},
		},
		{
			name: "business institution", path: "/data/v1/business/institution-data",
			taxField: "businessTaxId", taxID: testCNPJ2,
			body: `{"taxId":"12ABC34501DE35","institutionCode":"260","products":["pj_categorized_checking_l3"]}`,
			want: ReportRequest{
				Level: LevelInstitution, PersonType: PersonBusiness, TaxID: testCNPJ2, InstitutionCode: "260",
				Products: []string{"pj_categorized_checking_l3"},
			},
		},
		{
			name: "business user", path: "/data/v1/business/user-data",
			taxField: "businessTaxId", taxID: testCNPJ,
			body: `{"taxId":"11222333000181","products":["all"]}`,
			want: ReportRequest{
				Level: LevelUser, PersonType: PersonBusiness, TaxID: testCNPJ, Products: []string{"all"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token(t)
			c := e.authorisedConsent(t, tok, tc.taxField, tc.taxID, "260")
			res := e.do(t, http.MethodPost, tc.path, tok, tc.body)
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
			}
			assertKeys(t, res.body, "requestId", "message")
			var got reportResponse
			decode(t, res.body, &got)
			if got.Message != "ok" || got.RequestID == "" {
				t.Errorf("answer = %+v, want a requestId and message ok", got)
			}
			rrs := e.sim.ReportRequests()
			if len(rrs) != 1 {
				t.Fatalf("report requests = %d, want 1", len(rrs))
			}
			want := tc.want
			want.ID = got.RequestID
			want.MatchedConsentIDs = []string{c.ID}
			want.CreatedAt = e.clock.Now()
			if !reflect.DeepEqual(rrs[0], want) {
				t.Errorf("report request = %+v, want %+v", rrs[0], want)
			}
			wantEvents := []string{EventLinkCreated, EventConsentAuthorised, EventProductRequestReceived}
			if names := e.events.names(); !reflect.DeepEqual(names, wantEvents) {
				t.Errorf("events = %v, want %v", names, wantEvents)
			}
		})
	}
}

func TestReportRequestScoping(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	first := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	second := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "001")

	tests := []struct {
		name, path, body string
		matched          []string
	}{
		{"user level takes every consent", "/data/v1/personal/user-data",
			`{"taxId":"12345678909","products":["all"]}`, []string{first.ID, second.ID}},
		{"institution", "/data/v1/personal/institution-data",
			`{"taxId":"12345678909","institutionCode":"001","products":["all"]}`, []string{second.ID}},
		{"link", "/data/v1/personal/user-data",
			`{"taxId":"12345678909","linkId":"` + first.LinkID + `","products":["all"]}`, []string{first.ID}},
		{"consent ids", "/data/v1/personal/user-data",
			`{"taxId":"12345678909","consentIds":["` + second.ID + `"],"products":["all"]}`, []string{second.ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, http.MethodPost, tc.path, tok, tc.body)
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
			}
			var got reportResponse
			decode(t, res.body, &got)
			for _, rr := range e.sim.ReportRequests() {
				if rr.ID == got.RequestID && !reflect.DeepEqual(rr.MatchedConsentIDs, tc.matched) {
					t.Errorf("matched consents = %v, want %v", rr.MatchedConsentIDs, tc.matched)
				}
			}
		})
	}
}

func TestReportRequestRejects(t *testing.T) {
	const (
		personal     = "/data/v1/personal/institution-data"
		business     = "/data/v1/business/institution-data"
		personalUser = "/data/v1/personal/user-data"
	)
	tests := []struct {
		name, path, body string
		status, code     int
	}{
		{"missing products", personal, `{"taxId":"12345678909","institutionCode":"260"}`, 416, 4005},
		{"empty products", personal, `{"taxId":"12345678909","institutionCode":"260","products":[]}`, 416, 4005},
		{"null products", personal, `{"taxId":"12345678909","institutionCode":"260","products":null}`, 416, 4005},
		{"unknown product", personal, `{"taxId":"12345678909","institutionCode":"260","products":["pf_nope"]}`, 416, 4002},
		{"legacy product name", personal, `{"taxId":"12345678909","institutionCode":"260","products":["loans"]}`, 416, 4002},
		{"pj product on personal", personal, `{"taxId":"12345678909","institutionCode":"260","products":["pj_loans"]}`, 416, 4002},
		{"pf product on business", business, `{"taxId":"11222333000181","institutionCode":"260","products":["pf_loans"]}`, 416, 4002},
		{"products not an array", personal, `{"taxId":"12345678909","institutionCode":"260","products":"all"}`, 400, 400},
		{"institutionId", personal, `{"taxId":"12345678909","institutionId":"260","products":["all"]}`, 400, 400},
		{"consentId", personal, `{"taxId":"12345678909","institutionCode":"260","consentId":"c","products":["all"]}`, 400, 400},
		{"personalTaxId instead of taxId", personal, `{"personalTaxId":"12345678909","institutionCode":"260","products":["all"]}`, 400, 400},
		{"missing taxId", personal, `{"institutionCode":"260","products":["all"]}`, 400, 400},
		{"masked taxId", personal, `{"taxId":"123.456.789-09","institutionCode":"260","products":["all"]}`, 400, 400},
		{"CNPJ on personal", personal, `{"taxId":"11222333000181","institutionCode":"260","products":["all"]}`, 400, 400},
		{"CPF on business", business, `{"taxId":"12345678909","institutionCode":"260","products":["all"]}`, 400, 400},
		{"missing institutionCode", personal, `{"taxId":"12345678909","products":["all"]}`, 400, 400},
		{"institutionCode on user-data", personalUser, `{"taxId":"12345678909","institutionCode":"260","products":["all"]}`, 400, 400},
		{"empty consentIds", personal, `{"taxId":"12345678909","institutionCode":"260","consentIds":[],"products":["all"]}`, 400, 400},
		{"bad callback", personal, `{"taxId":"12345678909","institutionCode":"260","products":["all"],"productsCallbackURL":{"all":"x"}}`, 416, 4006},
		{"no consent for the tax id", personal, `{"taxId":"25872252137","institutionCode":"260","products":["all"]}`, 416, 4001},
		{"other institution", personal, `{"taxId":"12345678909","institutionCode":"001","products":["all"]}`, 416, 4001},
		{"unknown linkId", personal, `{"taxId":"12345678909","institutionCode":"260","linkId":"nope","products":["all"]}`, 416, 4001},
		{"unknown consent id", personal, `{"taxId":"12345678909","institutionCode":"260","consentIds":["nope"],"products":["all"]}`, 416, 4001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token(t)
			e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
			e.authorisedConsent(t, tok, "businessTaxId", testCNPJ, "260")
			assertError(t, e.do(t, http.MethodPost, tc.path, tok, tc.body), tc.status, tc.code, "123.456.789-09")
			if n := len(e.sim.ReportRequests()); n != 0 {
				t.Errorf("report requests = %d, want 0", n)
			}
		})
	}
}

func TestReportRequestNeedsALiveConsent(t *testing.T) {
	const body = `{"taxId":"12345678909","institutionCode":"260","products":["all"]}`
	tests := []struct {
		name  string
		spoil func(t *testing.T, e *env, c Consent)
	}{
		{"revoked", func(t *testing.T, e *env, c Consent) {
			if _, err := e.sim.SetConsentStatus(c.ID, klavi.ConsentRevoked); err != nil {
				t.Fatalf("SetConsentStatus: %v", err)
			}
		}},
		{"awaiting authorisation", func(t *testing.T, e *env, c Consent) {
			if _, err := e.sim.SetConsentStatus(c.ID, klavi.ConsentAwaitingAuthorisation); err != nil {
				t.Fatalf("SetConsentStatus: %v", err)
			}
		}},
		{"past expireAt", func(_ *testing.T, e *env, c Consent) {
			e.clock.Advance(c.ExpireAt.Sub(e.clock.Now()))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.authorisedConsent(t, e.token(t), "personalTaxId", testCPF, "260")
			tc.spoil(t, e, c)
			assertError(t, e.do(t, http.MethodPost, "/data/v1/personal/institution-data", e.token(t), body), 416, 4001)
		})
	}
}

func TestListConsents(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	first := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	e.clock.Advance(time.Second)
	second := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "001")
	e.authorisedConsent(t, tok, "personalTaxId", testCPF2, "260")

	res := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF, tok, "")
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
	}
	var raw []json.RawMessage
	decode(t, res.body, &raw)
	if len(raw) != 2 {
		t.Fatalf("consents = %d, want 2; body %s", len(raw), res.body)
	}
	assertKeys(t, raw[0], "consentId", "linkId", "externalTrackId", "personalTaxId", "businessTaxId",
		"institutionCode", "status", "permissionsApply", "permissionsGranted", "expireAt", "createdAt", "updatedAt")

	var got []consentJSON
	decode(t, res.body, &got)
	created := "2025-03-01T12:00:00.000Z"
	want := consentJSON{
		ConsentID: first.ID, LinkID: first.LinkID, ExternalTrackID: first.ExternalTrackID,
		PersonalTaxID: testCPF, BusinessTaxID: "", InstitutionCode: "260", Status: "AUTHORISED",
		PermissionsApply:   []string{"ACCOUNTS_ALL", "CREDIT_CARDS_ALL", "CREDIT_OPERATIONS_ALL", "REGISTRATION_ALL", "INVESTMENTS_ALL"},
		PermissionsGranted: []string{"ACCOUNTS_ALL", "CREDIT_CARDS_ALL", "CREDIT_OPERATIONS_ALL", "REGISTRATION_ALL", "INVESTMENTS_ALL"},
		ExpireAt:           "2026-03-01T23:59:59.999Z", CreatedAt: created, UpdatedAt: created,
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("first consent = %+v, want %+v", got[0], want)
	}
	if got[1].ConsentID != second.ID || got[1].CreatedAt != "2025-03-01T12:00:01.000Z" {
		t.Errorf("second consent = %+v, want id %s created a second later", got[1], second.ID)
	}
	if !strings.Contains(string(res.body), `"businessTaxId":""`) {
		t.Errorf("body %s lacks businessTaxId as an empty string", res.body)
	}

	t.Run("by link", func(t *testing.T) {
		res := e.do(t, http.MethodGet, "/data/v1/consents?personalTaxId="+testCPF+"&linkId="+second.LinkID, tok, "")
		var got []consentJSON
		decode(t, res.body, &got)
		if len(got) != 1 || got[0].ConsentID != second.ID {
			t.Errorf("consents = %+v, want only %s", got, second.ID)
		}
	})
	t.Run("none", func(t *testing.T) {
		res := e.do(t, http.MethodGet, "/data/v1/consents?businessTaxId="+testCNPJ, tok, "")
		if res.status != http.StatusOK || string(res.body) != "[]" {
			t.Errorf("answer = %d %s, want 200 []", res.status, res.body)
		}
	})
}

func TestListConsentsRejects(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	for _, q := range []string{
		"",
		"?linkId=abc",
		"?personalTaxId=" + testCPF + "&businessTaxId=" + testCNPJ,
		"?personalTaxId=123.456.789-09",
		"?personalTaxId=" + testCNPJ,
		"?businessTaxId=" + testCPF,
		"?personalTaxID=" + testCPF,
		"?personalTaxId=" + testCPF + "&personalTaxId=" + testCPF2,
		"?personalTaxId=" + testCPF + "&linkId=",
	} {
		t.Run(q, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodGet, "/data/v1/consents"+q, tok, ""), 400, 400, "123.456.789-09")
		})
	}
}

func TestGetAndRevokeConsent(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	c := e.authorisedConsent(t, tok, "businessTaxId", testCNPJ, "033")

	res := e.do(t, http.MethodGet, "/data/v1/consents/"+c.ID, tok, "")
	if res.status != http.StatusOK {
		t.Fatalf("get: status %d, want 200; body %s", res.status, res.body)
	}
	var got consentJSON
	decode(t, res.body, &got)
	if got.ConsentID != c.ID || got.Status != string(klavi.ConsentAuthorised) || got.BusinessTaxID != testCNPJ || got.PersonalTaxID != "" {
		t.Errorf("consent = %+v, want %s AUTHORISED for the CNPJ", got, c.ID)
	}
	assertError(t, e.do(t, http.MethodGet, "/data/v1/consents/nope", tok, ""), 404, 404)

	e.clock.Advance(time.Minute)
	for range 2 { // revoking twice is fine
		res = e.do(t, http.MethodDelete, "/data/v1/consents/"+c.ID+"/revoke", tok, "")
		if res.status != http.StatusOK || string(res.body) != `{"message":"ok"}` {
			t.Errorf("revoke: %d %s, want 200 {\"message\":\"ok\"}", res.status, res.body)
		}
	}
	after, _ := e.sim.Consent(c.ID)
	if after.Status != klavi.ConsentRevoked || !after.UpdatedAt.Equal(e.clock.Now()) {
		t.Errorf("after revoke: status %s updated %v, want REVOKED at %v", after.Status, after.UpdatedAt, e.clock.Now())
	}
	assertError(t, e.do(t, http.MethodDelete, "/data/v1/consents/nope/revoke", tok, ""), 404, 404)

	rejected := e.authorisedConsent(t, tok, "businessTaxId", testCNPJ, "001")
	if _, err := e.sim.SetConsentStatus(rejected.ID, klavi.ConsentRejected); err != nil {
		t.Fatalf("SetConsentStatus: %v", err)
	}
	assertError(t, e.do(t, http.MethodDelete, "/data/v1/consents/"+rejected.ID+"/revoke", tok, ""), 416, 4001)

	want := []string{EventLinkCreated, EventConsentAuthorised, EventConsentRevoked,
		EventLinkCreated, EventConsentAuthorised, EventConsentRejected}
	if names := e.events.names(); !reflect.DeepEqual(names, want) {
		t.Errorf("events = %v, want %v", names, want)
	}
}

// The revoke endpoint takes only the consent id in its path: a body or a
// query string means the client is calling something else, and must not
// revoke anything.
func TestRevokeRejectsBodyAndQuery(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	c := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	path := "/data/v1/consents/" + c.ID + "/revoke"

	assertError(t, e.do(t, http.MethodDelete, path, tok, `{"reason":"customer asked"}`), 400, 400)
	assertError(t, e.do(t, http.MethodDelete, path+"?personalTaxId="+testCPF, tok, ""), 400, 400)
	assertError(t, e.do(t, http.MethodDelete, path, "", ""), 401, 401)
	if got, _ := e.sim.Consent(c.ID); got.Status != klavi.ConsentAuthorised {
		t.Fatalf("after rejected revokes: status %s, want AUTHORISED", got.Status)
	}
	if res := e.do(t, http.MethodDelete, path, tok, ""); res.status != http.StatusOK {
		t.Fatalf("revoke: %d %s, want 200", res.status, res.body)
	}
	if got, _ := e.sim.Consent(c.ID); got.Status != klavi.ConsentRevoked {
		t.Errorf("after revoke: status %s, want REVOKED", got.Status)
	}
	if want := []string{EventLinkCreated, EventConsentAuthorised, EventConsentRevoked}; !reflect.DeepEqual(e.events.names(), want) {
		t.Errorf("events = %v, want %v", e.events.names(), want)
	}
}
