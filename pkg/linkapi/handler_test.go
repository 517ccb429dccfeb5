package linkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/access"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeKlavi records the link requests it gets and answers with fn.
type fakeKlavi struct {
	got []klavi.CreateLinkRequest
	fn  func(klavi.CreateLinkRequest) (*klavi.Link, error)
}

func (f *fakeKlavi) CreateLink(_ context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error) {
	f.got = append(f.got, r)
	if f.fn != nil {
		return f.fn(r)
	}
	return &klavi.Link{LinkID: "link-1", LinkURL: "https://conecte-sandbox.klavi.ai/path?v=tok", LinkToken: "tok", ExpiresIn: 30 * time.Minute}, nil
}

// failingStore fails writes, to show a storage outage is a 503.
type failingStore struct{ linkStore }

func (failingStore) CreateLink(context.Context, linkstore.Link) error {
	return errors.New("dynamodb: ProvisionedThroughputExceededException")
}

type env struct {
	h     *Handler
	k     *fakeKlavi
	store *linkstoretest.MemoryStore
	logs  *bytes.Buffer
	rec   *metricstest.Capture
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{k: &fakeKlavi{}, store: linkstoretest.NewMemory(), logs: &bytes.Buffer{}, rec: metricstest.NewCapture("links-api")}
	e.h = New(e.k, e.store, nil, Config{
		AllowedRedirectHosts: []string{"app.example.com", "*.example.org"},
		Logger:               slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics:              e.rec.Recorder,
		Now:                  func() time.Time { return now },
	})
	return e
}

func loadEvent(t *testing.T, name string) httpapi.Request {
	t.Helper()
	raw, err := os.ReadFile("../../events/" + name)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	var req httpapi.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	return req
}

func postWith(t *testing.T, body string) httpapi.Request {
	t.Helper()
	req := loadEvent(t, "links-api-post.json")
	req.Body = body
	return req
}

