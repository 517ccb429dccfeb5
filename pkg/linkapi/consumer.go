package linkapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// The routes the fintech's own systems use besides reading a link:
//
// GET /links/{linkId}/reports/{productReportId} answers 200 with the
// report's metadata and a presigned S3 GET URL of the stored bytes
// (URLSigner, valid REPORT_URL_TTL); 404 report_not_found, 404
// link_not_found, 410 link_deleted after a purge.
//
// POST /links/{linkId}/revoke revokes every AUTHORISED consent at Klavi
// (package revocation) and answers 202 {"linkId","consents":[{"consentId",
// "status"}]}, plus "failures" when some consents failed and others did
// not; asking again asks Klavi for nothing new. 409 no_active_consent when
// none is authorised, 410 link_deleted, 503 revoke_in_progress while
// another call is revoking; when every revocation failed, the Klavi
// failure's answer (503 klavi_busy or klavi_unavailable, 502 klavi_error).
//
// DELETE /links/{linkId} revokes as above, then purges the link as Klavi's
// consent_deleted_by_user does, and answers 202 {"linkId","status":
// "DELETED"} (DELETED_BY_USER for a link the user had deleted already);
// asking again answers the same. When a consent could not be revoked the
// link is not purged and reads as before: 503 deletion_in_progress while
// another call works on it, else the Klavi failure's answer; the deletion
// stays recorded and the reconciliation sweep finishes it.
//
// Each reads the link through Handler.access, the ownership check of every
// /links/{linkId} route.

// URLSigner makes download URLs of stored reports (reportstore.Presigner).
type URLSigner interface {
	PresignGet(ctx context.Context, key string) (url string, expiresAt time.Time, err error)
}

// Revoker revokes a link's consents and deletes links
// (revocation.Service).
type Revoker interface {
	Revoke(ctx context.Context, link *linkstore.Link) ([]revocation.ConsentResult, error)
	Delete(ctx context.Context, link *linkstore.Link) (string, error)
}

// purgedLink is the answer of a route that acts on a link's data (its
// reports, its consents) once the link was purged: the id is right, the
// data is gone for good.
func purgedLink() httpapi.Response {
	return httpapi.Error(http.StatusGone, "link_deleted", "This link's data was deleted.")
}

// productReportID is the {productReportId} of the request: API Gateway's
// path parameter, else the last segment of the raw path.
func productReportID(req httpapi.Request) string {
	if id, ok := req.PathParameters["productReportId"]; ok {
		return id
	}
	path := strings.TrimSuffix(req.RawPath, "/")
	id, err := url.PathUnescape(path[strings.LastIndexByte(path, '/')+1:])
	if err != nil {
		return ""
	}
	return id
}

// downloadResponse is the 200 body of GET
// /links/{linkId}/reports/{productReportId}.
type downloadResponse struct {
	ProductReportID string    `json:"productReportId"`
	ProductName     string    `json:"productName"`
	RequestID       string    `json:"requestId"`
	Code            int       `json:"code"`
	Bytes           int64     `json:"bytes"`
	SHA256          string    `json:"sha256"`
	ReceivedAt      time.Time `json:"receivedAt"`
	URL             string    `json:"url"`
	URLExpiresAt    time.Time `json:"urlExpiresAt"`
}

func (h *Handler) download(ctx context.Context, req httpapi.Request, linkID, reportID string) httpapi.Response {
	link, deny, ok := h.access(ctx, req, linkID)
	if !ok {
		return deny
	}
	if !link.PurgedAt.IsZero() {
		return purgedLink()
	}
	for _, r := range link.Reports {
		if r.ProductReportID != reportID || reportID == "" {
			continue
		}
		u, expires, err := h.cfg.Downloads.PresignGet(ctx, r.ObjectKey)
		if err != nil {
			h.log.ErrorContext(ctx, "report download: presign", "linkId", linkID, "productReportId", reportID, "error", err)
			return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The download could not be prepared. Try again.")
		}
		h.metric.Count("ReportDownloads", 1)
		return httpapi.JSON(http.StatusOK, downloadResponse{
			ProductReportID: r.ProductReportID, ProductName: r.ProductName, RequestID: r.RequestID,
			Code: r.Code, Bytes: r.Bytes, SHA256: r.SHA256, ReceivedAt: r.ReceivedAt,
			URL: u, URLExpiresAt: expires,
		})
	}
	return httpapi.Error(http.StatusNotFound, "report_not_found", "This link has no report with this id.")
}

