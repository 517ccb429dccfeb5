package linkapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

// seedFixtureLink stores the fixture's link with two AUTHORISED consents
// and one REJECTED.
func seedFixtureLink(t *testing.T, e *reportsEnv, l linkstore.Link) {
	t.Helper()
	seed(t, e.store.MemoryStore, l,
		authorised("c-1", "260"),
		authorised("c-2", "341"),
		linkstore.Consent{ConsentID: "c-3", InstitutionCode: "001", Status: klavi.ConsentRejected},
	)
}

func decodeAccepted(t *testing.T, resp httpapi.Response) acceptedResponse {
	t.Helper()
	var out acceptedResponse
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatalf("decode 202 body %q: %v", resp.Body, err)
	}
	return out
}

func errorCode(t *testing.T, resp httpapi.Response) string {
	t.Helper()
	var body httpapi.ErrorBody
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("decode error body %q: %v", resp.Body, err)
	}
	return body.Error.Code
}

func TestReportsFixture(t *testing.T) {
	e := newReportsEnv(t, nil)
	seedFixtureLink(t, e, personalLink(fixtureLinkID))
	req := loadHTTP(t, "links-api-reports.json")

	resp, err := e.h.Handle(t.Context(), req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Handle = %d %s, %v; want 202", resp.StatusCode, resp.Body, err)
	}
	products := []string{"pf_checking_account", "pf_credit_card"}
	want := acceptedResponse{Requests: []requestView{
		{RequestID: "req-1", ConsentID: "c-1", InstitutionCode: "260", Products: products},
		{RequestID: "req-2", ConsentID: "c-2", InstitutionCode: "341", Products: products},
	}}
	if diff := cmp.Diff(want, decodeAccepted(t, resp), cmp.AllowUnexported(failureView{})); diff != "" {
		t.Errorf("202 body mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(resp.Body, `"requestId":"req-1"`) || strings.Contains(resp.Body, "failures") {
		t.Errorf("body %s: want requestId fields and no failures", resp.Body)
	}
	calls := e.klavi.Calls()
	if len(calls) != 2 {
		t.Fatalf("klavi calls = %d, want 2", len(calls))
	}
	for i, c := range calls {
		if c.Kind != klavi.Personal || !cmp.Equal(c.Req.Products, products) || c.Req.TaxID != testCPF ||
			!cmp.Equal(c.Req.ProductsCallbackURL, map[string]string{"all": testWebhookURL}) {
			t.Errorf("klavi call %d = %+v", i, c)
		}
	}
	l := getLink(t, e.store.MemoryStore, fixtureLinkID)
	if len(l.ReportRequests) != 2 {
		t.Fatalf("recorded requests = %+v, want 2", l.ReportRequests)
	}
	for _, r := range l.ReportRequests {
		if r.Trigger != linkstore.TriggerManual || !cmp.Equal(r.Products, products) {
			t.Errorf("recorded request = %+v, want trigger manual with the body's products", r)
		}
	}
	// A manual request leaves the automatic one to do.
	for _, c := range l.Consents {
		if c.RequestID != "" {
			t.Errorf("consent %s request id = %q, want none after a manual request", c.ConsentID, c.RequestID)
		}
	}
	checkNoTaxID(t, "response", resp.Body)
	checkNoTaxID(t, "logs", e.logs.String())
}

// A manual request for the same consent and products within the cool-down
// answers 429 with Retry-After and does not call Klavi; once the cool-down
// ends, or for other products, the request is made.
func TestReportsManualCooldown(t *testing.T) {
	e := newReportsEnv(t, func(c *reports.Config) {
		c.Products = []string{"pf_balance"}
		c.ManualCooldown = 10 * time.Minute
	})
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
	req := loadHTTP(t, "links-api-reports.json")
	req.Body = ""
	req.Headers = map[string]string{} // no body, no content type needed
	do := func(r httpapi.Request) httpapi.Response {
		t.Helper()
		resp, err := e.h.Handle(t.Context(), r)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		return resp
	}
	if resp := do(req); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first request: %d %s, want 202", resp.StatusCode, resp.Body)
	}
	e.clock.Advance(4*time.Minute + 30*time.Second + 500*time.Millisecond)
	resp := do(req)
	if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, resp) != "report_request_too_soon" {
		t.Fatalf("second request: %d %s, want 429 report_request_too_soon", resp.StatusCode, resp.Body)
	}
	if got := resp.Headers["Retry-After"]; got != "330" {
		t.Errorf("Retry-After = %q, want 330 (5m29.5s, rounded up)", got)
	}
	if n := len(e.klavi.Calls()); n != 1 {
		t.Errorf("klavi calls = %d, want 1: the repeat must not reach Klavi", n)
	}
	if n := e.metrics.Sum("ReportRequestsSkipped", map[string]string{"Reason": "too_soon"}); n != 1 {
		t.Errorf("ReportRequestsSkipped{too_soon} = %v, want 1", n)
	}

	// Other products are another request.
	other := loadHTTP(t, "links-api-reports.json")
	if resp := do(other); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("request for other products: %d %s, want 202", resp.StatusCode, resp.Body)
	}
	e.clock.Advance(6 * time.Minute)
	if resp := do(req); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("request after the cool-down: %d %s, want 202", resp.StatusCode, resp.Body)
	}
	calls := e.klavi.Calls()
	if len(calls) != 3 {
		t.Fatalf("klavi calls = %d, want 3", len(calls))
	}
	if !cmp.Equal(calls[0].Req.Products, []string{"pf_balance"}) {
		t.Errorf("products = %q, want the configured ones", calls[0].Req.Products)
	}
	if n := len(getLink(t, e.store.MemoryStore, fixtureLinkID).ReportRequests); n != 3 {
		t.Errorf("recorded requests = %d, want 3", n)
	}
}

