package reportrequest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// Limits on what a caller may send to POST /links/{linkId}/reports.
const (
	maxBodyBytes    = 8 << 10
	maxProducts     = 30
	maxProductBytes = 64
)

// routeKey is the API Gateway route this handler serves.
const routeKey = "/links/{linkId}/reports"

// requestBody is the optional body of POST /links/{linkId}/reports.
type requestBody struct {
	Products *[]string `json:"products"`
}

// requestView is one report request made, in the 202 body.
type requestView struct {
	RequestID       string   `json:"requestId"`
	ConsentID       string   `json:"consentId"`
	InstitutionCode string   `json:"institutionCode"`
	Products        []string `json:"products"`
}

// failureView is one consent whose request failed while another's
// succeeded.
type failureView struct {
	ConsentID       string              `json:"consentId"`
	InstitutionCode string              `json:"institutionCode"`
	Error           httpapi.ErrorDetail `json:"error"`
	status          int
}

// acceptedResponse is the 202 body.
type acceptedResponse struct {
	Requests []requestView `json:"requests"`
	// Failures lists the consents whose request failed when others
	// succeeded; absent when every request was made.
	Failures []failureView `json:"failures,omitempty"`
}

// HandleHTTP serves POST /links/{linkId}/reports: one report request per
// AUTHORISED consent of the link, with the products of the body or the
// configured ones. It answers 202 with the requests made, and 404
// link_not_found, as for an unknown id, when the link has an owner other
// than the caller (httpapi.Caller); see the package documentation for the
// rest.
func (h *Handler) HandleHTTP(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
	method, linkID, ok := reportsRoute(req)
	switch {
	case !ok:
		return httpapi.Error(http.StatusNotFound, "route_not_found", "No such route."), nil
	case method != http.MethodPost:
		return httpapi.Error(http.StatusMethodNotAllowed, "method_not_allowed", "This route does not accept that method."), nil
	case !linkstore.ValidLinkID(linkID):
		return linkNotFound(), nil
	}
	products := h.products
	asked, rej := decodeBody(req)
	if rej != nil {
		h.metric.Count("ManualRequestsRejected", 1, "Reason", rej.code)
		return httpapi.Error(rej.status, rej.code, rej.message), nil
	}
	if asked != nil {
		products = asked
	}

	link, err := h.store.GetLink(ctx, linkID)
	if errors.Is(err, linkstore.ErrNotFound) {
		return linkNotFound(), nil
	}
	if err != nil {
		h.log.ErrorContext(ctx, "manual report request: read link", "linkId", linkID, "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The link could not be read. Try again."), nil
	}
	if link.Owner != "" && link.Owner != httpapi.Caller(req) {
		// Requests are billed: only the caller who created the link may
		// make them. Others get the answer for an unknown id (see package
		// linkapi for who owns a link).
		h.log.WarnContext(ctx, "manual report request: caller is not the owner", "linkId", linkID, "error_code", "not_owner")
		h.metric.Count("ManualRequestsRejected", 1, "Reason", "not_owner")
		return linkNotFound(), nil
	}
	if !link.PurgedAt.IsZero() {
		// The link exists as a tombstone; 410 tells the caller it will
		// never have reports again, where 404 would suggest a wrong id.
		return httpapi.Error(http.StatusGone, "link_deleted", "The user deleted this link's data; no reports can be requested."), nil
	}
	var consents []linkstore.Consent
	for _, c := range link.Consents {
		if isStatus(c.Status, klavi.ConsentAuthorised) {
			consents = append(consents, c)
		}
	}
	if len(consents) == 0 {
		return httpapi.Error(http.StatusConflict, "no_authorised_consent", "No consent of this link is AUTHORISED."), nil
	}
	if _, err := taxIDKind(link); err != nil {
		h.log.WarnContext(ctx, "manual report request: link has no tax id", "linkId", linkID)
		h.countFailure(err)
		return httpapi.Error(http.StatusConflict, "tax_id_unknown", "The link has no known CPF or CNPJ, so reports cannot be requested for it."), nil
	}

	webhook := h.webhookURL(link, httpapi.ReportWebhookURL(req))
	var out acceptedResponse
	for _, c := range consents {
		// Manual requests are bounded by the invocation's deadline too, so
		// that an accepted request is recorded before the function ends.
		budget, err := h.callBudget(ctx)
		if err != nil {
			h.log.WarnContext(ctx, "manual report request: out of time", "linkId", link.LinkID, "consentId", c.ConsentID, "error", err)
			return httpapi.Error(http.StatusServiceUnavailable, "klavi_unavailable", "There was not enough time left to ask Klavi. Try again."), nil
		}
		requestID, err := h.send(ctx, budget, link, c, products, webhook, linkstore.TriggerManual)
		institution := c.InstitutionCode
		if institution == "" {
			institution = link.InstitutionCode
		}
		if requestID != "" {
			if err != nil {
				// Klavi took the request; only our record of it failed.
				// Reporting a failure would invite a duplicate request.
				h.log.ErrorContext(ctx, "manual report request made but not recorded",
					"linkId", linkID, "consentId", c.ConsentID, "reportRequestId", requestID, "error", err)
			}
			out.Requests = append(out.Requests, requestView{
				RequestID: requestID, ConsentID: c.ConsentID, InstitutionCode: institution, Products: products,
			})
			continue
		}
		h.countFailure(err)
		h.log.ErrorContext(ctx, "manual report request failed",
			"linkId", linkID, "consentId", c.ConsentID, "reason", reasonOf(err), "error", err)
		status, code, message := failureResponse(err)
		out.Failures = append(out.Failures, failureView{
			ConsentID: c.ConsentID, InstitutionCode: institution,
			Error: httpapi.ErrorDetail{Code: code, Message: message}, status: status,
		})
	}
	if len(out.Requests) == 0 {
		f := worstFailure(out.Failures)
		return httpapi.Error(f.status, f.Error.Code, f.Error.Message), nil
	}
	return httpapi.JSON(http.StatusAccepted, out), nil
}

