package klavisim

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"net/url"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Institution is a bank the hosted consent page offers.
type Institution struct {
	Code string // COMPE-style code, e.g. "260"
	Name string
}

// Institutions returns the banks the consent page lists when the link did
// not pre-select one.
func Institutions() []Institution {
	return []Institution{
		{Code: "001", Name: "Banco do Brasil"},
		{Code: "033", Name: "Santander"},
		{Code: "104", Name: "CAIXA"},
		{Code: "260", Name: "Nubank"},
		{Code: "341", Name: "Itaú"},
	}
}

func institutionName(code string) string {
	for _, in := range Institutions() {
		if in.Code == code {
			return in.Name
		}
	}
	return "Instituição " + code
}

// Decisions posted by the consent page.
const (
	decisionAuthorise = "authorise"
	decisionReject    = "reject"
)

// rejectDescription is the error_description of a refused consent.
const rejectDescription = "The user rejected the consent at the institution"

// pageRoutes are the browser routes of the hosted consent page, the
// linkURL that POST /links returns.
func (s *Simulator) pageRoutes() []route {
	return []route{
		{method: http.MethodGet, segments: []string{"link", ""}, page: s.handleConsentPage},
		{method: http.MethodPost, segments: []string{"link", "", "decision"}, page: s.handleDecision},
	}
}

// pageTemplates are parsed once per Simulator: no package-level state.
type pageTemplates struct {
	consent, result, failure *template.Template
}

func newPageTemplates() *pageTemplates {
	parse := func(body string) *template.Template {
		return template.Must(template.Must(template.New("layout").Parse(pageLayout)).Parse(body))
	}
	return &pageTemplates{
		consent: parse(consentBody),
		result:  parse(resultBody),
		failure: parse(failureBody),
	}
}

type consentPageData struct {
	LinkID       string
	Token        string
	PersonType   string
	Institutions []Institution
	Permissions  []string
}

type resultPageData struct {
	LinkID          string
	ConsentID       string
	Status          string
	InstitutionCode string
	InstitutionName string
	Authorised      bool
}

type failurePageData struct {
	Status  int
	Code    string // stable, for a browser test
	Message string // never holds a tax id or token
}

// pageError is a 4xx answer of the consent page.
type pageError struct {
	status int
	code   string
	msg    string
}

// checkLinkToken finds the link of a page request and checks its linkToken
// and expiry.
func (s *Simulator) checkLinkToken(linkID, token string) (Link, *pageError) {
	l, ok := s.Link(linkID)
	switch {
	case !ok:
		return Link{}, &pageError{http.StatusNotFound, "link_not_found", "Link não encontrado / link not found."}
	case token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(l.Token)) != 1:
		return Link{}, &pageError{http.StatusForbidden, "invalid_token", "Token do link inválido / invalid link token."}
	case !s.now().Before(l.ExpiresAt):
		return Link{}, &pageError{http.StatusGone, "link_expired", "Link expirado / link expired."}
	case l.PersonalTaxID == "" && l.BusinessTaxID == "":
		return Link{}, &pageError{http.StatusUnprocessableEntity, "no_tax_id",
			"O link não tem CPF/CNPJ; o sandbox precisa de personalTaxId ou businessTaxId / the link has no tax id."}
	}
	return l, nil
}

// handleConsentPage is GET /link/{linkId}?v=<linkToken>.
func (s *Simulator) handleConsentPage(w http.ResponseWriter, r *http.Request, _ []byte, p []string) {
	l, perr := s.checkLinkToken(p[0], r.URL.Query().Get("v"))
	if perr != nil {
		s.writeFailure(w, perr)
		return
	}
	insts := Institutions()
	if l.InstitutionCode != "" {
		insts = []Institution{{Code: l.InstitutionCode, Name: institutionName(l.InstitutionCode)}}
	}
	personType := PersonPersonal
	if l.BusinessTaxID != "" {
		personType = PersonBusiness
	}
	s.writePage(w, http.StatusOK, s.pages.consent, consentPageData{
		LinkID:       l.ID,
		Token:        l.Token,
		PersonType:   personType,
		Institutions: insts,
		Permissions:  defaultPermissions(),
	})
}