// A request Klavi refused (4xx, 429) releases its cool-down, so the caller
// may correct and retry at once; one Klavi may have acted on (5xx) keeps
// it.
func TestReportsCooldownAfterFailure(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantRetry int
	}{
		{name: "rate limited", err: reportstest.APIError(http.StatusTooManyRequests, 0), wantRetry: http.StatusAccepted},
		{name: "products rejected", err: reportstest.APIError(http.StatusBadRequest, 4002), wantRetry: http.StatusAccepted},
		{name: "server error", err: reportstest.APIError(http.StatusInternalServerError, 0), wantRetry: http.StatusTooManyRequests},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
			e.klavi.FailWith(tc.err)
			req := loadHTTP(t, "links-api-reports.json")
			if resp, _ := e.h.Handle(t.Context(), req); resp.StatusCode == http.StatusAccepted {
				t.Fatalf("failing request answered 202")
			}
			e.klavi.Answer = nil // accept again
			resp, _ := e.h.Handle(t.Context(), req)
			if resp.StatusCode != tc.wantRetry {
				t.Errorf("retry = %d %s, want %d", resp.StatusCode, resp.Body, tc.wantRetry)
			}
		})
	}
}

// Concurrent identical requests make one Klavi call: the others get 429.
func TestReportsCooldownConcurrent(t *testing.T) {
	e := newReportsEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, _ := e.h.Handle(t.Context(), loadHTTP(t, "links-api-reports.json"))
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	accepted := 0
	for _, s := range statuses {
		switch s {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("status %d, want 202 or 429", s)
		}
	}
	if accepted != 1 || len(e.klavi.Calls()) != 1 {
		t.Errorf("accepted = %d, klavi calls = %d; want 1 and 1", accepted, len(e.klavi.Calls()))
	}
}

