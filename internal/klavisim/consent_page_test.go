package klavisim

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// createLinkFull creates a link and returns the whole answer.
func (e *env) createLinkFull(t *testing.T, tok, body string) linkResponse {
	t.Helper()
	res := e.do(t, http.MethodPost, "/data/v1/links", tok, body)
	if res.status != http.StatusOK {
		t.Fatalf("create link: status %d, want 200; body %s", res.status, res.body)
	}
	var got linkResponse
	decode(t, res.body, &got)
	return got
}

// browse GETs a URL of the simulator without following redirects.
func (e *env) browse(t *testing.T, method, rawURL, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := *e.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(res.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b.Bytes()}
}

// decide posts the consent page's form.
func (e *env) decide(t *testing.T, l linkResponse, institution, decision string) response {
	t.Helper()
	form := url.Values{"v": {l.LinkToken}, "decision": {decision}}
	if institution != "" {
		form.Set("institutionCode", institution)
	}
	return e.browse(t, http.MethodPost, e.srv.URL+"/link/"+l.LinkID+"/decision",
		"application/x-www-form-urlencoded", form.Encode())
}

var institutionAttrRE = regexp.MustCompile(`data-institution="([0-9]{3})"`)

func TestConsentPageRenders(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{name: "every institution", body: `{"personalTaxId":"12345678909"}`, want: []string{"001", "033", "104", "260", "341"}},
		{name: "pre-selected institution", body: `{"personalTaxId":"12345678909","institutionCode":"260"}`, want: []string{"260"}},
		{name: "pre-selected unknown institution", body: `{"businessTaxId":"11222333000181","institutionCode":"999"}`, want: []string{"999"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			l := e.createLinkFull(t, e.token(t), tc.body)
			res := e.browse(t, http.MethodGet, l.LinkURL, "", "")
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
			}
			page := string(res.body)
			var got []string
			for _, m := range institutionAttrRE.FindAllStringSubmatch(page, -1) {
				got = append(got, m[1])
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("institutions = %v, want %v", got, tc.want)
			}
			for _, want := range []string{
				"<title>Klavi Sandbox</title>", `id="authorise"`, `id="reject"`, ">Autorizar<", ">Recusar<",
				`action="/link/` + l.LinkID + `/decision"`, `name="v" value="` + l.LinkToken + `"`,
				`data-link-id="` + l.LinkID + `"`, `<style>`,
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			// Self-contained: no external script, stylesheet or image.
			for _, bad := range []string{"<script", "<link ", "src=", "http://", "https://", testCPF, testCNPJ} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
		})
	}
}

func TestConsentPageErrors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LinkTTL = time.Minute })
	tok := e.token(t)
	expired := e.createLinkFull(t, tok, `{"personalTaxId":"12345678909"}`)
	e.clock.Advance(time.Minute)
	good := e.createLinkFull(t, tok, `{"personalTaxId":"12345678909"}`)
	noTax := e.createLinkFull(t, tok, `{}`)
	tests := []struct {
		name, path, code string
		status           int
	}{
		{name: "unknown link", path: "/link/nope?v=" + good.LinkToken, status: 404, code: "link_not_found"},
		{name: "wrong token", path: "/link/" + good.LinkID + "?v=wrong", status: 403, code: "invalid_token"},
		{name: "no token", path: "/link/" + good.LinkID, status: 403, code: "invalid_token"},
		{name: "another link's token", path: "/link/" + good.LinkID + "?v=" + noTax.LinkToken, status: 403, code: "invalid_token"},
		{name: "link without tax id", path: "/link/" + noTax.LinkID + "?v=" + url.QueryEscape(noTax.LinkToken), status: 422, code: "no_tax_id"},
		{name: "expired link", path: "/link/" + expired.LinkID + "?v=" + url.QueryEscape(expired.LinkToken), status: 410, code: "link_expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.browse(t, http.MethodGet, e.srv.URL+tc.path, "", "")
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", res.status, tc.status, res.body)
			}
			if want := `data-error="` + tc.code + `"`; !bytes.Contains(res.body, []byte(want)) {
				t.Errorf("page %s lacks %s", res.body, want)
			}
			if bytes.Contains(res.body, []byte(good.LinkToken)) || bytes.Contains(res.body, []byte(testCPF)) {
				t.Error("error page contains a token or tax id")
			}
		})
	}
}

func TestConsentDecisionErrors(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t)
	l := e.createLinkFull(t, tok, `{"personalTaxId":"12345678909","institutionCode":"260","redirectURL":"https://app.example.com/back"}`)
	form := func(v, inst, decision string) string {
		return url.Values{"v": {v}, "institutionCode": {inst}, "decision": {decision}}.Encode()
	}
	tests := []struct {
		name, ctype, body string
		status            int
	}{
		{name: "wrong token", ctype: "application/x-www-form-urlencoded", body: form("wrong", "260", "authorise"), status: 403},
		{name: "unknown decision", ctype: "application/x-www-form-urlencoded", body: form(l.LinkToken, "260", "maybe"), status: 400},
		{name: "not the pre-selected institution", ctype: "application/x-www-form-urlencoded", body: form(l.LinkToken, "001", "authorise"), status: 400},
		{name: "malformed institution", ctype: "application/x-www-form-urlencoded", body: form(l.LinkToken, "26", "reject"), status: 400},
		{name: "json body", ctype: "application/json", body: `{"decision":"authorise"}`, status: 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.browse(t, http.MethodPost, e.srv.URL+"/link/"+l.LinkID+"/decision", tc.ctype, tc.body)
			if res.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", res.status, tc.status, res.body)
			}
			if !bytes.Contains(res.body, []byte(`id="error"`)) {
				t.Errorf("body %s is not the error page", res.body)
			}
		})
	}
	if n := len(e.sim.Consents()); n != 0 {
		t.Errorf("consents after refused decisions = %d, want 0", n)
	}
	if got := e.events.names(); !reflect.DeepEqual(got, []string{EventLinkCreated}) {
		t.Errorf("events = %v, want only link_created", got)
	}
}