// worstFailure picks the failure the whole answer reports when every
// request failed: a temporary one first, so that the caller retries.
func worstFailure(fs []failureView) failureView {
	for _, f := range fs {
		if f.status == http.StatusServiceUnavailable {
			return f
		}
	}
	for _, f := range fs {
		if f.status == http.StatusBadGateway {
			return f
		}
	}
	return fs[0]
}

// failureResponse maps a failed request to our API's answer. The message
// is fixed; the cause goes to the log only.
func failureResponse(err error) (status int, code, message string) {
	switch reasonOf(err) {
	case reasonConsentNotAuth:
		return http.StatusConflict, "consent_not_authorised", "Klavi no longer accepts this consent; the user must authorise again."
	case reasonInvalidProduct, reasonNoProducts:
		return http.StatusBadRequest, "klavi_rejected_products", "Klavi rejected the products; request products contracted for this kind of tax id."
	case reasonNoInstitution:
		return http.StatusConflict, "institution_unknown", "The consent names no institution, so reports cannot be requested for it."
	case reasonRateLimited:
		return http.StatusServiceUnavailable, "klavi_busy", "Klavi is rate limiting requests. Try again shortly."
	case reasonKlaviUnavailable:
		return http.StatusServiceUnavailable, "klavi_unavailable", "Klavi could not be reached. Try again."
	case reasonNoWebhookURL, reasonInvalidRequest, reasonUnknownTaxIDType:
		return http.StatusInternalServerError, "internal_error", "The request could not be completed."
	default: // Klavi 5xx and the other rejections
		return http.StatusBadGateway, "klavi_error", "Klavi could not take the report request."
	}
}

func linkNotFound() httpapi.Response {
	return httpapi.Error(http.StatusNotFound, "link_not_found", "No link with this id.")
}

// reportsRoute returns the method and link id when the request is for
// /links/{linkId}/reports, from the route key when API Gateway matched it
// and otherwise from the raw path.
func reportsRoute(req httpapi.Request) (method, linkID string, ok bool) {
	if m, p, found := strings.Cut(req.RouteKey, " "); found && p == routeKey {
		return m, req.PathParameters["linkId"], true
	}
	path := req.RawPath
	if stage := req.RequestContext.Stage; stage != "" && stage != "$default" {
		path = strings.TrimPrefix(path, "/"+stage)
	}
	rest, ok1 := strings.CutPrefix(strings.TrimSuffix(path, "/"), "/links/")
	id, ok2 := strings.CutSuffix(rest, "/reports")
	if !ok1 || !ok2 || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return req.RequestContext.HTTP.Method, id, true
}

// rejection is a 4xx answer to a body that cannot be taken.
type rejection struct {
	status        int
	code, message string
}

// decodeBody reads the optional body. It returns the products asked for
// (nil for none) or why the body is refused.
func decodeBody(req httpapi.Request) ([]string, *rejection) {
	bad := func(status int, code, message string) *rejection {
		return &rejection{status: status, code: code, message: message}
	}
	body, err := httpapi.Body(req, maxBodyBytes)
	switch {
	case errors.Is(err, httpapi.ErrBodyTooLarge):
		return nil, bad(http.StatusRequestEntityTooLarge, "body_too_large", "The body is larger than 8 KiB.")
	case err != nil:
		return nil, bad(http.StatusBadRequest, "invalid_body", "The body could not be read.")
	case len(bytes.TrimSpace(body)) == 0:
		return nil, nil
	case !httpapi.IsJSON(req):
		return nil, bad(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json.")
	}
	var rb requestBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rb); err != nil {
		code, message := decodeError(err)
		return nil, bad(http.StatusBadRequest, code, message)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad(http.StatusBadRequest, "invalid_json", "The body must be a single JSON object.")
	}
	if rb.Products == nil {
		return nil, nil
	}
	products, message := checkProducts(*rb.Products)
	if message != "" {
		return nil, bad(http.StatusBadRequest, "invalid_products", message)
	}
	return products, nil
}

// checkProducts validates the products asked for and drops repeats. It
// returns a message for the caller when they are not acceptable.
func checkProducts(in []string) ([]string, string) {
	if len(in) == 0 {
		return nil, "products must list at least one product, or be left out to request the default ones."
	}
	if len(in) > maxProducts {
		return nil, fmt.Sprintf("products must list at most %d products.", maxProducts)
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, p := range in {
		if !productName(p) {
			return nil, fmt.Sprintf("Each product must be \"all\" or a product name of lower-case letters, digits and underscores, at most %d characters, such as \"pf_checking_account\".", maxProductBytes)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if seen["all"] && len(out) > 1 {
		return nil, "\"all\" already requests every contracted product; send it alone."
	}
	return out, ""
}

// productName reports whether p matches ^[a-z0-9_]+$ within the length
// limit ("all" does too).
func productName(p string) bool {
	if p == "" || len(p) > maxProductBytes {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func decodeError(err error) (code, message string) {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return "invalid_field_type", "products must be an array of strings."
	case errors.As(err, &typeErr):
		return "invalid_json", "The body must be a JSON object."
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this; the name is not
		// echoed, since a caller may put anything in it.
		return "unknown_field", "Unknown field. The only accepted field is products."
	default:
		return "invalid_json", "The body is not valid JSON."
	}
}
