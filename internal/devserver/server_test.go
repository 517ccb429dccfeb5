package devserver

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// Tax ids of the tests, valid by their check digits. Neither may appear in
// a log line.
const (
	testCPF       = "529.982.247-25"
	testCPFBare   = "52998224725"
	testCNPJ      = "11.222.333/0001-81"
	testCNPJBare  = "11222333000181"
	waitForStatus = 15 * time.Second
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running server and a client that, like a test of a browser's
// requests, does not follow redirects by itself.
type env struct {
	srv    *Server
	url    string
	dir    string
	logs   *syncBuffer
	client *http.Client
}

func startServer(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{dir: filepath.Join(t.TempDir(), "reports"), logs: &syncBuffer{}}
	cfg := Config{
		ReportsDir: e.dir,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.url, err = srv.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkLogs(t, e.logs.String())
	})
	e.client = &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e
}

// checkLogs asserts that no tax id or key reached the log.
func checkLogs(t *testing.T, logs string) {
	t.Helper()
	for _, secret := range []string{testCPF, testCPFBare, testCNPJ, testCNPJBare, DevCredentials().SecretKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// do sends a request and returns the status, headers and body.
func (e *env) do(t *testing.T, method, path, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = e.url + path
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res.StatusCode, res.Header, b
}

func (e *env) postJSON(t *testing.T, path string, v any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	status, _, body := e.do(t, http.MethodPost, path, "application/json", b)
	return status, body
}

type createdLink struct {
	LinkID    string    `json:"linkId"`
	LinkURL   string    `json:"linkURL"`
	LinkToken string    `json:"linkToken"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// createLink does what the demo page's form does.
func (e *env) createLink(t *testing.T, taxField, taxID string) createdLink {
	t.Helper()
	status, body := e.postJSON(t, "/links", map[string]any{
		taxField:       taxID,
		"email":        "ana@example.com",
		"redirectURL":  e.url + "/?returned=1",
		"externalInfo": map[string]string{"source": "test"},
	})
	if status != http.StatusCreated {
		t.Fatalf("POST /links = %d %s, want 201", status, body)
	}
	var l createdLink
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("decode created link: %v", err)
	}
	if !strings.HasPrefix(l.LinkURL, e.url+"/klavi/link/"+l.LinkID) {
		t.Errorf("linkURL = %q, want the simulator's consent page on this server", l.LinkURL)
	}
	return l
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	hiddenToken = regexp.MustCompile(`name="v" value="([^"]*)"`)
	institution = regexp.MustCompile(`name="institutionCode" value="([^"]*)"`)
)

// consent opens the consent page and submits its form with decision, as
// a browser does, and returns where the answer redirects to.
func (e *env) consent(t *testing.T, linkURL, decision string) *url.URL {
	t.Helper()
	status, hdr, page := e.do(t, http.MethodGet, linkURL, "", nil)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET consent page = %d %s, want 200 HTML", status, hdr.Get("Content-Type"))
	}
	find := func(re *regexp.Regexp, what string) string {
		m := re.FindSubmatch(page)
		if m == nil {
			t.Fatalf("consent page has no %s:\n%s", what, page)
		}
		return html.UnescapeString(string(m[1]))
	}
	action, err := url.Parse(find(formAction, "form action"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(linkURL)
	form := url.Values{
		"v":               {find(hiddenToken, "link token field")},
		"institutionCode": {find(institution, "institution choice")},
		"decision":        {decision},
	}
	status, hdr, body := e.do(t, http.MethodPost, base.ResolveReference(action).String(),
		"application/x-www-form-urlencoded", []byte(form.Encode()))
	if status != http.StatusSeeOther {
		t.Fatalf("POST decision = %d %s, want 303", status, body)
	}
	loc, err := url.Parse(hdr.Get("Location"))
	if err != nil {
		t.Fatalf("redirect Location %q: %v", hdr.Get("Location"), err)
	}
	return loc
}

// view is GET /links/{linkId}.
func (e *env) view(t *testing.T, id string) linkapi.View {
	t.Helper()
	status, _, body := e.do(t, http.MethodGet, "/links/"+id, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /links/%s = %d %s", id, status, body)
	}
	var v linkapi.View
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode link view: %v", err)
	}
	return v
}