func TestConsentAuthoriseRedirectsAndSignsEvent(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, nil)
	l := e.createLinkFull(t, e.token(t), `{"personalTaxId":"12345678909",
		"redirectURL":"https://app.example.com/done?step=2","externalInfo":{"myTraceId":"t-1","n":1}}`)
	if res := e.browse(t, http.MethodGet, l.LinkURL, "", ""); res.status != http.StatusOK {
		t.Fatalf("page: status %d", res.status)
	}

	res := e.decide(t, l, "260", "authorise")
	if res.status != http.StatusSeeOther {
		t.Fatalf("decision: status %d, want 303; body %s", res.status, res.body)
	}
	loc, err := url.Parse(res.header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != "https://app.example.com/done" {
		t.Errorf("redirect to %s, want https://app.example.com/done", got)
	}
	wantQuery := url.Values{"step": {"2"}, "link_id": {l.LinkID}, "external_info": {`{"myTraceId":"t-1","n":1}`}}
	if got := loc.Query(); !reflect.DeepEqual(got, wantQuery) {
		t.Errorf("redirect query = %v, want %v", got, wantQuery)
	}

	cs := e.sim.Consents()
	if len(cs) != 1 || cs[0].Status != klavi.ConsentAuthorised || cs[0].InstitutionCode != "260" || cs[0].LinkID != l.LinkID {
		t.Fatalf("consents = %+v, want one AUTHORISED at 260 on the link", cs)
	}
	e.sim.Wait()
	evs := eventsOf(t, e, p)
	if got, want := eventNames(evs), []string{EventLinkCreated, EventConsentAuthorised}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	wantPayload := `{"personalTaxId":"12345678909","businessTaxId":"","linkId":"` + l.LinkID +
		`","consents":{"consentId":"` + cs[0].ID + `","externalTrackId":"` + cs[0].ExternalTrackID + `","institutionCode":"260"}}`
	if string(evs[1].Payload) != wantPayload {
		t.Errorf("payload = %s, want %s", evs[1].Payload, wantPayload)
	}
	if string(evs[1].ExternalInfo) != `{"myTraceId":"t-1","n":1}` {
		t.Errorf("externalInfo = %s, want the link's", evs[1].ExternalInfo)
	}
}

func TestConsentRejectRedirectsWithError(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, nil)
	l := e.createLinkFull(t, e.token(t), `{"personalTaxId":"12345678909","institutionCode":"033",
		"redirectURL":"https://app.example.com/done"}`)
	res := e.decide(t, l, "", "reject")
	if res.status != http.StatusSeeOther {
		t.Fatalf("decision: status %d, want 303; body %s", res.status, res.body)
	}
	loc, err := url.Parse(res.header.Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	q := loc.Query()
	if q.Get("link_id") != l.LinkID || q.Get("error") != "access_denied" || q.Get("error_description") == "" {
		t.Errorf("redirect query = %v, want link_id, error=access_denied and an error_description", q)
	}
	if q.Has("external_info") {
		t.Errorf("external_info = %q for a link without externalInfo, want none", q.Get("external_info"))
	}
	cs := e.sim.Consents()
	if len(cs) != 1 || cs[0].Status != klavi.ConsentRejected || cs[0].InstitutionCode != "033" {
		t.Fatalf("consents = %+v, want one REJECTED at 033", cs)
	}
	e.sim.Wait()
	evs := eventsOf(t, e, p)
	if got, want := eventNames(evs), []string{EventLinkCreated, EventConsentRejected}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if !strings.Contains(string(evs[1].Payload), `"consentId":"`+cs[0].ID+`"`) {
		t.Errorf("consent_rejected payload %s lacks the consent", evs[1].Payload)
	}
	if string(evs[1].ExternalInfo) != `{}` {
		t.Errorf("externalInfo = %s, want {}", evs[1].ExternalInfo)
	}
}

func TestConsentDecisionWithoutRedirectURL(t *testing.T) {
	tests := []struct {
		decision string
		status   klavi.ConsentStatus
	}{
		{decisionAuthorise, klavi.ConsentAuthorised},
		{decisionReject, klavi.ConsentRejected},
	}
	for _, tc := range tests {
		t.Run(tc.decision, func(t *testing.T) {
			e := newEnv(t, nil)
			l := e.createLinkFull(t, e.token(t), `{"businessTaxId":"12ABC34501DE35"}`)
			res := e.decide(t, l, "104", tc.decision)
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", res.status, res.body)
			}
			cs := e.sim.Consents()
			if len(cs) != 1 || cs[0].Status != tc.status {
				t.Fatalf("consents = %+v, want one %s", cs, tc.status)
			}
			for _, want := range []string{`id="result"`, `data-status="` + string(tc.status) + `"`, `data-consent-id="` + cs[0].ID + `"`, `data-institution="104"`} {
				if !bytes.Contains(res.body, []byte(want)) {
					t.Errorf("result page lacks %s", want)
				}
			}
			if bytes.Contains(res.body, []byte(testCNPJ2)) {
				t.Error("result page contains the tax id")
			}
		})
	}
}
