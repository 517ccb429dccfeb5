// Package linkapi serves the link routes of the HTTP API, the links-api
// function:
//
//	POST /links                    create a Klavi link for an end user
//	GET  /links/{linkId}           the link view: status, consents, report requests, reports
//	POST /links/{linkId}/reports   request the link's reports now (package reports)
//	GET  /links/{linkId}/reports/{productReportId}   a stored report's metadata and download URL
//	POST /links/{linkId}/revoke    revoke the link's authorised consents at Klavi (package revocation)
//	DELETE /links/{linkId}         erase the link on request: revoke, then purge
//
// The handler is plain logic over small interfaces (Klavi, the link store
// and the report service) so the Lambda function, the local development
// server and the tests all run the same code.
//
// # Who may see a link
//
// Every route first identifies its caller (package access, the one home of
// the rule): a request with no usable identity gets 401 unauthenticated and
// no link is read for it. POST /links stores the caller's identity as the
// link's owner. Every route on /links/{linkId} reads the link through
// Handler.access, which answers a link the caller may not see exactly as an
// unknown id: 404 link_not_found. Owners see their links; the back office
// (IAM callers, JWT callers with the admin scope) sees every link,
// including links first seen in a Klavi event, which have no owner. A
// purged link keeps its owner: GET shows it DELETED_BY_USER or DELETED,
// and its report routes answer 410 link_deleted.
//
// # Manual report requests
//
// POST /links/{linkId}/reports makes one request per AUTHORISED consent of
// the link, with trigger "manual" (reports.Service.RequestForLink: bounded
// by a cool-down, the consents' automatic requests untouched). The optional
// body {"products":[...]} (at most 30 names matching ^[a-z0-9_]+$, or
// "all" alone; repeats dropped) replaces the configured products.
//
// Answers: 202 {"requests":[{"requestId","consentId","institutionCode",
// "products"}]}, plus "failures" (consentId, institutionCode, error) when
// some consents failed and others did not; a request Klavi accepted is
// listed even if recording it failed, since asking again would duplicate
// it. The same consent and products asked again within
// REPORT_REQUEST_COOLDOWN (reports.Config.ManualCooldown) is not sent to
// Klavi: that consent is listed in "failures" with 429
// report_request_too_soon, or, when no request was made, the answer is 429
// report_request_too_soon with Retry-After (seconds until the first
// cool-down ends). 401 unauthenticated, 404 link_not_found,
// 410 link_deleted for a purged link (the id is
// right, the data is gone), 409 no_authorised_consent, 409 tax_id_unknown;
// 400/413/415 for the body as for POST /links. When every request failed,
// the answer is that of a temporary failure if there was one (503
// klavi_busy or klavi_unavailable, 429 report_request_too_soon, 502
// klavi_error), else of the first:
// 409 consent_not_authorised (Klavi 4001), 400 klavi_rejected_products
// (4002, 4005), 502 klavi_error.
package linkapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/access"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// linkCreator is the Klavi call this handler makes.
type linkCreator interface {
	CreateLink(ctx context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error)
}

// linkStore is the part of the link store this handler uses.
type linkStore interface {
	CreateLink(ctx context.Context, l linkstore.Link) error
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
}

// Config is what the handler needs besides its dependencies.
type Config struct {
	// AllowedRedirectHosts are the hosts a redirectURL may point at.
	AllowedRedirectHosts []string
	// ReportWebhookURL, when set, is the productsCallbackURL given to Klavi.
	// Otherwise it is derived from the request's domain and stage.
	ReportWebhookURL string
	// AllowLoopbackRedirect accepts http://127.0.0.1 and http://localhost
	// redirect URLs (hosts still checked). Only the local development
	// server sets it; a deployed function never does.
	AllowLoopbackRedirect bool
	// Downloads signs report download URLs; nil: no GET
	// /links/{linkId}/reports/{productReportId}.
	Downloads URLSigner
	// Revocation revokes and deletes links; nil: no POST
	// /links/{linkId}/revoke and no DELETE /links/{linkId}.
	Revocation Revoker
	// Access identifies callers (JWT_OWNER_CLAIM, JWT_ADMIN_SCOPE).
	Access  access.Policy
	Logger  *slog.Logger
	Metrics *metrics.Recorder
	Now     func() time.Time
}