func (e *env) do(t *testing.T, req httpapi.Request) (httpapi.Response, map[string]any) {
	t.Helper()
	resp, err := e.h.Handle(t.Context(), req)
	if err != nil {
		t.Fatalf("Handle returned error %v; handlers answer with a status instead", err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("response %q is not JSON: %v", resp.Body, err)
	}
	return resp, body
}

func code(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestCreateFromFixture(t *testing.T) {
	e := newEnv(t)
	resp, body := e.do(t, loadEvent(t, "links-api-post.json"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status = %d (%s), want 201", resp.StatusCode, resp.Body)
	}
	want := map[string]any{"linkId": "link-1", "linkURL": "https://conecte-sandbox.klavi.ai/path?v=tok", "linkToken": "tok", "expiresAt": "2026-11-24T12:30:00Z"}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("201 body (-want +got):\n%s", diff)
	}
	if len(e.k.got) != 1 {
		t.Fatalf("Klavi calls = %d, want 1", len(e.k.got))
	}
	got := e.k.got[0]
	wantReq := klavi.CreateLinkRequest{
		PersonalTaxID:       "52998224725",
		Email:               "maria@example.com",
		Phone:               "+5511987654321",
		RedirectURL:         "https://app.example.com/klavi/return",
		ProductsCallbackURL: map[string]string{"all": "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"},
		ExternalInfo:        json.RawMessage(`{"applicationId":"app-42"}`),
	}
	if diff := cmp.Diff(wantReq, got); diff != "" {
		t.Errorf("Klavi request (-want +got):\n%s", diff)
	}
	l, err := e.store.GetLink(t.Context(), "link-1")
	if err != nil {
		t.Fatalf("stored link: %v", err)
	}
	if l.TaxID != "52998224725" || l.TaxIDType != "personal" || l.Origin != "api" || l.ReportWebhookURL != wantReq.ProductsCallbackURL["all"] {
		t.Errorf("stored link: taxIdType %q origin %q webhook %q", l.TaxIDType, l.Origin, l.ReportWebhookURL)
	}
	if got := e.rec.Sum("LinksCreated", nil); got != 1 {
		t.Errorf("LinksCreated = %v, want 1", got)
	}
}

func TestCreateBusinessAlphanumericCNPJ(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.do(t, postWith(t, `{"businessTaxId":"12.ABC.345/01DE-35"}`))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status = %d (%s), want 201", resp.StatusCode, resp.Body)
	}
	if got := e.k.got[0].BusinessTaxID; got != "12ABC34501DE35" {
		t.Errorf("businessTaxId sent = %q, want the bare form", got)
	}
	if e.k.got[0].PersonalTaxID != "" {
		t.Errorf("personalTaxId sent for a CNPJ")
	}
}

func TestCreateWebhookURL(t *testing.T) {
	t.Run("stage prefix", func(t *testing.T) {
		e := newEnv(t)
		req := postWith(t, `{}`)
		req.RequestContext.Stage = "prod"
		e.do(t, req)
		if got := e.k.got[0].ProductsCallbackURL["all"]; got != "https://abc123.execute-api.sa-east-1.amazonaws.com/prod/webhooks/klavi/reports" {
			t.Errorf("callback = %q", got)
		}
	})
	t.Run("configured override", func(t *testing.T) {
		e := newEnv(t)
		e.h.cfg.ReportWebhookURL = "https://hooks.example.com/klavi/reports"
		e.do(t, postWith(t, `{}`))
		if diff := cmp.Diff(map[string]string{"all": "https://hooks.example.com/klavi/reports"}, e.k.got[0].ProductsCallbackURL); diff != "" {
			t.Errorf("callback (-want +got):\n%s", diff)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name string
		body string
		code string
	}{
		{"not json", `{`, "invalid_json"},
		{"array", `[]`, "invalid_json"},
		{"two objects", `{}{}`, "invalid_json"},
		{"wrong type", `{"email":42}`, "invalid_field_type"},
		{"unknown field", `{"productsCallbackUrl":{"all":"https://evil.example.com"}}`, "unknown_field"},
		{"caller sets callback", `{"productsCallbackURL":{"all":"https://evil.example.com"}}`, "unknown_field"},
		{"both tax ids", `{"personalTaxId":"52998224725","businessTaxId":"11222333000181"}`, "conflicting_tax_ids"},
		{"cpf check digits", `{"personalTaxId":"529.982.247-26"}`, "invalid_tax_id"},
		{"cpf repeated", `{"personalTaxId":"111.111.111-11"}`, "invalid_tax_id"},
		{"cpf length", `{"personalTaxId":"5299822472"}`, "invalid_tax_id"},
		{"cnpj as cpf", `{"personalTaxId":"11222333000181"}`, "invalid_tax_id"},
		{"cnpj check digits", `{"businessTaxId":"11.222.333/0001-82"}`, "invalid_tax_id"},
		{"cnpj lowercase", `{"businessTaxId":"12abc34501de35"}`, "invalid_tax_id"},
		{"email", `{"email":"maria at example"}`, "invalid_email"},
		{"email display name", `{"email":"Maria <maria@example.com>"}`, "invalid_email"},
		{"phone letters", `{"phone":"+55 11 9876-ABCD"}`, "invalid_phone"},
		{"phone foreign", `{"phone":"+1 415 555 0100"}`, "invalid_phone"},
		{"phone short", `{"phone":"98765-4321"}`, "invalid_phone"},
		{"phone mobile without 9", `{"phone":"11 87654-3210"}`, "invalid_phone"},
		{"institution letters", `{"institutionCode":"ab1"}`, "invalid_institution_code"},
		{"institution number", `{"institutionCode":260}`, "invalid_field_type"},
		{"institution short", `{"institutionCode":"33"}`, "invalid_institution_code"},
		{"redirect http", `{"redirectURL":"http://app.example.com/back"}`, "invalid_redirect_url"},
		{"redirect relative", `{"redirectURL":"/back"}`, "invalid_redirect_url"},
		{"redirect userinfo", `{"redirectURL":"https://app.example.com@evil.com/"}`, "invalid_redirect_url"},
		{"redirect other host", `{"redirectURL":"https://evil.com/back"}`, "redirect_host_not_allowed"},
		{"redirect suffix trick", `{"redirectURL":"https://evilapp.example.com.evil.com/"}`, "redirect_host_not_allowed"},
		{"external info array", `{"externalInfo":[1,2]}`, "invalid_external_info"},
		{"external info string", `{"externalInfo":"x"}`, "invalid_external_info"},
		{"external info too large", `{"externalInfo":{"pad":"` + strings.Repeat("x", 3000) + `"}}`, "external_info_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp, body := e.do(t, postWith(t, tc.body))
			if resp.StatusCode != http.StatusBadRequest || code(body) != tc.code {
				t.Errorf("answer = %d %s, want 400 %s", resp.StatusCode, resp.Body, tc.code)
			}
			if len(e.k.got) != 0 {
				t.Errorf("invalid body reached Klavi")
			}
		})
	}
}

func TestCreateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, r klavi.CreateLinkRequest)
	}{
		{"empty body object", `{}`, func(t *testing.T, r klavi.CreateLinkRequest) {}},
		{"bare cpf", `{"personalTaxId":"52998224725"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.PersonalTaxID != "52998224725" {
				t.Errorf("personalTaxId = %q", r.PersonalTaxID)
			}
		}},
		{"landline", `{"phone":"(11) 3456-7890"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.Phone != "+551134567890" {
				t.Errorf("phone = %q, want +551134567890", r.Phone)
			}
		}},
		{"trunk prefix", `{"phone":"0 21 99876-5432"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.Phone != "+5521998765432" {
				t.Errorf("phone = %q, want +5521998765432", r.Phone)
			}
		}},
		{"country code without plus", `{"phone":"5511987654321"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.Phone != "+5511987654321" {
				t.Errorf("phone = %q", r.Phone)
			}
		}},
		{"wildcard redirect", `{"redirectURL":"https://pay.example.org/x?y=1"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.RedirectURL != "https://pay.example.org/x?y=1" {
				t.Errorf("redirectURL = %q", r.RedirectURL)
			}
		}},
		{"institution", `{"institutionCode":"033"}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.InstitutionCode != "033" {
				t.Errorf("institutionCode = %q", r.InstitutionCode)
			}
		}},
		{"external info compacted", `{"externalInfo": { "a" : [1, 2] } }`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if string(r.ExternalInfo) != `{"a":[1,2]}` {
				t.Errorf("externalInfo = %s", r.ExternalInfo)
			}
		}},
		{"null external info", `{"externalInfo":null}`, func(t *testing.T, r klavi.CreateLinkRequest) {
			if r.ExternalInfo != nil {
				t.Errorf("externalInfo = %s, want none", r.ExternalInfo)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp, _ := e.do(t, postWith(t, tc.body))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status = %d (%s), want 201", resp.StatusCode, resp.Body)
			}
			tc.check(t, e.k.got[0])
		})
	}
}