// waitFor polls the link view, as the demo page does, until done holds.
func (e *env) waitFor(t *testing.T, id, what string, done func(linkapi.View) bool) linkapi.View {
	t.Helper()
	deadline := time.Now().Add(waitForStatus)
	for {
		v := e.view(t, id)
		if done(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s never reached %s; last view: %+v\nlogs:\n%s", id, what, v, e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasStatus(want string) func(linkapi.View) bool {
	return func(v linkapi.View) bool { return v.Status == want }
}

// returnToDemo follows the consent page's redirect back to the demo page
// and checks where it lands.
func (e *env) returnToDemo(t *testing.T, loc *url.URL, linkID string) {
	t.Helper()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != e.url+"/" {
		t.Errorf("redirect to %s, want the demo page %s/", got, e.url)
	}
	if got := loc.Query().Get("link_id"); got != linkID {
		t.Errorf("redirect link_id = %q, want %q", got, linkID)
	}
	if got := loc.Query().Get("returned"); got != "1" {
		t.Errorf("redirect lost the redirectURL's own query: %s", loc)
	}
	status, hdr, page := e.do(t, http.MethodGet, loc.String(), "", nil)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !bytes.Contains(page, []byte("Klavi Link — local demo")) {
		t.Errorf("GET %s = %d %s, want the demo page", loc, status, hdr.Get("Content-Type"))
	}
}

type storedList struct {
	LinkID  string         `json:"linkId"`
	Reports []storedReport `json:"reports"`
}

func (e *env) storedReports(t *testing.T, id string) storedList {
	t.Helper()
	status, _, body := e.do(t, http.MethodGet, "/dev/links/"+id+"/reports", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /dev/links/%s/reports = %d %s", id, status, body)
	}
	var l storedList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatalf("decode stored reports: %v", err)
	}
	return l
}

// checkReports waits until the simulator delivered everything, then checks
// that every report of the link is stored under its key and that the dev
// route serves it byte for byte. file reads a stored object directly from
// the store's backend. It returns the link view it checked.
func (e *env) checkReports(t *testing.T, linkID string, file func(key string) []byte) linkapi.View {
	t.Helper()
	e.srv.sim.Wait()
	v := e.view(t, linkID)
	if len(v.Reports) == 0 {
		t.Errorf("link %s has no reports", linkID)
	}
	list := e.storedReports(t, v.LinkID)
	if len(list.Reports) != len(v.Reports) {
		t.Fatalf("dev list has %d reports, the link view %d", len(list.Reports), len(v.Reports))
	}
	for _, r := range list.Reports {
		if want := reportstore.ReportKey(v.LinkID, r.ProductName, r.ProductReportID); r.ObjectKey != want {
			t.Errorf("object key = %q, want %q", r.ObjectKey, want)
		}
		stored := file(r.ObjectKey)
		if int64(len(stored)) != r.Bytes {
			t.Errorf("%s: %d bytes stored, the store recorded %d", r.ObjectKey, len(stored), r.Bytes)
		}
		status, hdr, body := e.do(t, http.MethodGet, r.Href, "", nil)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s = %d %s, want 200 application/json", r.Href, status, hdr.Get("Content-Type"))
		}
		if !bytes.Equal(body, stored) {
			t.Errorf("GET %s served %d bytes that differ from the %d stored", r.Href, len(body), len(stored))
		}
		var env struct {
			ProductReportID string `json:"productReportId"`
			ProductName     string `json:"productName"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.ProductReportID != r.ProductReportID || env.ProductName != r.ProductName {
			t.Errorf("report %s: envelope %+v, %v; want its productReportId and productName", r.ObjectKey, env, err)
		}
	}
	return v
}

func (e *env) diskFile(t *testing.T) func(key string) []byte {
	return func(key string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(e.dir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatalf("report %s not on disk: %v", key, err)
		}
		return b
	}
}

func TestEndToEndAuthorise(t *testing.T) {
	tests := []struct {
		name, field, taxID, bare, wantType string
	}{
		{"CPF", "personalTaxId", testCPF, testCPFBare, "personal"},
		{"CNPJ", "businessTaxId", testCNPJ, testCNPJBare, "business"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, nil)
			link := e.createLink(t, tc.field, tc.taxID)
			if v := e.view(t, link.LinkID); v.Status != "CREATED" {
				t.Errorf("status after creation = %s, want CREATED", v.Status)
			}

			loc := e.consent(t, link.LinkURL, "authorise")
			if got := loc.Query().Get("error"); got != "" {
				t.Errorf("redirect carries error %q after authorising", got)
			}
			e.returnToDemo(t, loc, link.LinkID)

			// The simulator may deliver the reports before the request
			// that asked for them is recorded: wait for both.
			v := e.waitFor(t, link.LinkID, "REPORTS_RECEIVED with its request recorded", func(v linkapi.View) bool {
				return v.Status == "REPORTS_RECEIVED" && len(v.ReportRequests) > 0
			})
			if v.TaxIDType != tc.wantType || v.TaxIDMasked == "" || strings.Contains(v.TaxIDMasked, tc.bare) {
				t.Errorf("tax id in view = %s %q, want %s and masked", v.TaxIDType, v.TaxIDMasked, tc.wantType)
			}
			if len(v.Consents) != 1 || v.Consents[0].Status != "AUTHORISED" {
				t.Errorf("consents = %+v, want one AUTHORISED", v.Consents)
			}
			if len(v.ReportRequests) != 1 {
				t.Errorf("report requests = %+v, want the one made by the change feed", v.ReportRequests)
			}
			e.checkReports(t, link.LinkID, e.diskFile(t))
			if !strings.Contains(e.logs.String(), `"requestId"`) {
				t.Error("log lines carry no requestId")
			}
		})
	}
}

func TestEndToEndReject(t *testing.T) {
	e := startServer(t, nil)
	link := e.createLink(t, "personalTaxId", testCPF)
	loc := e.consent(t, link.LinkURL, "reject")
	if got := loc.Query().Get("error"); got != "access_denied" {
		t.Errorf("redirect error = %q, want access_denied", got)
	}
	e.returnToDemo(t, loc, link.LinkID)

	v := e.waitFor(t, link.LinkID, "REJECTED", hasStatus("REJECTED"))
	if len(v.ReportRequests) != 0 || len(v.Reports) != 0 {
		t.Errorf("rejected link has requests %+v and reports %+v, want none", v.ReportRequests, v.Reports)
	}
	if got := e.storedReports(t, link.LinkID).Reports; len(got) != 0 {
		t.Errorf("stored reports = %+v, want none", got)
	}
	status, _, body := e.do(t, http.MethodPost, "/links/"+link.LinkID+"/reports", "application/json", []byte(`{}`))
	if status != http.StatusConflict || !bytes.Contains(body, []byte(`"code":"no_authorised_consent"`)) {
		t.Errorf("manual request on a rejected link = %d %s, want 409 no_authorised_consent", status, body)
	}
}

// TestEndToEndPurge: consent_deleted_by_user reaches the report-request
// function through the change feed, which deletes the stored reports.
func TestEndToEndPurge(t *testing.T) {
	e := startServer(t, nil)
	link := e.createLink(t, "personalTaxId", testCPF)
	e.consent(t, link.LinkURL, "authorise")
	e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	e.srv.sim.Wait() // every report delivered
	v := e.view(t, link.LinkID)
	if len(v.Reports) == 0 {
		t.Fatal("no reports before the purge")
	}
	if _, err := e.srv.sim.SetConsentStatus(v.Consents[0].ConsentID, klavi.ConsentDeletedByUser); err != nil {
		t.Fatalf("delete the consent at the simulator: %v", err)
	}
	e.waitFor(t, link.LinkID, "DELETED_BY_USER", hasStatus("DELETED_BY_USER"))
	e.waitFor(t, link.LinkID, "its reports deleted", func(linkapi.View) bool {
		_, err := os.Stat(filepath.Join(e.dir, filepath.FromSlash(reportstore.LinkPrefix(link.LinkID))))
		return os.IsNotExist(err)
	})
	for _, r := range v.Reports {
		key := reportstore.ReportKey(link.LinkID, r.ProductName, r.ProductReportID)
		if status, _, _ := e.do(t, http.MethodGet, reportHref(key), "", nil); status != http.StatusNotFound {
			t.Errorf("GET purged report %s = %d, want 404", key, status)
		}
	}
}

// TestEndToEndManualReports: with automatic requests off, reports come
// only from POST /links/{linkId}/reports.
func TestEndToEndManualReports(t *testing.T) {
	e := startServer(t, func(c *Config) { c.ManualReportsOnly = true })
	link := e.createLink(t, "personalTaxId", testCPF)
	e.consent(t, link.LinkURL, "authorise")
	e.waitFor(t, link.LinkID, "AUTHORISED", hasStatus("AUTHORISED"))

	status, body := e.postJSON(t, "/links/"+link.LinkID+"/reports", map[string]any{"products": []string{"pf_checking_account"}})
	if status != http.StatusAccepted {
		t.Fatalf("POST /links/%s/reports = %d %s, want 202", link.LinkID, status, body)
	}
	e.waitFor(t, link.LinkID, "its report", func(v linkapi.View) bool { return len(v.Reports) > 0 })
	v := e.checkReports(t, link.LinkID, e.diskFile(t))
	if v.Status != "REPORTS_RECEIVED" || len(v.Reports) != 1 || v.Reports[0].ProductName != "pf_checking_account" {
		t.Errorf("view = %s with reports %+v, want REPORTS_RECEIVED with one pf_checking_account", v.Status, v.Reports)
	}
}

func TestRoutes(t *testing.T) {
	e := startServer(t, nil)
	tests := []struct {
		name, method, path, contentType string
		body                            []byte
		wantStatus                      int
		wantType                        string
		wantBody                        string
	}{
		{"demo page", "GET", "/", "", nil, 200, "text/html", `id="create-link"`},
		{"demo script", "GET", "/assets/app.js", "", nil, 200, "text/javascript", "/links/"},
		{"demo styles", "GET", "/assets/style.css", "", nil, 200, "text/css", ".badge"},
		{"setup", "GET", "/dev/info", "", nil, 200, "application/json", `"klavi":"simulator"`},
		{"no such route", "GET", "/nope", "", nil, 404, "application/json", `{"message":"Not Found"}`},
		{"wrong method", "GET", "/webhooks/klavi/events", "", nil, 404, "application/json", `{"message":"Not Found"}`},
		{"unknown link", "GET", "/links/no-such-link", "", nil, 404, "application/json", `"code":"link_not_found"`},
		{"unknown link's reports", "GET", "/dev/links/no-such-link/reports", "", nil, 404, "application/json", `"code":"link_not_found"`},
		{"missing report", "GET", "/dev/reports/unmatched/p/missing.json", "", nil, 404, "application/json", `"code":"report_not_found"`},
		{"key outside the store", "GET", "/dev/reports/etc/passwd", "", nil, 404, "application/json", `"code":"report_not_found"`},
		{"escaped traversal", "GET", "/dev/reports/reports/a/b/..%2F..%2F..%2Fsecret.json", "", nil, 404, "application/json", `"code":"report_not_found"`},
		{"unsigned event", "POST", "/webhooks/klavi/events", "application/json", []byte(`[{"eventId":"e1"}]`), 401, "application/json", `"error"`},
		{"unsigned report", "POST", "/webhooks/klavi/reports", "application/json", []byte(`{"productReportId":"r"}`), 401, "application/json", `"error"`},
		{"invalid tax id", "POST", "/links", "application/json", []byte(`{"personalTaxId":"123.456.789-00"}`), 400, "application/json", `"code":"invalid_tax_id"`},
		{"body over Lambda's limit", "POST", "/links", "application/json", bytes.Repeat([]byte(" "), MaxRequestBytes+1), 413, "application/json", `{"message":"Request Entity Too Large"}`},
		{"simulator API", "POST", "/klavi/data/v1/auth", "application/json", []byte(`{"accessKey":"x","secretKey":"y"}`), 401, "application/json", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := e.do(t, tc.method, tc.path, tc.contentType, tc.body)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d (body %.200s)", status, tc.wantStatus, body)
			}
			if got := hdr.Get("Content-Type"); !strings.HasPrefix(got, tc.wantType) {
				t.Errorf("Content-Type = %q, want %s", got, tc.wantType)
			}
			if !bytes.Contains(body, []byte(tc.wantBody)) {
				t.Errorf("body = %.300s, want it to contain %s", body, tc.wantBody)
			}
		})
	}

	_, hdr, _ := e.do(t, http.MethodGet, "/", "", nil)
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("demo page CSP = %q, want the page kept to its own origin", csp)
	}
	_, _, page := e.do(t, http.MethodGet, "/", "", nil)
	for _, id := range []string{"create-link", "tax-id", "open-consent", "link-status", "consents", "report-requests", "reports", "request-reports", "error"} {
		if !bytes.Contains(page, []byte(`id="`+id+`"`)) {
			t.Errorf("demo page has no element with id %q", id)
		}
	}
	if bytes.Contains(page, []byte("https://")) || bytes.Contains(page, []byte("http://")) {
		t.Error("demo page refers to an external URL")
	}
}

func TestServerLifecycle(t *testing.T) {
	srv, err := New(Config{ReportsDir: filepath.Join(t.TempDir(), "r")})
	if err != nil {
		t.Fatal(err)
	}
	rec := &responseRecorder{header: http.Header{}}
	srv.Handler().ServeHTTP(rec, mustRequest(t, "/"))
	if rec.status != http.StatusServiceUnavailable {
		t.Errorf("Handler before Start = %d, want 503", rec.status)
	}
	if srv.URL() != "" {
		t.Errorf("URL before Start = %q, want empty", srv.URL())
	}
	u, err := srv.Start(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.URL() != u || !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Errorf("URL = %q, Start returned %q", srv.URL(), u)
	}
	if _, err := srv.Start(t.Context(), "127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	var desc strings.Builder
	srv.Describe(&desc)
	for _, want := range []string{u + "/", u + "/klavi", "in memory", srv.disk.Root()} {
		if !strings.Contains(desc.String(), want) {
			t.Errorf("Describe does not mention %q:\n%s", want, desc.String())
		}
	}
	if strings.Contains(desc.String(), DevCredentials().SecretKey) {
		t.Error("Describe prints the secret key")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := http.Get(u + "/"); err == nil {
		t.Error("server still answers after Close")
	}
	if _, err := srv.Start(t.Context(), "127.0.0.1:0"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

type responseRecorder struct {
	header http.Header
	status int
}

func (r *responseRecorder) Header() http.Header         { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *responseRecorder) WriteHeader(status int)      { r.status = status }

func mustRequest(t *testing.T, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEndToEndAWS runs the flow with every AWS part switched on, against
// the emulator: the DynamoDB table (whose stream the sweep replaces), the
// S3 bucket, and the token source over Secrets Manager.
func TestEndToEndAWS(t *testing.T) {
	cfg := awstest.Config(t)
	sm := secretsmanager.NewFromConfig(cfg)
	credsSecret, tokenSecret := awstest.Name(t, "klavi-creds"), awstest.Name(t, "klavi-token")
	const secretKey = "aws-run-secret-key"
	for name, value := range map[string]string{
		credsSecret: `{"accessKey":"aws-run-access-key","secretKey":"` + secretKey + `"}`,
		tokenSecret: `{}`,
	} {
		if _, err := sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
			t.Fatalf("create secret: %v", err)
		}
	}
	table, bucket := awstest.Name(t, "links"), awstest.Name(t, "reports")
	e := startServer(t, func(c *Config) {
		c.AWS = &cfg
		c.LinksTable, c.ReportsBucket = table, bucket
		c.CredentialsSecret, c.TokenSecret = credsSecret, tokenSecret
		c.SweepInterval = 100 * time.Millisecond
	})
	info := e.srv.Info()
	if info.LinkStore != "dynamodb:"+table || info.ReportStore != "s3:"+bucket || info.Tokens != "secretsmanager" || info.ChangeFeed || info.EventBus != "" {
		t.Errorf("Info = %+v, want DynamoDB, S3 and Secrets Manager without the change feed and its events", info)
	}

	link := e.createLink(t, "personalTaxId", testCPF)
	e.returnToDemo(t, e.consent(t, link.LinkURL, "authorise"), link.LinkID)
	v := e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	if len(v.ReportRequests) != 1 {
		t.Errorf("report requests = %+v, want the one the sweep made", v.ReportRequests)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	v = e.checkReports(t, link.LinkID, func(key string) []byte {
		t.Helper()
		out, err := s3c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("report %s not in the bucket: %v", key, err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})

	// A download URL is S3's own presigned GET of the stored bytes.
	key := reportstore.ReportKey(link.LinkID, v.Reports[0].ProductName, v.Reports[0].ProductReportID)
	signed, _, err := e.srv.downloads.PresignGet(t.Context(), key)
	if err != nil || !strings.HasPrefix(signed, awstest.Endpoint(t)) || !strings.Contains(signed, "X-Amz-Signature=") {
		t.Fatalf("PresignGet = %q, %v; want a presigned URL of the emulator", signed, err)
	}
	resp, err := http.Get(signed)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out, err := s3c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	stored, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if resp.StatusCode != http.StatusOK || len(stored) == 0 || !bytes.Equal(got, stored) {
		t.Errorf("presigned GET = %d with %d bytes, want 200 with the %d stored", resp.StatusCode, len(got), len(stored))
	}

	tok, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(tokenSecret)})
	if err != nil || !strings.Contains(aws.ToString(tok.SecretString), `"accessToken":"simtok_`) {
		t.Errorf("token secret after the scheduled refresh: %v, want a simulator token", err)
	}
	if strings.Contains(e.logs.String(), secretKey) {
		t.Error("logs contain the Klavi secret key")
	}
}

// TestEndToEndExternalKlavi switches Klavi to one reached over the network
// (here a simulator of its own standing in for the sandbox): no embedded
// simulator, the given credentials, webhooks coming back from outside.
func TestEndToEndExternalKlavi(t *testing.T) {
	creds := klavi.Credentials{AccessKey: "external-access-key", SecretKey: "external-secret-key"}
	ext := klavisim.New(klavisim.Options{AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, GenerateReports: true})
	extSrv := httptest.NewServer(ext)
	t.Cleanup(func() {
		ext.Close()
		extSrv.Close()
	})
	ext.SetPublicURL(extSrv.URL)

	e := startServer(t, func(c *Config) {
		c.KlaviBaseURL = extSrv.URL
		c.KlaviCredentials = creds
	})
	ext.SetEventWebhookURL(e.url + "/webhooks/klavi/events") // as entered in Klavi's console
	if e.srv.sim != nil {
		t.Fatal("the embedded simulator runs although Klavi is external")
	}
	if code, _, _ := e.do(t, http.MethodPost, "/klavi/data/v1/auth", "application/json", []byte(`{}`)); code != http.StatusNotFound {
		t.Errorf("POST /klavi/data/v1/auth = %d, want 404 without the embedded simulator", code)
	}
	if info := e.srv.Info(); info.Klavi != extSrv.URL || info.KlaviBaseURL != extSrv.URL {
		t.Errorf("Info Klavi = %q, %q; want %s", info.Klavi, info.KlaviBaseURL, extSrv.URL)
	}

	code, body := e.postJSON(t, "/links", map[string]any{"personalTaxId": testCPF, "redirectURL": e.url + "/?returned=1"})
	if code != http.StatusCreated {
		t.Fatalf("POST /links = %d %s", code, body)
	}
	var link createdLink
	if err := json.Unmarshal(body, &link); err != nil {
		t.Fatal(err)
	}
	if _, ok := ext.Link(link.LinkID); !ok {
		t.Fatalf("link %s was not created at the external Klavi", link.LinkID)
	}
	if _, err := ext.AuthoriseConsent(link.LinkID, "341"); err != nil {
		t.Fatalf("authorise at the external Klavi: %v", err)
	}
	e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	ext.Wait()
	v := e.view(t, link.LinkID)
	for _, r := range v.Reports {
		key := reportstore.ReportKey(link.LinkID, r.ProductName, r.ProductReportID)
		if _, err := os.Stat(filepath.Join(e.dir, filepath.FromSlash(key))); err != nil {
			t.Errorf("report %s from the external Klavi not stored: %v", key, err)
		}
	}
	if strings.Contains(e.logs.String(), creds.SecretKey) {
		t.Error("logs contain the Klavi secret key")
	}
}