// handleDecision is POST /link/{linkId}/decision, the consent page's form:
// v (the linkToken), institutionCode and decision (authorise or reject).
func (s *Simulator) handleDecision(w http.ResponseWriter, r *http.Request, body []byte, p []string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		s.writeFailure(w, &pageError{http.StatusUnsupportedMediaType, "bad_form", "Formulário inválido / invalid form."})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.writeFailure(w, &pageError{http.StatusBadRequest, "bad_form", "Formulário inválido / invalid form."})
		return
	}
	token := form.Get("v")
	if token == "" {
		token = r.URL.Query().Get("v")
	}
	l, perr := s.checkLinkToken(p[0], token)
	if perr != nil {
		s.writeFailure(w, perr)
		return
	}

	var c Consent
	switch form.Get("decision") {
	case decisionAuthorise:
		c, err = s.AuthoriseConsent(l.ID, form.Get("institutionCode"))
	case decisionReject:
		c, err = s.RejectConsent(l.ID, form.Get("institutionCode"))
	default:
		s.writeFailure(w, &pageError{http.StatusBadRequest, "bad_decision", "Decisão inválida / decision must be authorise or reject."})
		return
	}
	switch {
	case errors.Is(err, ErrInstitution):
		s.writeFailure(w, &pageError{http.StatusBadRequest, "bad_institution", "Instituição inválida / invalid institution."})
		return
	case errors.Is(err, ErrLinkExpired):
		s.writeFailure(w, &pageError{http.StatusGone, "link_expired", "Link expirado / link expired."})
		return
	case err != nil:
		s.writeFailure(w, &pageError{http.StatusNotFound, "link_not_found", "Link não encontrado / link not found."})
		return
	}

	authorised := c.Status == klavi.ConsentAuthorised
	if l.RedirectURL == "" {
		s.writePage(w, http.StatusOK, s.pages.result, resultPageData{
			LinkID:          l.ID,
			ConsentID:       c.ID,
			Status:          string(c.Status),
			InstitutionCode: c.InstitutionCode,
			InstitutionName: institutionName(c.InstitutionCode),
			Authorised:      authorised,
		})
		return
	}
	http.Redirect(w, r, redirectBack(l, authorised), http.StatusSeeOther)
}