func TestCreateTransportRules(t *testing.T) {
	t.Run("content type", func(t *testing.T) {
		e := newEnv(t)
		req := postWith(t, `{}`)
		req.Headers["content-type"] = "text/plain"
		resp, body := e.do(t, req)
		if resp.StatusCode != http.StatusUnsupportedMediaType || code(body) != "unsupported_media_type" {
			t.Errorf("answer = %d %s, want 415", resp.StatusCode, resp.Body)
		}
	})
	t.Run("too large", func(t *testing.T) {
		e := newEnv(t)
		resp, body := e.do(t, postWith(t, `{"email":"`+strings.Repeat("a", maxBodyBytes)+`@example.com"}`))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || code(body) != "body_too_large" {
			t.Errorf("answer = %d %s, want 413", resp.StatusCode, resp.Body)
		}
	})
	t.Run("method", func(t *testing.T) {
		e := newEnv(t)
		req := postWith(t, `{}`)
		req.RouteKey = "DELETE /links"
		resp, _ := e.do(t, req)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.StatusCode)
		}
	})
}

func TestCreateKlaviFailures(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"bad request", &klavi.APIError{HTTPStatus: 400, Message: "Invalid phone"}, http.StatusBadRequest, "klavi_rejected_request"},
		{"institution", &klavi.APIError{HTTPStatus: 416, StatusCode: 4004}, http.StatusBadRequest, "klavi_rejected_request"},
		{"rate limited", &klavi.APIError{HTTPStatus: 429}, http.StatusServiceUnavailable, "klavi_busy"},
		{"server", &klavi.APIError{HTTPStatus: 502}, http.StatusBadGateway, "klavi_error"},
		{"unauthorized", &klavi.APIError{HTTPStatus: 401}, http.StatusBadGateway, "klavi_error"},
		{"timeout", fmt.Errorf("POST /data/v1/links: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "klavi_unavailable"},
		{"token source down", errors.New("read token secret: throttled"), http.StatusServiceUnavailable, "klavi_unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.k.fn = func(klavi.CreateLinkRequest) (*klavi.Link, error) { return nil, tc.err }
			resp, body := e.do(t, postWith(t, `{"personalTaxId":"52998224725"}`))
			if resp.StatusCode != tc.status || code(body) != tc.code {
				t.Errorf("answer = %d %s, want %d %s", resp.StatusCode, resp.Body, tc.status, tc.code)
			}
			if strings.Contains(resp.Body, "Invalid phone") || strings.Contains(resp.Body, "throttled") {
				t.Errorf("response echoes the internal error: %s", resp.Body)
			}
		})
	}
}