// consentView is one consent of the revoke answer.
type consentView struct {
	ConsentID string `json:"consentId"`
	Status    string `json:"status"`
}

// revokeResponse is the 202 body of POST /links/{linkId}/revoke.
type revokeResponse struct {
	LinkID   string        `json:"linkId"`
	Consents []consentView `json:"consents"`
	// Failures lists the consents that could not be revoked when others
	// were; absent when none failed.
	Failures []failureView `json:"failures,omitempty"`
}

func (h *Handler) revoke(ctx context.Context, req httpapi.Request, linkID string) httpapi.Response {
	link, deny, ok := h.access(ctx, req, linkID)
	if !ok {
		return deny
	}
	results, err := h.cfg.Revocation.Revoke(ctx, link)
	switch {
	case errors.Is(err, revocation.ErrLinkPurged):
		return purgedLink()
	case errors.Is(err, revocation.ErrNoActiveConsent):
		return httpapi.Error(http.StatusConflict, "no_active_consent", "No consent of this link is AUTHORISED.")
	case err != nil:
		h.log.ErrorContext(ctx, "revoke", "linkId", linkID, "error", err)
		return httpapi.Error(http.StatusInternalServerError, "internal_error", "The request could not be completed.")
	}
	out := revokeResponse{LinkID: linkID, Consents: []consentView{}}
	for _, r := range results {
		out.Consents = append(out.Consents, consentView{ConsentID: r.ConsentID, Status: r.Status})
		if r.Err != nil {
			h.log.ErrorContext(ctx, "revoke consent", "linkId", linkID, "consentId", r.ConsentID, "error", r.Err)
			status, code, message := revokeFailure(r.Err)
			out.Failures = append(out.Failures, failureView{
				ConsentID: r.ConsentID, InstitutionCode: r.InstitutionCode,
				Error: httpapi.ErrorDetail{Code: code, Message: message}, status: status,
			})
		}
	}
	if len(out.Failures) == len(out.Consents) {
		f := worstFailure(out.Failures)
		return httpapi.Error(f.status, f.Error.Code, f.Error.Message)
	}
	return httpapi.JSON(http.StatusAccepted, out)
}

// deleteResponse is the 202 body of DELETE /links/{linkId}.
type deleteResponse struct {
	LinkID string `json:"linkId"`
	Status string `json:"status"`
}

func (h *Handler) deleteLink(ctx context.Context, req httpapi.Request, linkID string) httpapi.Response {
	link, deny, ok := h.access(ctx, req, linkID)
	if !ok {
		return deny
	}
	status, err := h.cfg.Revocation.Delete(ctx, link)
	switch {
	case errors.Is(err, revocation.ErrInFlight):
		h.log.InfoContext(ctx, "delete link: revocation in flight elsewhere", "linkId", linkID)
		return httpapi.Error(http.StatusServiceUnavailable, "deletion_in_progress", "The link is being deleted by another request. Try again shortly.")
	case errors.Is(err, revocation.ErrIncomplete):
		h.log.ErrorContext(ctx, "delete link: revoke", "linkId", linkID, "error", err)
		_, code, message := revokeFailure(err)
		if code == "klavi_error" {
			return httpapi.Error(http.StatusBadGateway, code, "Klavi could not revoke a consent; the deletion will be finished later, or ask again.")
		}
		return httpapi.Error(http.StatusServiceUnavailable, code, message)
	case err != nil:
		h.log.ErrorContext(ctx, "delete link", "linkId", linkID, "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The link could not be deleted. Try again.")
	}
	h.log.InfoContext(ctx, "link deleted on request", "linkId", linkID)
	return httpapi.JSON(http.StatusAccepted, deleteResponse{LinkID: linkID, Status: status})
}

// revokeFailure maps a consent that could not be revoked to our API's
// answer; the cause goes to the log only.
func revokeFailure(err error) (status int, code, message string) {
	switch {
	case errors.Is(err, revocation.ErrInFlight):
		return http.StatusServiceUnavailable, "revoke_in_progress", "Another request is revoking this consent. Try again shortly."
	case errors.Is(err, klavi.ErrRateLimited):
		return http.StatusServiceUnavailable, "klavi_busy", "Klavi is rate limiting requests. Try again shortly."
	case errors.As(err, new(*klavi.APIError)):
		return http.StatusBadGateway, "klavi_error", "Klavi could not revoke the consent."
	default:
		return http.StatusServiceUnavailable, "klavi_unavailable", "Klavi could not be reached. Try again."
	}
}
