package klavisim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Business codes Klavi answers with HTTP 416 (reference §6).
const (
	codeInvalidAuthorisation = 4001
	codeInvalidProduct       = 4002
	codeInvalidProducts      = 4005
	codeInvalidCallback      = 4006
)

// timeLayout is Klavi's timestamp format, e.g. 2023-12-08T09:19:19.253Z.
const timeLayout = "2006-01-02T15:04:05.000Z"

// apiError is an error answer in Klavi's shape.
type apiError struct {
	status int    // HTTP status
	code   int    // "statusCode" of the body: status, or the business code on 416
	text   string // "error"
	msg    string // "message"; never holds a tax id, token or key
}

func errStatus(status int, msg string) *apiError {
	return &apiError{status: status, code: status, text: http.StatusText(status), msg: msg}
}

func errBadRequest(msg string) *apiError { return errStatus(http.StatusBadRequest, msg) }

func errBusiness(code int, msg string) *apiError {
	var text string
	switch code {
	case codeInvalidAuthorisation:
		text = "Invalid authorisation info"
	case codeInvalidProduct:
		text = "Invalid product info"
	case codeInvalidProducts:
		text = "Invalid products"
	case codeInvalidCallback:
		text = "Invalid productsCallbackURL"
	}
	return &apiError{status: http.StatusRequestedRangeNotSatisfiable, code: code, text: text, msg: msg}
}

