package linkapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// reportRequester makes the manual report requests of a link
// (reports.Service).
type reportRequester interface {
	RequestForLink(ctx context.Context, link *linkstore.Link, products []string, fallbackWebhookURL string) ([]reports.ConsentRequest, error)
}

// Limits on the products a caller may ask for in POST
// /links/{linkId}/reports (the body is bounded by maxBodyBytes, as for
// POST /links).
const (
	maxProducts     = 30
	maxProductBytes = 64
)

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
	// retryAt is when a request refused for its cool-down may be made
	// again.
	retryAt time.Time
}

// acceptedResponse is the 202 body.
type acceptedResponse struct {
	Requests []requestView `json:"requests"`
	// Failures lists the consents whose request failed when others
	// succeeded; absent when every request was made.
	Failures []failureView `json:"failures,omitempty"`
}

// requestReports serves POST /links/{linkId}/reports for caller: one
// report request per AUTHORISED consent of the link, with the products of
// the body or the configured ones (reports.Service.RequestForLink). It
// answers 202 with the requests made; Handler.access decides who may ask
// (requests are billed); see the package documentation for the rest.
func (h *Handler) requestReports(ctx context.Context, req httpapi.Request, linkID string) httpapi.Response {
	link, deny, ok := h.access(ctx, req, linkID)
	if !ok {
		if deny.StatusCode == http.StatusNotFound {
			h.metric.Count("ManualRequestsRejected", 1, "Reason", "not_found")
		}
		return deny
	}
	if !link.PurgedAt.IsZero() {
		return purgedLink()
	}
	products, rej := decodeReportsBody(req)
	if rej != nil {
		h.metric.Count("ManualRequestsRejected", 1, "Reason", rej.code)
		return httpapi.Error(rej.status, rej.code, rej.message)
	}

	made, err := h.reports.RequestForLink(ctx, link, products, h.reportWebhookURL(req))
	switch {
	case errors.Is(err, reports.ErrLinkPurged):
		// The link exists as a tombstone; 410 tells the caller it will
		// never have reports again, where 404 would suggest a wrong id.
		return purgedLink()
	case errors.Is(err, reports.ErrNoAuthorisedConsent):
		return httpapi.Error(http.StatusConflict, "no_authorised_consent", "No consent of this link is AUTHORISED.")
	case errors.Is(err, reports.ErrUnknownTaxIDType):
		return httpapi.Error(http.StatusConflict, "tax_id_unknown", "The link has no known CPF or CNPJ, so reports cannot be requested for it.")
	case errors.Is(err, reports.ErrDeadlineNear):
		return httpapi.Error(http.StatusServiceUnavailable, "klavi_unavailable", "There was not enough time left to ask Klavi. Try again.")
	case err != nil:
		h.log.ErrorContext(ctx, "manual report request", "linkId", linkID, "error", err)
		return httpapi.Error(http.StatusInternalServerError, "internal_error", "The request could not be completed.")
	}
	var out acceptedResponse
	for _, r := range made {
		if r.RequestID != "" {
			// Listed even when recording it failed: Klavi took the
			// request, and reporting a failure would invite a duplicate.
			out.Requests = append(out.Requests, requestView{
				RequestID: r.RequestID, ConsentID: r.ConsentID, InstitutionCode: r.InstitutionCode, Products: r.Products,
			})
			continue
		}
		status, code, message := failureResponse(r.Err)
		f := failureView{
			ConsentID: r.ConsentID, InstitutionCode: r.InstitutionCode,
			Error: httpapi.ErrorDetail{Code: code, Message: message}, status: status,
		}
		if ce := (*linkstore.CooldownError)(nil); errors.As(r.Err, &ce) {
			f.retryAt = ce.Until
		}
		out.Failures = append(out.Failures, f)
	}
	if len(out.Requests) == 0 {
		f := worstFailure(out.Failures)
		resp := httpapi.Error(f.status, f.Error.Code, f.Error.Message)
		if f.status == http.StatusTooManyRequests {
			resp.Headers["Retry-After"] = retryAfter(out.Failures, h.now())
		}
		return resp
	}
	return httpapi.JSON(http.StatusAccepted, out)
}

// worstFailure picks the failure the whole answer reports when every
// request failed: a temporary one first, so that the caller retries, then
// a cool-down, which tells when.
func worstFailure(fs []failureView) failureView {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway} {
		for _, f := range fs {
			if f.status == status {
				return f
			}
		}
	}
	return fs[0]
}

// retryAfter is the Retry-After value (whole seconds, at least 1) of a 429:
// when the first of the refused requests may be made again.
func retryAfter(fs []failureView, now time.Time) string {
	var first time.Time
	for _, f := range fs {
		if !f.retryAt.IsZero() && (first.IsZero() || f.retryAt.Before(first)) {
			first = f.retryAt
		}
	}
	secs := int64(math.Ceil(first.Sub(now).Seconds()))
	return strconv.FormatInt(max(secs, 1), 10)
}

// failureResponse maps a failed request to our API's answer. The message
// is fixed; the cause goes to the log only.
func failureResponse(err error) (status int, code, message string) {
	switch reports.ReasonOf(err) {
	case reports.ReasonTooSoon:
		return http.StatusTooManyRequests, "report_request_too_soon", "The same reports were requested for this consent moments ago; try again after Retry-After seconds."
	case reports.ReasonConsentNotAuth:
		return http.StatusConflict, "consent_not_authorised", "Klavi no longer accepts this consent; the user must authorise again."
	case reports.ReasonInvalidProduct, reports.ReasonNoProducts:
		return http.StatusBadRequest, "klavi_rejected_products", "Klavi rejected the products; request products contracted for this kind of tax id."
	case reports.ReasonNoInstitution:
		return http.StatusConflict, "institution_unknown", "The consent names no institution, so reports cannot be requested for it."
	case reports.ReasonRateLimited:
		return http.StatusServiceUnavailable, "klavi_busy", "Klavi is rate limiting requests. Try again shortly."
	case reports.ReasonKlaviUnavailable:
		return http.StatusServiceUnavailable, "klavi_unavailable", "Klavi could not be reached. Try again."
	case reports.ReasonNoWebhookURL, reports.ReasonInvalidRequest, reports.ReasonUnknownTaxIDType:
		return http.StatusInternalServerError, "internal_error", "The request could not be completed."
	default: // Klavi 5xx and the other rejections
		return http.StatusBadGateway, "klavi_error", "Klavi could not take the report request."
	}
}

// rejection is a 4xx answer to a body that cannot be taken.
type rejection struct {
	status        int
	code, message string
}

// decodeReportsBody reads the optional body of POST
// /links/{linkId}/reports. It returns the products asked for (nil for
// none) or why the body is refused.
func decodeReportsBody(req httpapi.Request) ([]string, *rejection) {
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
		code, message := decodeReportsError(err)
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

func decodeReportsError(err error) (code, message string) {
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