// Handler answers the link routes.
type Handler struct {
	klavi   linkCreator
	store   linkStore
	reports reportRequester
	cfg     Config
	log     *slog.Logger
	metric  *metrics.Recorder
	now     func() time.Time
}

// New returns a Handler; r makes the manual report requests (nil: the
// handler serves no report route).
func New(k linkCreator, s linkStore, r reportRequester, cfg Config) *Handler {
	h := &Handler{klavi: k, store: s, reports: r, cfg: cfg, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// defaultLinkLifetime is used when Klavi's answer carries no expireIn.
const defaultLinkLifetime = 30 * time.Minute

// createResponse is the 201 body of POST /links.
type createResponse struct {
	LinkID    string    `json:"linkId"`
	LinkURL   string    `json:"linkURL"`
	LinkToken string    `json:"linkToken"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Route templates, as API Gateway names them in route keys.
const (
	routeLinks   = "/links"
	routeLink    = "/links/{linkId}"
	routeReports = "/links/{linkId}/reports"
	routeReport  = "/links/{linkId}/reports/{productReportId}"
	routeRevoke  = "/links/{linkId}/revoke"
)

// Handle routes one HTTP API request.
func (h *Handler) Handle(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
	method, path, id := route(req)
	switch {
	case path == routeLinks && method == http.MethodPost:
		return h.create(ctx, req), nil
	case path == routeLink && method == http.MethodGet:
		return h.get(ctx, req, id), nil
	case path == routeReports && h.reports != nil && method == http.MethodPost:
		return h.requestReports(ctx, req, id), nil
	case path == routeReport && h.cfg.Downloads != nil && method == http.MethodGet:
		return h.download(ctx, req, id, productReportID(req)), nil
	case path == routeRevoke && h.cfg.Revocation != nil && method == http.MethodPost:
		return h.revoke(ctx, req, id), nil
	case path == routeLink && h.cfg.Revocation != nil && method == http.MethodDelete:
		return h.deleteLink(ctx, req, id), nil
	case path == routeLinks, path == routeLink, path == routeReports && h.reports != nil,
		path == routeReport && h.cfg.Downloads != nil, path == routeRevoke && h.cfg.Revocation != nil:
		return httpapi.Error(http.StatusMethodNotAllowed, "method_not_allowed", "This route does not accept that method."), nil
	default:
		// A handler built without the report service serves no report
		// route.
		return httpapi.Error(http.StatusNotFound, "route_not_found", "No such route."), nil
	}
}

// route returns the method, the route template (routeLinks, routeLink,
// routeReports, or the path itself for any other) and the link id. They
// come from the route key when API Gateway matched one ("GET
// /links/{linkId}") and otherwise from the raw path, less the stage.
func route(req httpapi.Request) (method, path, linkID string) {
	if m, p, ok := strings.Cut(req.RouteKey, " "); ok && m != "ANY" && !strings.Contains(p, "{proxy+}") {
		return m, p, req.PathParameters["linkId"]
	}
	method = req.RequestContext.HTTP.Method
	path = req.RawPath
	if stage := req.RequestContext.Stage; stage != "" && stage != "$default" {
		path = strings.TrimPrefix(path, "/"+stage)
	}
	path = strings.TrimSuffix(path, "/")
	rest, ok := strings.CutPrefix(path, "/links/")
	if !ok {
		return method, path, ""
	}
	id, sub, nested := strings.Cut(rest, "/")
	switch {
	case id == "":
		return method, path, ""
	case !nested:
		return method, routeLink, id
	case sub == "reports":
		return method, routeReports, id
	case sub == "revoke":
		return method, routeRevoke, id
	case strings.HasPrefix(sub, "reports/") && !strings.Contains(sub[len("reports/"):], "/") && len(sub) > len("reports/"):
		return method, routeReport, id
	default:
		return method, path, ""
	}
}

func (h *Handler) create(ctx context.Context, req httpapi.Request) httpapi.Response {
	caller, deny, ok := h.caller(ctx, req)
	if !ok {
		return deny
	}
	if !httpapi.IsJSON(req) {
		return httpapi.Error(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
	}
	body, err := httpapi.Body(req, maxBodyBytes)
	if errors.Is(err, httpapi.ErrBodyTooLarge) {
		return httpapi.Error(http.StatusRequestEntityTooLarge, "body_too_large", "The body is larger than 8 KiB.")
	}
	if err != nil {
		return httpapi.Error(http.StatusBadRequest, "invalid_body", "The body could not be read.")
	}
	v, err := decodeCreate(body, h.cfg.AllowedRedirectHosts, h.cfg.AllowLoopbackRedirect)
	if err != nil {
		var inv *invalidError
		if errors.As(err, &inv) {
			h.log.InfoContext(ctx, "create link rejected", "error_code", inv.code)
			h.metric.Count("LinkRequestsRejected", 1, "Reason", inv.code)
			return httpapi.Error(http.StatusBadRequest, inv.code, inv.message)
		}
		h.log.ErrorContext(ctx, "create link: validate body", "error", err)
		return httpapi.Error(http.StatusBadRequest, "invalid_body", "The body could not be read.")
	}

	webhookURL := h.reportWebhookURL(req)
	kreq := klavi.CreateLinkRequest{
		Email:               v.email,
		Phone:               v.phone,
		InstitutionCode:     v.institutionCode,
		RedirectURL:         v.redirectURL,
		ProductsCallbackURL: map[string]string{"all": webhookURL},
		ExternalInfo:        v.externalInfo,
	}
	taxType := linkstore.TaxIDType("unknown")
	switch v.taxID.Kind() {
	case taxid.CPF:
		kreq.PersonalTaxID = v.taxID.Bare()
		taxType = "personal"
	case taxid.CNPJ:
		kreq.BusinessTaxID = v.taxID.Bare()
		taxType = "business"
	}

	link, err := h.createAtKlavi(ctx, kreq)
	if err != nil {
		return h.klaviFailure(ctx, err)
	}
	now := h.now().UTC()
	lifetime := link.ExpiresIn
	if lifetime <= 0 {
		lifetime = defaultLinkLifetime
	}
	rec := linkstore.Link{
		LinkID:           link.LinkID,
		TaxIDType:        taxType,
		TaxID:            v.taxID.Bare(),
		InstitutionCode:  v.institutionCode,
		RedirectURL:      v.redirectURL,
		ReportWebhookURL: webhookURL,
		ExternalInfo:     v.externalInfo,
		Origin:           "api",
		Owner:            caller.ID,
		ExpiresAt:        now.Add(lifetime),
		CreatedAt:        now,
		UpdatedAt:        now,
	}
	if err := h.store.CreateLink(ctx, rec); err != nil {
		// Klavi has the link but we could not record it. Its events will
		// still create the record (the event webhook accepts unknown links),
		// so the caller may retry for a fresh link.
		h.log.ErrorContext(ctx, "create link: store", "linkId", link.LinkID, "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The link could not be saved. Try again.")
	}
	h.log.InfoContext(ctx, "link created", "linkId", link.LinkID, "taxIdType", string(taxType))
	h.metric.Count("LinksCreated", 1, "TaxIdType", string(taxType))
	return httpapi.JSON(http.StatusCreated, createResponse{
		LinkID:    link.LinkID,
		LinkURL:   link.LinkURL,
		LinkToken: link.LinkToken,
		ExpiresAt: rec.ExpiresAt,
	})
}

// storeReserve is kept back from the invocation's deadline for storing the
// link and answering: a Klavi call that runs into the Lambda timeout would
// otherwise leave the caller with API Gateway's bare 500 and us without the
// link's record.
const storeReserve = 2 * time.Second

// createAtKlavi calls Klavi, ending the call storeReserve (or a quarter of
// the time left, if less) before the invocation's deadline.
func (h *Handler) createAtKlavi(ctx context.Context, r klavi.CreateLinkRequest) (*klavi.Link, error) {
	if dl, ok := ctx.Deadline(); ok {
		// A quarter of what is left when that is less (short test and
		// local deadlines), so the call always gets most of the time.
		reserve := min(storeReserve, time.Until(dl)/4)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-reserve))
		defer cancel()
	}
	return h.klavi.CreateLink(ctx, r)
}

// klaviFailure maps a failed Klavi call to our API's answer. Klavi's 4xx for
// what the caller sent (bad phone, unknown institution) is the caller's to
// fix; everything else is ours or Klavi's.
func (h *Handler) klaviFailure(ctx context.Context, err error) httpapi.Response {
	h.log.ErrorContext(ctx, "create link: klavi", "error", err)
	switch {
	case errors.Is(err, klavi.ErrBadRequest), errors.Is(err, klavi.ErrInvalidInstitution):
		return httpapi.Error(http.StatusBadRequest, "klavi_rejected_request", "Klavi rejected the link request; check phone, email and institutionCode.")
	case errors.Is(err, klavi.ErrRateLimited):
		return httpapi.Error(http.StatusServiceUnavailable, "klavi_busy", "Klavi is rate limiting requests. Try again shortly.")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return httpapi.Error(http.StatusServiceUnavailable, "klavi_unavailable", "Klavi did not answer in time. Try again.")
	case errors.As(err, new(*klavi.APIError)):
		return httpapi.Error(http.StatusBadGateway, "klavi_error", "Klavi could not create the link.")
	default:
		// Network failures and token problems (Secrets Manager, /auth).
		return httpapi.Error(http.StatusServiceUnavailable, "klavi_unavailable", "Klavi could not be reached. Try again.")
	}
}

// reportWebhookURL is where Klavi must POST this link's reports.
func (h *Handler) reportWebhookURL(req httpapi.Request) string {
	if h.cfg.ReportWebhookURL != "" {
		return h.cfg.ReportWebhookURL
	}
	return httpapi.ReportWebhookURL(req)
}

// get answers GET /links/{linkId}. A purged link is shown to whoever may
// see it, with its deleted status and no data.
func (h *Handler) get(ctx context.Context, req httpapi.Request, id string) httpapi.Response {
	link, deny, ok := h.access(ctx, req, id)
	if !ok {
		return deny
	}
	return httpapi.JSON(http.StatusOK, NewView(link, h.now()))
}

// caller identifies the request's caller. When it cannot, ok is false and
// deny is the answer: 401 unauthenticated.
func (h *Handler) caller(ctx context.Context, req httpapi.Request) (c access.Caller, deny httpapi.Response, ok bool) {
	c, err := h.cfg.Access.Identify(req)
	if err != nil {
		h.log.WarnContext(ctx, "request without a usable identity", "routeKey", req.RouteKey, "error", err)
		h.metric.Count("AccessDenied", 1, "Reason", "no_identity")
		return access.Caller{}, httpapi.Error(http.StatusUnauthorized, "unauthenticated", "The request carries no identity this API accepts."), false
	}
	return c, httpapi.Response{}, true
}

// access is the ownership check of every /links/{linkId} route: it
// identifies the caller, reads the link and decides whether the caller may
// see it (package access). When it may, ok is true and link is the link,
// purged or not: each route decides what a purged link means for it. When
// it may not, deny is the answer: 401 unauthenticated for a request
// without identity (before any read), 404 link_not_found for an invalid or
// unknown id and for another caller's link alike, so that ids cannot be
// probed, 503 storage_unavailable when the store failed.
func (h *Handler) access(ctx context.Context, req httpapi.Request, linkID string) (link *linkstore.Link, deny httpapi.Response, ok bool) {
	caller, deny, ok := h.caller(ctx, req)
	if !ok {
		return nil, deny, false
	}
	if !linkstore.ValidLinkID(linkID) {
		return nil, linkNotFound(), false
	}
	link, err := h.store.GetLink(ctx, linkID)
	if errors.Is(err, linkstore.ErrNotFound) {
		return nil, linkNotFound(), false
	}
	if err != nil {
		h.log.ErrorContext(ctx, "read link", "routeKey", req.RouteKey, "linkId", linkID, "error", err)
		return nil, httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The link could not be read. Try again."), false
	}
	if !caller.MaySee(link.Owner) {
		// The caller's identity is not logged: it may be a person's id.
		h.log.WarnContext(ctx, "link access denied: not the owner", "routeKey", req.RouteKey, "linkId", linkID, "error_code", "not_owner")
		h.metric.Count("AccessDenied", 1, "Reason", "not_owner")
		return nil, linkNotFound(), false
	}
	return link, httpapi.Response{}, true
}

func linkNotFound() httpapi.Response {
	return httpapi.Error(http.StatusNotFound, "link_not_found", "No link with this id.")
}