func TestCreateStoreFailure(t *testing.T) {
	k := &fakeKlavi{}
	h := New(k, failingStore{}, nil, Config{Now: func() time.Time { return now }})
	resp, err := h.Handle(t.Context(), postWith(t, `{}`))
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(resp.Body, "storage_unavailable") {
		t.Errorf("answer = %d %v %s, want 503 storage_unavailable", resp.StatusCode, err, resp.Body)
	}
	if strings.Contains(resp.Body, "Provisioned") {
		t.Errorf("response leaks the store error: %s", resp.Body)
	}
}

func TestGetView(t *testing.T) {
	e := newEnv(t)
	e.do(t, loadEvent(t, "links-api-post.json"))
	get := loadEvent(t, "links-api-get.json")
	get.PathParameters["linkId"] = "link-1"
	resp, body := e.do(t, get)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	want := map[string]any{
		"linkId": "link-1", "status": "CREATED", "taxIdType": "personal", "taxIdMasked": "***.982.247-**",
		"consents": []any{}, "reportRequests": []any{}, "reports": []any{},
		"createdAt": "2026-11-24T12:00:00Z", "updatedAt": "2026-11-24T12:00:00Z",
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
	if strings.Contains(resp.Body, "52998224725") {
		t.Errorf("view leaks the tax id: %s", resp.Body)
	}
}

func TestGetUnknownAndInvalid(t *testing.T) {
	for _, id := range []string{"4437b139-8a16-11ee-b636-487b6bad036a", "../etc", strings.Repeat("a", 65), "a b"} {
		e := newEnv(t)
		get := loadEvent(t, "links-api-get.json")
		get.PathParameters["linkId"] = id
		resp, body := e.do(t, get)
		if resp.StatusCode != http.StatusNotFound || code(body) != "link_not_found" {
			t.Errorf("GET %q = %d %s, want 404 link_not_found", id, resp.StatusCode, resp.Body)
		}
	}
}

func TestLogsCarryNoPersonalData(t *testing.T) {
	e := newEnv(t)
	e.do(t, loadEvent(t, "links-api-post.json"))
	e.do(t, postWith(t, `{"personalTaxId":"529.982.247-26","phone":"11 98765-4321"}`))
	e.k.fn = func(klavi.CreateLinkRequest) (*klavi.Link, error) { return nil, &klavi.APIError{HTTPStatus: 500} }
	e.do(t, postWith(t, `{"personalTaxId":"52998224725","email":"maria@example.com"}`))
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, pii := range []string{"52998224725", "529.982.247", "maria@example.com", "98765-4321", "987654321", "linkToken", "v=tok"} {
		if strings.Contains(logs, pii) {
			t.Errorf("logs contain %q:\n%s", pii, logs)
		}
	}
}

func TestNormalisePhone(t *testing.T) {
	good := map[string]string{
		"+55 (11) 98765-4321": "+5511987654321",
		"11987654321":         "+5511987654321",
		"(21) 2345-6789":      "+552123456789",
		"+55 21 2345.6789":    "+552123456789",
	}
	for in, want := range good {
		got, err := NormalisePhone(in)
		if err != nil || got != want {
			t.Errorf("NormalisePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "+", "+55", "+55 01 98765-4321", "+55 11 88765-4321x", "11 1234-5678", "+44 20 7946 0958", "119876543210"} {
		if got, err := NormalisePhone(in); err == nil {
			t.Errorf("NormalisePhone(%q) = %q, want error", in, got)
		}
	}
}

func TestLoopbackRedirectOnlyWhenAllowed(t *testing.T) {
	body := `{"redirectURL":"http://127.0.0.1:8080/done"}`
	e := newEnv(t)
	e.h.cfg.AllowedRedirectHosts = []string{"127.0.0.1"}
	resp, b := e.do(t, postWith(t, body))
	if resp.StatusCode != http.StatusBadRequest || code(b) != "invalid_redirect_url" {
		t.Errorf("http loopback without the dev switch = %d %s, want 400 invalid_redirect_url", resp.StatusCode, resp.Body)
	}
	e.h.cfg.AllowLoopbackRedirect = true
	if resp, _ := e.do(t, postWith(t, body)); resp.StatusCode != http.StatusCreated {
		t.Errorf("http loopback with the dev switch = %d %s, want 201", resp.StatusCode, resp.Body)
	}
	if resp, b := e.do(t, postWith(t, `{"redirectURL":"http://app.example.com/done"}`)); resp.StatusCode != http.StatusBadRequest || code(b) != "invalid_redirect_url" {
		t.Errorf("http non-loopback with the dev switch = %d, want 400", resp.StatusCode)
	}
}

func TestCreateStoresOwner(t *testing.T) {
	tests := []struct {
		name      string
		policy    access.Policy
		auth      *events.APIGatewayV2HTTPRequestContextAuthorizerDescription // nil keeps the fixture's
		wantOwner string
	}{
		{name: "fixture's jwt sub", wantOwner: "user-123"},
		{name: "other jwt sub", auth: jwtAuth(map[string]string{"sub": "user-a"}), wantOwner: "user-a"},
		{name: "client_id claim", policy: access.Policy{OwnerClaim: "client_id"},
			auth: jwtAuth(map[string]string{"sub": "user-a", "client_id": "machine-9"}), wantOwner: "machine-9"},
		{name: "iam session stores its role", auth: iamAuth("arn:aws:sts::123456789012:assumed-role/backend/job-42"),
			wantOwner: "arn:aws:iam::123456789012:role/backend"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.h.cfg.Access = tc.policy
			req := loadEvent(t, "links-api-post.json")
			if tc.auth != nil {
				req.RequestContext.Authorizer = tc.auth
			}
			if resp, _ := e.do(t, req); resp.StatusCode != http.StatusCreated {
				t.Fatalf("create = %d %s, want 201", resp.StatusCode, resp.Body)
			}
			l, err := e.store.GetLink(t.Context(), "link-1")
			if err != nil {
				t.Fatalf("stored link: %v", err)
			}
			if l.Owner != tc.wantOwner {
				t.Errorf("stored owner = %q, want %q", l.Owner, tc.wantOwner)
			}
		})
	}
}

// A request without a usable identity creates nothing: no Klavi call, no
// stored link with an empty owner another such caller would match.
func TestCreateWithoutIdentity(t *testing.T) {
	tests := map[string]*events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		"no authorizer":      nil,
		"jwt without sub":    jwtAuth(map[string]string{"iss": "https://auth.example.com/", "client_id": "app"}),
		"jwt with empty sub": jwtAuth(map[string]string{"sub": ""}),
		"iam without an arn": iamAuth(""),
		"lambda authorizer":  {Lambda: map[string]any{"sub": "user-1"}},
	}
	for name, auth := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			req := loadEvent(t, "links-api-post.json")
			req.RequestContext.Authorizer = auth
			resp, body := e.do(t, req)
			if resp.StatusCode != http.StatusUnauthorized || code(body) != "unauthenticated" {
				t.Fatalf("create = %d %s, want 401 unauthenticated", resp.StatusCode, resp.Body)
			}
			if len(e.k.got) != 0 {
				t.Errorf("klavi calls = %d, want 0", len(e.k.got))
			}
			if _, err := e.store.GetLink(t.Context(), "link-1"); !errors.Is(err, linkstore.ErrNotFound) {
				t.Errorf("stored link: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestGetOnlyByOwner(t *testing.T) {
	admin := jwtAuth(map[string]string{"sub": "ops-1", "scp": "[klavi-link/admin]"})
	tests := []struct {
		name       string
		creator    *events.APIGatewayV2HTTPRequestContextAuthorizerDescription
		reader     *events.APIGatewayV2HTTPRequestContextAuthorizerDescription
		wantStatus int
		wantCode   string
	}{
		{name: "owner reads", creator: jwtAuth(sub("user-a")), reader: jwtAuth(sub("user-a")), wantStatus: http.StatusOK},
		{name: "another caller gets 404", creator: jwtAuth(sub("user-a")), reader: jwtAuth(sub("user-b")), wantStatus: http.StatusNotFound, wantCode: "link_not_found"},
		{name: "no authorizer gets 401", creator: jwtAuth(sub("user-a")), reader: nil, wantStatus: http.StatusUnauthorized, wantCode: "unauthenticated"},
		{name: "jwt without sub gets 401", creator: jwtAuth(sub("user-a")), reader: jwtAuth(map[string]string{"azp": "x"}), wantStatus: http.StatusUnauthorized, wantCode: "unauthenticated"},
		{name: "admin scope reads another's link", creator: jwtAuth(sub("user-a")), reader: admin, wantStatus: http.StatusOK},
		{name: "iam reads another's link", creator: jwtAuth(sub("user-a")), reader: iamAuth("arn:aws:iam::123456789012:user/ops"), wantStatus: http.StatusOK},
		{name: "another session of the owner role reads", creator: iamAuth("arn:aws:sts::123456789012:assumed-role/backend/a"),
			reader: iamAuth("arn:aws:sts::123456789012:assumed-role/backend/b"), wantStatus: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			create := loadEvent(t, "links-api-post.json")
			create.RequestContext.Authorizer = tc.creator
			if resp, _ := e.do(t, create); resp.StatusCode != http.StatusCreated {
				t.Fatalf("create = %d %s, want 201", resp.StatusCode, resp.Body)
			}
			get := loadEvent(t, "links-api-get.json")
			get.RequestContext.Authorizer = tc.reader
			get.PathParameters["linkId"] = "link-1"
			resp, body := e.do(t, get)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("GET = %d %s, want %d", resp.StatusCode, resp.Body, tc.wantStatus)
			}
			if tc.wantCode != "" && code(body) != tc.wantCode {
				t.Errorf("error code = %q, want %s", code(body), tc.wantCode)
			}
			if tc.wantStatus == http.StatusNotFound {
				// The same answer as for an unknown id: nothing tells the
				// caller that the link exists.
				unknown := loadEvent(t, "links-api-get.json")
				unknown.RequestContext.Authorizer = tc.reader
				unknown.PathParameters["linkId"] = "no-such-link"
				want, _ := e.h.Handle(t.Context(), unknown)
				if resp.Body != want.Body {
					t.Errorf("404 body = %s, want the unknown-link answer %s", resp.Body, want.Body)
				}
			}
		})
	}
}

// A caller without identity gets 401 for an unknown id too: no answer
// tells it which ids exist.
func TestGetUnknownWithoutIdentity(t *testing.T) {
	e := newEnv(t)
	get := loadEvent(t, "links-api-get.json")
	get.RequestContext.Authorizer = nil
	get.PathParameters["linkId"] = "no-such-link"
	if resp, body := e.do(t, get); resp.StatusCode != http.StatusUnauthorized || code(body) != "unauthenticated" {
		t.Errorf("GET = %d %s, want 401 unauthenticated", resp.StatusCode, resp.Body)
	}
}

// A link first seen in an event has no owner: only the back office reads
// it.
func TestGetLinkFromEvent(t *testing.T) {
	tests := []struct {
		name       string
		policy     access.Policy
		reader     *events.APIGatewayV2HTTPRequestContextAuthorizerDescription
		wantStatus int
	}{
		{name: "ordinary caller", reader: jwtAuth(sub("user-b")), wantStatus: http.StatusNotFound},
		{name: "admin scope", reader: jwtAuth(map[string]string{"sub": "ops", "scope": "klavi-link/admin"}), wantStatus: http.StatusOK},
		{name: "configured admin scope", policy: access.Policy{AdminScope: "backoffice"},
			reader: jwtAuth(map[string]string{"sub": "ops", "scope": "backoffice"}), wantStatus: http.StatusOK},
		{name: "default scope when another is configured", policy: access.Policy{AdminScope: "backoffice"},
			reader: jwtAuth(map[string]string{"sub": "ops", "scope": "klavi-link/admin"}), wantStatus: http.StatusNotFound},
		{name: "iam", reader: iamAuth("arn:aws:sts::123456789012:assumed-role/ops/x"), wantStatus: http.StatusOK},
		{name: "no identity", reader: nil, wantStatus: http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.h.cfg.Access = tc.policy
			_, err := e.store.ApplyEvent(t.Context(), linkstore.EventChange{
				EventID: "e1", EventName: "consent_authorised", EventTime: now, LinkID: "link-ev",
				ConsentID: "c1", ConsentStatus: klavi.ConsentAuthorised,
			})
			if err != nil {
				t.Fatalf("apply event: %v", err)
			}
			get := loadEvent(t, "links-api-get.json")
			get.RequestContext.Authorizer = tc.reader
			get.PathParameters["linkId"] = "link-ev"
			if resp, _ := e.do(t, get); resp.StatusCode != tc.wantStatus {
				t.Errorf("GET = %d %s, want %d", resp.StatusCode, resp.Body, tc.wantStatus)
			}
		})
	}
}