type errorBody struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorBody{StatusCode: e.code, Error: e.text, Message: e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are marshalled; they cannot fail.
		status = http.StatusInternalServerError
		b = []byte(`{"statusCode":500,"error":"Internal Server Error","message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handlerFunc answers one route. params are the values of the pattern's
// {placeholders}, in order. A nil error answers 200 with resp as JSON.
type handlerFunc func(r *http.Request, body []byte, params []string) (resp any, err *apiError)

// pageFunc answers a browser route (the hosted consent page) itself, with
// HTML or a redirect instead of JSON.
type pageFunc func(w http.ResponseWriter, r *http.Request, body []byte, params []string)

type route struct {
	method   string
	segments []string // "" matches any one non-empty segment
	auth     bool     // needs a valid access token
	jsonBody bool     // needs Content-Type: application/json
	handle   handlerFunc
	page     pageFunc // set instead of handle on browser routes
}

const (
	public   = false
	needAuth = true
	noBody   = false
	jsonBody = true
)

func newRoute(method, pattern string, auth, body bool, h handlerFunc) route {
	segs := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = ""
		}
	}
	return route{method: method, segments: segs, auth: auth, jsonBody: body, handle: h}
}

// apiRoutes is the routing table of the data API. The consent page's rows
// are in consent_page.go.
func (s *Simulator) apiRoutes() []route {
	return []route{
		newRoute(http.MethodPost, "/data/v1/auth", public, jsonBody, s.handleAuth),
		newRoute(http.MethodGet, "/data/v1/refresh", needAuth, noBody, s.handleRefresh),
		newRoute(http.MethodPost, "/data/v1/links", needAuth, jsonBody, s.handleCreateLink),
		newRoute(http.MethodPost, "/data/v1/personal/institution-data", needAuth, jsonBody, s.reportHandler(PersonPersonal, LevelInstitution)),
		newRoute(http.MethodPost, "/data/v1/business/institution-data", needAuth, jsonBody, s.reportHandler(PersonBusiness, LevelInstitution)),
		newRoute(http.MethodPost, "/data/v1/personal/user-data", needAuth, jsonBody, s.reportHandler(PersonPersonal, LevelUser)),
		newRoute(http.MethodPost, "/data/v1/business/user-data", needAuth, jsonBody, s.reportHandler(PersonBusiness, LevelUser)),
		newRoute(http.MethodGet, "/data/v1/consents", needAuth, noBody, s.handleListConsents),
		newRoute(http.MethodGet, "/data/v1/consents/{consentId}", needAuth, noBody, s.handleGetConsent),
		newRoute(http.MethodDelete, "/data/v1/consents/{consentId}/revoke", needAuth, noBody, s.handleRevokeConsent),
	}
}

// match finds the route for method and path. When only the method is wrong
// it returns the allowed methods instead.
func (s *Simulator) match(method, path string) (*route, []string, []string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var allowed []string
	for i := range s.routes {
		rt := &s.routes[i]
		params, ok := matchSegments(rt.segments, segs)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, nil
		}
		allowed = append(allowed, rt.method)
	}
	return nil, nil, allowed
}

func matchSegments(pattern, segs []string) ([]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var params []string
	for i, p := range pattern {
		switch {
		case p == "" && segs[i] != "":
			params = append(params, segs[i])
		case p != segs[i] || p == "":
			return nil, false
		}
	}
	return params, true
}

// serveAPI routes, authenticates and answers one request whose body was
// already read.
func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request, body []byte) {
	rt, params, allowed := s.match(r.Method, r.URL.Path)
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, errStatus(http.StatusMethodNotAllowed, "method not allowed on this route"))
			return
		}
		writeError(w, errStatus(http.StatusNotFound, "route not found"))
		return
	}
	if rt.page != nil {
		rt.page(w, r, body, params)
		return
	}
	if rt.auth {
		tok, ok := bearerToken(r)
		if !ok || !s.tokenValid(tok) {
			writeError(w, errStatus(http.StatusUnauthorized, "Invalid or expired access token"))
			return
		}
	}
	if rt.jsonBody {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			writeError(w, errStatus(http.StatusUnsupportedMediaType, "Content-Type must be application/json"))
			return
		}
	}
	resp, e := rt.handle(r, body, params)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

type tokenResponse struct {
	AccessToken string `json:"accessToken"`
	ExpireIn    int    `json:"expireIn"`
}

func (s *Simulator) tokenResponse() tokenResponse {
	return tokenResponse{AccessToken: s.mintToken(), ExpireIn: int(s.tokenTTL / time.Second)}
}

// handleAuth is POST /data/v1/auth.
func (s *Simulator) handleAuth(_ *http.Request, body []byte, _ []string) (any, *apiError) {
	o, e := decodeObject(body, "accessKey", "secretKey")
	if e != nil {
		return nil, e
	}
	ak, e := o.str("accessKey")
	if e != nil {
		return nil, e
	}
	sk, e := o.str("secretKey")
	if e != nil {
		return nil, e
	}
	if ak == "" || sk == "" {
		return nil, errBadRequest("accessKey and secretKey are required")
	}
	// Both compared in full, in constant time, like a real credential check.
	akOK := subtle.ConstantTimeCompare([]byte(ak), []byte(s.accessKey))
	skOK := subtle.ConstantTimeCompare([]byte(sk), []byte(s.secretKey))
	if s.accessKey == "" || akOK&skOK != 1 {
		return nil, errStatus(http.StatusUnauthorized, "Invalid accessKey or secretKey")
	}
	return s.tokenResponse(), nil
}

// handleRefresh is GET /data/v1/refresh; the router already checked that
// the current token is valid. An expired token cannot be refreshed (Klavi's
// behaviour is unknown, §1): clients must fall back to /auth.
func (s *Simulator) handleRefresh(*http.Request, []byte, []string) (any, *apiError) {
	return s.tokenResponse(), nil
}

type linkResponse struct {
	LinkID    string `json:"linkId"`
	LinkURL   string `json:"linkURL"`
	LinkToken string `json:"linkToken"`
	ExpireIn  int    `json:"expireIn"`
}

// linkStringFields are the string fields of POST /links, exact casing.
func linkStringFields() []string {
	return []string{
		"personalTaxId", "businessTaxId", "email", "phone", "institutionCode", "redirectURL",
		"connectionKey", "applicationLink", "appLink", "appRedirectURLKey",
	}
}

// handleCreateLink is POST /data/v1/links.
func (s *Simulator) handleCreateLink(r *http.Request, body []byte, _ []string) (any, *apiError) {
	fields := linkStringFields()
	o, e := decodeObject(body, append(fields, "productsCallbackURL", "externalInfo")...)
	if e != nil {
		return nil, e
	}
	v := map[string]string{}
	for _, f := range fields {
		if v[f], e = o.str(f); e != nil {
			return nil, e
		}
	}
	switch {
	case v["personalTaxId"] != "" && v["businessTaxId"] != "":
		return nil, errBadRequest("personalTaxId and businessTaxId cannot both be set")
	case v["personalTaxId"] != "":
		e = checkCPF("personalTaxId", v["personalTaxId"])
	case v["businessTaxId"] != "":
		e = checkCNPJ("businessTaxId", v["businessTaxId"])
	}
	if e != nil {
		return nil, e
	}
	switch {
	case v["email"] != "" && !validEmail(v["email"]):
		return nil, errBadRequest("Invalid email")
	case v["phone"] != "" && !validPhone(v["phone"]):
		return nil, errBadRequest("Invalid phone")
	case v["institutionCode"] != "" && !validInstitutionCode(v["institutionCode"]):
		return nil, errBadRequest("institutionCode must be a 3-digit code")
	case v["redirectURL"] != "" && !absoluteHTTPURL(v["redirectURL"]):
		return nil, errBadRequest("redirectURL must be an absolute http(s) URL")
	case v["appLink"] != "" && v["appRedirectURLKey"] == "":
		return nil, errBadRequest("appRedirectURLKey is required with appLink")
	case v["appRedirectURLKey"] != "" && v["appLink"] == "":
		return nil, errBadRequest("appRedirectURLKey is only valid with appLink")
	}
	externalInfo, e := o.obj("externalInfo")
	if e != nil {
		return nil, e
	}
	var callbacks map[string]string
	if o.has("productsCallbackURL") {
		if callbacks, e = s.checkCallbacks(o["productsCallbackURL"]); e != nil {
			return nil, e
		}
	}

	now := s.now()
	l := &Link{
		ID:                  s.ids.uuid(),
		Token:               rand.Text(),
		PersonalTaxID:       v["personalTaxId"],
		BusinessTaxID:       v["businessTaxId"],
		Email:               v["email"],
		Phone:               v["phone"],
		InstitutionCode:     v["institutionCode"],
		RedirectURL:         v["redirectURL"],
		ConnectionKey:       v["connectionKey"],
		ApplicationLink:     v["applicationLink"],
		AppLink:             v["appLink"],
		AppRedirectURLKey:   v["appRedirectURLKey"],
		ProductsCallbackURL: callbacks,
		ExternalInfo:        externalInfo,
		CreatedAt:           now,
		ExpiresAt:           now.Add(s.linkTTL),
	}
	l.URL = s.linkBaseURL(r) + "/link/" + l.ID + "?v=" + url.QueryEscape(l.Token)
	s.addLink(l)
	return linkResponse{LinkID: l.ID, LinkURL: l.URL, LinkToken: l.Token, ExpireIn: int(s.linkTTL / time.Second)}, nil
}

type reportResponse struct {
	RequestID string `json:"requestId"`
	Message   string `json:"message"`
}

// reportHandler is POST /data/v1/{personType}/{level}.
func (s *Simulator) reportHandler(personType, level string) handlerFunc {
	allowed := []string{"taxId", "linkId", "consentIds", "products", "productsCallbackURL", "externalInfo"}
	if level == LevelInstitution {
		allowed = append(allowed, "institutionCode")
	}
	return func(_ *http.Request, body []byte, _ []string) (any, *apiError) {
		o, e := decodeObject(body, allowed...)
		if e != nil {
			return nil, e
		}
		rr := &ReportRequest{Level: level, PersonType: personType}
		if rr.TaxID, e = o.str("taxId"); e != nil {
			return nil, e
		}
		if rr.TaxID == "" {
			return nil, errBadRequest("taxId is required")
		}
		if e = checkTaxID(personType, "taxId", rr.TaxID); e != nil {
			return nil, e
		}
		if level == LevelInstitution {
			if rr.InstitutionCode, e = o.str("institutionCode"); e != nil {
				return nil, e
			}
			switch {
			case rr.InstitutionCode == "":
				return nil, errBadRequest("institutionCode is required")
			case !validInstitutionCode(rr.InstitutionCode):
				return nil, errBadRequest("institutionCode must be a 3-digit code")
			}
		}
		if rr.LinkID, e = o.str("linkId"); e != nil {
			return nil, e
		}
		if rr.ConsentIDs, e = o.strings("consentIds"); e != nil {
			return nil, e
		}
		if rr.ExternalInfo, e = o.obj("externalInfo"); e != nil {
			return nil, e
		}
		if raw, ok := o["products"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &rr.Products); err != nil {
				return nil, errBadRequest("products must be an array of strings")
			}
		}
		if e = s.checkProducts(personType, rr.Products); e != nil {
			return nil, e
		}
		if o.has("productsCallbackURL") {
			if rr.ProductsCallbackURL, e = s.checkCallbacks(o["productsCallbackURL"]); e != nil {
				return nil, e
			}
		}
		got, err := s.addReportRequest(rr)
		if err != nil {
			return nil, errBusiness(codeInvalidAuthorisation, "no AUTHORISED consent matches this request")
		}
		return reportResponse{RequestID: got.ID, Message: "ok"}, nil
	}
}

// consentJSON is the consent object of GET /consents; every field is always
// present, tax ids as "" when unused.
type consentJSON struct {
	ConsentID          string   `json:"consentId"`
	LinkID             string   `json:"linkId"`
	ExternalTrackID    string   `json:"externalTrackId"`
	PersonalTaxID      string   `json:"personalTaxId"`
	BusinessTaxID      string   `json:"businessTaxId"`
	InstitutionCode    string   `json:"institutionCode"`
	Status             string   `json:"status"`
	PermissionsApply   []string `json:"permissionsApply"`
	PermissionsGranted []string `json:"permissionsGranted"`
	ExpireAt           string   `json:"expireAt"`
	CreatedAt          string   `json:"createdAt"`
	UpdatedAt          string   `json:"updatedAt"`
}

func toConsentJSON(c Consent) consentJSON {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return consentJSON{
		ConsentID:          c.ID,
		LinkID:             c.LinkID,
		ExternalTrackID:    c.ExternalTrackID,
		PersonalTaxID:      c.PersonalTaxID,
		BusinessTaxID:      c.BusinessTaxID,
		InstitutionCode:    c.InstitutionCode,
		Status:             string(c.Status),
		PermissionsApply:   nonNil(c.PermissionsApply),
		PermissionsGranted: nonNil(c.PermissionsGranted),
		ExpireAt:           c.ExpireAt.UTC().Format(timeLayout),
		CreatedAt:          c.CreatedAt.UTC().Format(timeLayout),
		UpdatedAt:          c.UpdatedAt.UTC().Format(timeLayout),
	}
}

// handleListConsents is GET /data/v1/consents.
func (s *Simulator) handleListConsents(r *http.Request, _ []byte, _ []string) (any, *apiError) {
	q := r.URL.Query()
	for k, vs := range q {
		switch k {
		case "personalTaxId", "businessTaxId", "linkId":
		default:
			return nil, errBadRequest("unknown query parameter " + quoteName(k))
		}
		if len(vs) != 1 || vs[0] == "" {
			return nil, errBadRequest(k + " must be given once, not empty")
		}
	}
	var personType, field string
	switch {
	case q.Has("personalTaxId") && q.Has("businessTaxId"):
		return nil, errBadRequest("give personalTaxId or businessTaxId, not both")
	case q.Has("personalTaxId"):
		personType, field = PersonPersonal, "personalTaxId"
	case q.Has("businessTaxId"):
		personType, field = PersonBusiness, "businessTaxId"
	default:
		return nil, errBadRequest("personalTaxId or businessTaxId is required")
	}
	taxID := q.Get(field)
	if e := checkTaxID(personType, field, taxID); e != nil {
		return nil, e
	}
	out := []consentJSON{}
	for _, c := range s.consentsFor(personType, taxID, q.Get("linkId")) {
		out = append(out, toConsentJSON(c))
	}
	return out, nil
}

// handleGetConsent is GET /data/v1/consents/{consentId}.
func (s *Simulator) handleGetConsent(_ *http.Request, _ []byte, p []string) (any, *apiError) {
	c, ok := s.Consent(p[0])
	if !ok {
		return nil, errStatus(http.StatusNotFound, "consent not found")
	}
	return toConsentJSON(c), nil
}

type messageResponse struct {
	Message string `json:"message"`
}

// handleRevokeConsent is DELETE /data/v1/consents/{consentId}/revoke. The
// reference documents neither a body nor query parameters, so a client that
// sends one is mistaken about the endpoint: 400 rather than silently
// revoking. A revoke that moves the consent emits consent_revoked, which the
// event webhook delivers signed like every other event; revoking a consent
// already REVOKED answers ok and sends nothing new.
func (s *Simulator) handleRevokeConsent(r *http.Request, body []byte, p []string) (any, *apiError) {
	switch {
	case r.URL.RawQuery != "":
		return nil, errBadRequest("revoke takes no query parameters")
	case len(body) > 0:
		return nil, errBadRequest("revoke takes no request body")
	}
	err := s.revokeConsent(p[0])
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errStatus(http.StatusNotFound, "consent not found")
	case err != nil:
		return nil, errBusiness(codeInvalidAuthorisation, "consent is no longer active")
	}
	return messageResponse{Message: "ok"}, nil
}