// redirectBack is the link's redirectURL with Klavi's snake_case query
// parameters (reference §2). external_info is the link's externalInfo as
// compact JSON, left out when the link had none.
func redirectBack(l Link, authorised bool) string {
	u, err := url.Parse(l.RedirectURL)
	if err != nil {
		// POST /links only stores absolute http(s) URLs.
		return l.RedirectURL
	}
	q := u.Query()
	q.Set("link_id", l.ID)
	if len(l.ExternalInfo) > 0 {
		q.Set("external_info", string(l.ExternalInfo))
	}
	if !authorised {
		q.Set("error", "access_denied")
		q.Set("error_description", rejectDescription)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Simulator) writeFailure(w http.ResponseWriter, e *pageError) {
	s.writePage(w, e.status, s.pages.failure, failurePageData{Status: e.status, Code: e.code, Message: e.msg})
}

// writePage renders a whole page before writing, so that a template error
// cannot leave half a page behind a 200.
func (s *Simulator) writePage(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		writeError(w, errStatus(http.StatusInternalServerError, "render page"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page URL carries the link token: keep it out of Referer headers.
	h.Set("Referrer-Policy", "no-referrer")
	// No form-action: browsers apply it to the redirect that follows the
	// form, which leaves for the partner's redirectURL.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

const pageLayout = `<!doctype html>
<html lang="pt-BR">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Klavi Sandbox</title>
<style>
:root { --ink: #1d2433; --muted: #5b6475; --line: #dfe3ea; --brand: #5b3df5; --brand-dark: #4529d6; --bad: #c62828; --ok: #1b7f4b; }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f3f4f8; }
main { width: min(440px, 100% - 32px); background: #fff; border: 1px solid var(--line); border-radius: 14px;
  padding: 28px; box-shadow: 0 8px 28px rgba(29, 36, 51, .08); }
header { display: flex; align-items: center; gap: 10px; margin-bottom: 8px; }
.logo { width: 34px; height: 34px; border-radius: 9px; background: var(--brand); color: #fff; font-weight: 700;
  display: grid; place-items: center; }
h1 { font-size: 1.25rem; margin: 0; }
.badge { margin-left: auto; font-size: .72rem; text-transform: uppercase; letter-spacing: .06em; color: var(--brand);
  border: 1px solid var(--brand); border-radius: 999px; padding: 2px 8px; }
p { color: var(--muted); margin: 8px 0 18px; }
fieldset { border: 0; margin: 0 0 18px; padding: 0; display: grid; gap: 8px; }
legend { font-weight: 600; margin-bottom: 8px; }
label.inst { display: flex; align-items: center; gap: 12px; padding: 12px 14px; border: 1px solid var(--line);
  border-radius: 10px; cursor: pointer; }
label.inst:hover { border-color: var(--brand); }
label.inst input { accent-color: var(--brand); }
.code { font-variant-numeric: tabular-nums; color: var(--muted); width: 2.5em; }
ul.perms { margin: 0 0 20px; padding-left: 20px; color: var(--muted); font-size: .9rem; }
.actions { display: flex; gap: 10px; }
button { flex: 1; font: inherit; font-weight: 600; padding: 11px 14px; border-radius: 10px; cursor: pointer;
  border: 1px solid var(--brand); background: var(--brand); color: #fff; }
button:hover { background: var(--brand-dark); }
button.secondary { background: #fff; color: var(--ink); border-color: var(--line); }
button.secondary:hover { border-color: var(--bad); color: var(--bad); }
.status { font-weight: 700; }
.status.ok { color: var(--ok); }
.status.bad { color: var(--bad); }
small { color: var(--muted); }
</style>
</head>
<body>
{{template "body" .}}
</body>
</html>
`

const consentBody = `{{define "body"}}<main id="consent" data-link-id="{{.LinkID}}" data-person-type="{{.PersonType}}">
<header><div class="logo">K</div><h1>Klavi Sandbox</h1><span class="badge">sandbox</span></header>
<p>Escolha a instituição e autorize o compartilhamento dos seus dados (Open Finance simulado).<br>
<small>Choose an institution and authorise sharing your data (simulated Open Finance).</small></p>
<form method="post" action="/link/{{.LinkID}}/decision" id="decision-form">
<input type="hidden" name="v" value="{{.Token}}">
<fieldset id="institutions">
<legend>Instituição / Institution</legend>
{{range $i, $in := .Institutions}}<label class="inst" data-institution="{{$in.Code}}" for="institution-{{$in.Code}}">
<input type="radio" name="institutionCode" value="{{$in.Code}}" id="institution-{{$in.Code}}"{{if eq $i 0}} checked{{end}}>
<span class="code">{{$in.Code}}</span><span class="name">{{$in.Name}}</span></label>
{{end}}</fieldset>
<ul class="perms" id="permissions">{{range .Permissions}}<li data-permission="{{.}}">{{.}}</li>{{end}}</ul>
<div class="actions">
<button type="submit" name="decision" value="authorise" id="authorise">Autorizar</button>
<button type="submit" name="decision" value="reject" id="reject" class="secondary">Recusar</button>
</div>
</form>
</main>{{end}}`

const resultBody = `{{define "body"}}<main id="result" data-status="{{.Status}}" data-link-id="{{.LinkID}}" data-consent-id="{{.ConsentID}}" data-institution="{{.InstitutionCode}}">
<header><div class="logo">K</div><h1>Klavi Sandbox</h1><span class="badge">sandbox</span></header>
{{if .Authorised}}<p class="status ok" id="result-message">Consentimento autorizado / consent authorised</p>
{{else}}<p class="status bad" id="result-message">Consentimento recusado / consent rejected</p>
{{end}}<p>{{.InstitutionCode}} {{.InstitutionName}}<br><small>Você já pode fechar esta janela / you may close this window.</small></p>
</main>{{end}}`

const failureBody = `{{define "body"}}<main id="error" data-status="{{.Status}}" data-error="{{.Code}}">
<header><div class="logo">K</div><h1>Klavi Sandbox</h1><span class="badge">sandbox</span></header>
<p class="status bad" id="error-message">{{.Message}}</p>
</main>{{end}}`