// A purged link keeps its owner, who reads its deleted status; another
// caller still gets 404.
func TestGetPurgedLink(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, loadEvent(t, "links-api-post.json")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s, want 201", resp.StatusCode, resp.Body)
	}
	if _, err := e.store.Purge(t.Context(), "link-1", now); err != nil {
		t.Fatalf("purge: %v", err)
	}
	get := loadEvent(t, "links-api-get.json")
	get.PathParameters["linkId"] = "link-1"
	resp, body := e.do(t, get)
	if resp.StatusCode != http.StatusOK || body["status"] != linkstore.StatusDeletedByUser {
		t.Errorf("owner's GET = %d %s, want 200 with status %s", resp.StatusCode, resp.Body, linkstore.StatusDeletedByUser)
	}
	get.RequestContext.Authorizer = jwtAuth(sub("user-b"))
	if resp, _ := e.do(t, get); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other caller's GET = %d %s, want 404", resp.StatusCode, resp.Body)
	}
}

func jwtAuth(claims map[string]string) *events.APIGatewayV2HTTPRequestContextAuthorizerDescription {
	return &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
	}
}

func iamAuth(arn string) *events.APIGatewayV2HTTPRequestContextAuthorizerDescription {
	return &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: arn, AccountID: "123456789012"},
	}
}