func TestReportsBodies(t *testing.T) {
	thirtyOne := make([]string, 31)
	for i := range thirtyOne {
		thirtyOne[i] = "p" + strings.Repeat("x", i)
	}
	tooMany, _ := json.Marshal(map[string]any{"products": thirtyOne})
	thirty, _ := json.Marshal(map[string]any{"products": thirtyOne[:30]})
	tests := []struct {
		name         string
		body         string
		contentType  string
		base64       bool
		wantStatus   int
		wantCode     string
		wantProducts []string
	}{
		{name: "products", body: `{"products":["pf_checking_account"]}`, wantStatus: 202, wantProducts: []string{"pf_checking_account"}},
		{name: "empty object", body: `{}`, wantStatus: 202, wantProducts: []string{"all"}},
		{name: "null products", body: `{"products":null}`, wantStatus: 202, wantProducts: []string{"all"}},
		{name: "whitespace body", body: " \n", contentType: "-", wantStatus: 202, wantProducts: []string{"all"}},
		{name: "repeats dropped", body: `{"products":["pf_loans","pf_funds","pf_loans"]}`, wantStatus: 202, wantProducts: []string{"pf_loans", "pf_funds"}},
		{name: "all", body: `{"products":["all"]}`, wantStatus: 202, wantProducts: []string{"all"}},
		{name: "thirty", body: string(thirty), wantStatus: 202, wantProducts: thirtyOne[:30]},
		{name: "base64", body: base64.StdEncoding.EncodeToString([]byte(`{"products":["pf_funds"]}`)), base64: true, wantStatus: 202, wantProducts: []string{"pf_funds"}},
		{name: "json with charset", body: `{"products":["pf_funds"]}`, contentType: "application/json; charset=utf-8", wantStatus: 202, wantProducts: []string{"pf_funds"}},
		{name: "not json", body: `products=all`, contentType: "application/x-www-form-urlencoded", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "no content type", body: `{"products":["all"]}`, contentType: "-", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "too large", body: `{"products":["` + strings.Repeat("a", maxBodyBytes) + `"]}`, wantStatus: 413, wantCode: "body_too_large"},
		{name: "bad base64", body: "%%%", base64: true, wantStatus: 400, wantCode: "invalid_body"},
		{name: "unknown field", body: `{"products":["all"],"taxId":"12345678909"}`, wantStatus: 400, wantCode: "unknown_field"},
		{name: "empty products", body: `{"products":[]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "too many products", body: string(tooMany), wantStatus: 400, wantCode: "invalid_products"},
		{name: "upper case", body: `{"products":["PF_FUNDS"]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "empty name", body: `{"products":[""]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "dash", body: `{"products":["pf-funds"]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "name too long", body: `{"products":["` + strings.Repeat("a", 65) + `"]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "all with others", body: `{"products":["all","pf_funds"]}`, wantStatus: 400, wantCode: "invalid_products"},
		{name: "products not an array", body: `{"products":"all"}`, wantStatus: 400, wantCode: "invalid_field_type"},
		{name: "product not a string", body: `{"products":[1]}`, wantStatus: 400, wantCode: "invalid_field_type"},
		{name: "array body", body: `["all"]`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "broken json", body: `{"products":`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "two objects", body: `{}{}`, wantStatus: 400, wantCode: "invalid_json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
			req := loadHTTP(t, "links-api-reports.json")
			req.Body, req.IsBase64Encoded = tc.body, tc.base64
			switch tc.contentType {
			case "":
			case "-":
				delete(req.Headers, "content-type")
			default:
				req.Headers["content-type"] = tc.contentType
			}
			resp, err := e.h.Handle(t.Context(), req)
			if err != nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("Handle = %d %s, %v; want %d", resp.StatusCode, resp.Body, err, tc.wantStatus)
			}
			if tc.wantCode != "" {
				if got := errorCode(t, resp); got != tc.wantCode {
					t.Errorf("error code = %q, want %q", got, tc.wantCode)
				}
				if n := len(e.klavi.Calls()); n != 0 {
					t.Errorf("klavi calls = %d, want 0", n)
				}
				checkNoTaxID(t, "response", resp.Body)
				return
			}
			calls := e.klavi.Calls()
			if len(calls) != 1 || !cmp.Equal(calls[0].Req.Products, tc.wantProducts) {
				t.Errorf("klavi calls = %+v, want one with products %q", calls, tc.wantProducts)
			}
		})
	}
}

func TestReportsLinkStates(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *reportsEnv)
		linkID     string
		wantStatus int
		wantCode   string
	}{
		{name: "unknown link", setup: func(*testing.T, *reportsEnv) {}, wantStatus: 404, wantCode: "link_not_found"},
		{name: "invalid link id", setup: func(*testing.T, *reportsEnv) {}, linkID: "l%2F1", wantStatus: 404, wantCode: "link_not_found"},
		{
			name: "purged link",
			setup: func(t *testing.T, e *reportsEnv) {
				seedFixtureLink(t, e, personalLink(fixtureLinkID))
				if _, err := e.store.MemoryStore.Purge(t.Context(), fixtureLinkID, testStart); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: 410, wantCode: "link_deleted",
		},
		{
			name: "no consent",
			setup: func(t *testing.T, e *reportsEnv) {
				seed(t, e.store.MemoryStore, personalLink(fixtureLinkID))
			},
			wantStatus: 409, wantCode: "no_authorised_consent",
		},
		{
			name: "no authorised consent",
			setup: func(t *testing.T, e *reportsEnv) {
				seed(t, e.store.MemoryStore, personalLink(fixtureLinkID),
					linkstore.Consent{ConsentID: "c-1", InstitutionCode: "260", Status: klavi.ConsentAwaitingAuthorisation},
					linkstore.Consent{ConsentID: "c-2", InstitutionCode: "341", Status: klavi.ConsentExpired})
			},
			wantStatus: 409, wantCode: "no_authorised_consent",
		},
		{
			name: "no tax id",
			setup: func(t *testing.T, e *reportsEnv) {
				l := personalLink(fixtureLinkID)
				l.TaxIDType, l.TaxID = linkstore.TaxIDUnknown, ""
				seedFixtureLink(t, e, l)
			},
			wantStatus: 409, wantCode: "tax_id_unknown",
		},
		{
			name: "consent without institution",
			setup: func(t *testing.T, e *reportsEnv) {
				seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), linkstore.Consent{ConsentID: "c-1", Status: klavi.ConsentAuthorised})
			},
			wantStatus: 409, wantCode: "institution_unknown",
		},
		{
			name: "store unavailable",
			setup: func(_ *testing.T, e *reportsEnv) {
				e.store.GetErr = errors.New("dynamodb: throttled")
			},
			wantStatus: 503, wantCode: "storage_unavailable",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			tc.setup(t, e)
			req := loadHTTP(t, "links-api-reports.json")
			if tc.linkID != "" {
				req.PathParameters["linkId"] = tc.linkID
			}
			resp, err := e.h.Handle(t.Context(), req)
			if err != nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("Handle = %d %s, %v; want %d", resp.StatusCode, resp.Body, err, tc.wantStatus)
			}
			if got := errorCode(t, resp); got != tc.wantCode {
				t.Errorf("error code = %q, want %q", got, tc.wantCode)
			}
			if n := len(e.klavi.Calls()); n != 0 {
				t.Errorf("klavi calls = %d, want 0", n)
			}
		})
	}
}

func TestReportsRoutes(t *testing.T) {
	tests := []struct {
		name       string
		routeKey   string
		method     string
		rawPath    string
		stage      string
		wantStatus int
		wantCode   string
	}{
		{name: "route key", routeKey: "POST /links/{linkId}/reports", method: "POST", wantStatus: 202},
		{name: "default route, raw path", routeKey: "$default", method: "POST", rawPath: "/links/" + fixtureLinkID + "/reports", wantStatus: 202},
		{name: "stage prefix", routeKey: "$default", method: "POST", rawPath: "/prod/links/" + fixtureLinkID + "/reports/", stage: "prod", wantStatus: 202},
		{name: "wrong method", routeKey: "GET /links/{linkId}/reports", method: "GET", wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "the link's own route", routeKey: "$default", method: "POST", rawPath: "/links/" + fixtureLinkID, wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "other route", routeKey: "$default", method: "POST", rawPath: "/links/" + fixtureLinkID + "/revoke", wantStatus: 404, wantCode: "route_not_found"},
		{name: "nested path", routeKey: "$default", method: "POST", rawPath: "/links/a/b/reports", wantStatus: 404, wantCode: "route_not_found"},
		{name: "empty id", routeKey: "$default", method: "POST", rawPath: "/links//reports", wantStatus: 404, wantCode: "route_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
			req := loadHTTP(t, "links-api-reports.json")
			req.RouteKey = tc.routeKey
			req.RequestContext.HTTP.Method = tc.method
			if tc.rawPath != "" {
				req.RawPath = tc.rawPath
				req.PathParameters = nil
			}
			if tc.stage != "" {
				req.RequestContext.Stage = tc.stage
			}
			resp, _ := e.h.Handle(t.Context(), req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, resp.Body, tc.wantStatus)
			}
			if tc.wantCode != "" {
				if got := errorCode(t, resp); got != tc.wantCode {
					t.Errorf("error code = %q, want %q", got, tc.wantCode)
				}
			}
		})
	}
}

func TestReportsKlaviFailures(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"consent no longer authorised", reportstest.APIError(416, 4001), 409, "consent_not_authorised"},
		{"invalid product", reportstest.APIError(416, 4002), 400, "klavi_rejected_products"},
		{"no products", reportstest.APIError(416, 4005), 400, "klavi_rejected_products"},
		{"invalid callback", reportstest.APIError(416, 4006), 502, "klavi_error"},
		{"bad request", reportstest.APIError(400, 400), 502, "klavi_error"},
		{"rate limited", reportstest.APIError(429, 429), 503, "klavi_busy"},
		{"server error", reportstest.APIError(500, 500), 502, "klavi_error"},
		{"unavailable", reportstest.APIError(503, 503), 502, "klavi_error"},
		{"network", errors.New("dial tcp: connection refused"), 503, "klavi_unavailable"},
		{"token source", errors.New("secretsmanager: access denied"), 503, "klavi_unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
			e.klavi.FailWith(tc.err)
			resp, _ := e.h.Handle(t.Context(), loadHTTP(t, "links-api-reports.json"))
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, resp.Body, tc.wantStatus)
			}
			if got := errorCode(t, resp); got != tc.wantCode {
				t.Errorf("error code = %q, want %q", got, tc.wantCode)
			}
			if n := len(getLink(t, e.store.MemoryStore, fixtureLinkID).ReportRequests); n != 0 {
				t.Errorf("recorded requests = %d, want 0", n)
			}
		})
	}
}

func TestReportsPartialFailure(t *testing.T) {
	e := newReportsEnv(t, nil)
	seedFixtureLink(t, e, personalLink(fixtureLinkID))
	e.klavi.Answer = func(_ int, _ klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		if r.InstitutionCode == "341" {
			return nil, reportstest.APIError(416, 4001)
		}
		return &klavi.ReportRequestAccepted{RequestID: "req-260"}, nil
	}
	resp, _ := e.h.Handle(t.Context(), loadHTTP(t, "links-api-reports.json"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d %s, want 202", resp.StatusCode, resp.Body)
	}
	products := []string{"pf_checking_account", "pf_credit_card"}
	want := acceptedResponse{
		Requests: []requestView{{RequestID: "req-260", ConsentID: "c-1", InstitutionCode: "260", Products: products}},
		Failures: []failureView{{ConsentID: "c-2", InstitutionCode: "341", Error: httpapi.ErrorDetail{
			Code: "consent_not_authorised", Message: "Klavi no longer accepts this consent; the user must authorise again.",
		}}},
	}
	if diff := cmp.Diff(want, decodeAccepted(t, resp), cmp.AllowUnexported(failureView{})); diff != "" {
		t.Errorf("202 body mismatch (-want +got):\n%s", diff)
	}
}

func TestReportsAllFailPrefersRetryable(t *testing.T) {
	e := newReportsEnv(t, nil)
	seedFixtureLink(t, e, personalLink(fixtureLinkID))
	e.klavi.Answer = func(_ int, _ klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		if r.InstitutionCode == "260" {
			return nil, reportstest.APIError(416, 4001)
		}
		return nil, reportstest.APIError(429, 429)
	}
	resp, _ := e.h.Handle(t.Context(), loadHTTP(t, "links-api-reports.json"))
	if resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, resp) != "klavi_busy" {
		t.Errorf("answer = %d %s, want 503 klavi_busy", resp.StatusCode, resp.Body)
	}
}

func TestReportsRecordFailsAfterKlaviAccepted(t *testing.T) {
	e := newReportsEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
	e.store.RecordErr = errors.New("dynamodb: throttled")
	resp, _ := e.h.Handle(t.Context(), loadHTTP(t, "links-api-reports.json"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d %s, want 202: Klavi took the request", resp.StatusCode, resp.Body)
	}
	if got := decodeAccepted(t, resp).Requests; len(got) != 1 || got[0].RequestID != "req-1" {
		t.Errorf("requests = %+v, want req-1", got)
	}
	if got := e.metrics.Sum("ReportRequestsUnrecorded", nil); got != 1 {
		t.Errorf("ReportRequestsUnrecorded = %v, want 1", got)
	}
}

func TestReportsWebhookURL(t *testing.T) {
	tests := []struct {
		name       string
		linkURL    string
		configured string
		stage      string
		want       string
	}{
		{name: "link's own", linkURL: testWebhookURL, configured: "https://other.example.com/r", want: testWebhookURL},
		{name: "configured", configured: "https://other.example.com/r", want: "https://other.example.com/r"},
		{name: "derived", want: "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"},
		{name: "derived with stage", stage: "prod", want: "https://abc123.execute-api.sa-east-1.amazonaws.com/prod/webhooks/klavi/reports"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, func(c *reports.Config) { c.ReportWebhookURL = tc.configured })
			l := personalLink(fixtureLinkID)
			l.ReportWebhookURL = tc.linkURL
			seed(t, e.store.MemoryStore, l, authorised("c-1", "260"))
			req := loadHTTP(t, "links-api-reports.json")
			if tc.stage != "" {
				req.RequestContext.Stage = tc.stage
			}
			resp, _ := e.h.Handle(t.Context(), req)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status = %d %s, want 202", resp.StatusCode, resp.Body)
			}
			if got := e.klavi.Calls()[0].Req.ProductsCallbackURL; !cmp.Equal(got, map[string]string{"all": tc.want}) {
				t.Errorf("productsCallbackURL = %v, want all -> %s", got, tc.want)
			}
		})
	}
}

func TestReportsBusinessLink(t *testing.T) {
	e := newReportsEnv(t, nil)
	l := personalLink(fixtureLinkID)
	l.TaxIDType, l.TaxID = linkstore.TaxIDBusiness, testCNPJ
	seed(t, e.store.MemoryStore, l, authorised("c-1", "260"))
	req := loadHTTP(t, "links-api-reports.json")
	req.Body = `{"products":["pj_checking_account"]}`
	resp, _ := e.h.Handle(t.Context(), req)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d %s, want 202", resp.StatusCode, resp.Body)
	}
	if c := e.klavi.Calls()[0]; c.Kind != klavi.Business || c.Req.TaxID != testCNPJ {
		t.Errorf("klavi call kind %q, tax id matches %v; want business with the CNPJ", c.Kind, c.Req.TaxID == testCNPJ)
	}
	checkNoTaxID(t, "response", resp.Body)
	checkNoTaxID(t, "logs", e.logs.String())
}

// asCaller returns req made by sub through the JWT authorizer, or with no
// authorizer at all when sub is "".
// asCaller sets the request's caller: a JWT with the given claims, or
// none when claims is nil.
func asCaller(req httpapi.Request, claims map[string]string) httpapi.Request {
	req.RequestContext.Authorizer = nil
	if claims != nil {
		req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
		}
	}
	return req
}

// asIAM sets an IAM caller.
func asIAM(req httpapi.Request, arn string) httpapi.Request {
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: arn},
	}
	return req
}

func sub(s string) map[string]string { return map[string]string{"sub": s} }

// Reports of a link are requested (and billed) only for its owner and the
// back office; any other caller gets the answer for an unknown link, a
// caller without identity 401, and Klavi is not asked.
func TestReportsOwnership(t *testing.T) {
	admin := map[string]string{"sub": "ops-1", "scope": "openid klavi-link/admin"}
	tests := []struct {
		name       string
		owner      string
		jwt        map[string]string
		iam        string
		wantStatus int
	}{
		{name: "owner", owner: "user-a", jwt: sub("user-a"), wantStatus: http.StatusAccepted},
		{name: "another caller", owner: "user-a", jwt: sub("user-b"), wantStatus: http.StatusNotFound},
		{name: "no authorizer, owned link", owner: "user-a", wantStatus: http.StatusUnauthorized},
		{name: "jwt without sub, owned link", owner: "user-a", jwt: map[string]string{"client_id": "x"}, wantStatus: http.StatusUnauthorized},
		{name: "link without owner, ordinary caller", owner: "", jwt: sub("user-b"), wantStatus: http.StatusNotFound},
		{name: "link without owner, no authorizer", owner: "", wantStatus: http.StatusUnauthorized},
		{name: "link without owner, jwt without sub", owner: "", jwt: map[string]string{"iss": "x"}, wantStatus: http.StatusUnauthorized},
		{name: "link without owner, admin scope", owner: "", jwt: admin, wantStatus: http.StatusAccepted},
		{name: "another caller's link, admin scope", owner: "user-a", jwt: admin, wantStatus: http.StatusAccepted},
		{name: "link without owner, iam", owner: "", iam: "arn:aws:sts::123456789012:assumed-role/backoffice/s1", wantStatus: http.StatusAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			l := personalLink(fixtureLinkID)
			l.Owner = tc.owner
			seed(t, e.store.MemoryStore, l, authorised("c-1", "260"))
			req := asCaller(loadHTTP(t, "links-api-reports.json"), tc.jwt)
			if tc.iam != "" {
				req = asIAM(req, tc.iam)
			}
			resp, err := e.h.Handle(t.Context(), req)
			if err != nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("Handle = %d %s, %v; want %d", resp.StatusCode, resp.Body, err, tc.wantStatus)
			}
			wantCalls := 1
			if tc.wantStatus != http.StatusAccepted {
				wantCalls = 0
				wantCode := map[int]string{http.StatusNotFound: "link_not_found", http.StatusUnauthorized: "unauthenticated"}[tc.wantStatus]
				if got := errorCode(t, resp); got != wantCode {
					t.Errorf("error code = %q, want %s", got, wantCode)
				}
				if n := len(getLink(t, e.store.MemoryStore, fixtureLinkID).ReportRequests); n != 0 {
					t.Errorf("recorded requests = %d, want 0", n)
				}
			}
			if n := len(e.klavi.Calls()); n != wantCalls {
				t.Errorf("klavi calls = %d, want %d", n, wantCalls)
			}
		})
	}
}

// A purged link keeps its owner: the owner gets 410 link_deleted on the
// report route, anyone else the unknown-link answer.
func TestReportsPurgedLinkByOwner(t *testing.T) {
	for _, tc := range []struct {
		name       string
		caller     map[string]string
		wantStatus int
		wantCode   string
	}{
		{name: "owner", caller: sub(fixtureOwner), wantStatus: http.StatusGone, wantCode: "link_deleted"},
		{name: "another caller", caller: sub("user-b"), wantStatus: http.StatusNotFound, wantCode: "link_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportsEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink(fixtureLinkID), authorised("c-1", "260"))
			if _, err := e.store.MemoryStore.Purge(t.Context(), fixtureLinkID, testStart); err != nil {
				t.Fatalf("purge: %v", err)
			}
			resp, err := e.h.Handle(t.Context(), asCaller(loadHTTP(t, "links-api-reports.json"), tc.caller))
			if err != nil || resp.StatusCode != tc.wantStatus || errorCode(t, resp) != tc.wantCode {
				t.Fatalf("Handle = %d %s, %v; want %d %s", resp.StatusCode, resp.Body, err, tc.wantStatus, tc.wantCode)
			}
			if n := len(e.klavi.Calls()); n != 0 {
				t.Errorf("klavi calls = %d, want 0", n)
			}
		})
	}
}