func TestKlaviCallEndsBeforeTheDeadline(t *testing.T) {
	e := newEnv(t)
	var klaviDeadline time.Time
	e.k.fn = func(klavi.CreateLinkRequest) (*klavi.Link, error) {
		return nil, fmt.Errorf("POST /data/v1/links: %w", context.DeadlineExceeded)
	}
	slow := e.k
	h := New(klaviFunc(func(ctx context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error) {
		klaviDeadline, _ = ctx.Deadline()
		return slow.CreateLink(ctx, r)
	}), e.store, nil, e.h.cfg)
	invocationDeadline := time.Now().Add(10 * time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), invocationDeadline)
	defer cancel()
	resp, err := h.Handle(ctx, postWith(t, `{}`))
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(resp.Body, "klavi_unavailable") {
		t.Errorf("answer = %d %v %s, want 503 klavi_unavailable", resp.StatusCode, err, resp.Body)
	}
	if want := invocationDeadline.Add(-storeReserve); !klaviDeadline.Equal(want) {
		t.Errorf("Klavi call deadline = %v, want %v (the invocation's minus the reserve)", klaviDeadline, want)
	}

	// A short deadline keeps three quarters of it for the call.
	short := time.Now().Add(400 * time.Millisecond)
	ctx, cancel = context.WithDeadline(t.Context(), short)
	defer cancel()
	h.Handle(ctx, postWith(t, `{}`))
	if left := short.Sub(klaviDeadline); left <= 0 || left > 110*time.Millisecond {
		t.Errorf("with 400ms left the Klavi call ends %v before the deadline, want at most a quarter", left)
	}
}

type klaviFunc func(ctx context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error)

func (f klaviFunc) CreateLink(ctx context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error) {
	return f(ctx, r)
}
