// Package reportwebhook receives Klavi's product reports
// (POST /webhooks/klavi/reports) and stores each one in S3, byte for byte,
// before answering 200.
//
// A report can be megabytes of categorised transactions, so the handler
// reads only the envelope (code, requestId, productName, productReportId,
// links[].linkId), never decodes the product data, and hands the received
// bytes to S3 without copying them. The order of work is what makes a retry
// safe: verify, store the object (If-None-Match, so a redelivery writes
// nothing), then record it on its link (conditional, so it is listed once).
// A failure after the object is stored is answered 5xx; Klavi's retry then
// finds the object and completes the record.
package reportwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/compactid"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhookgate"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// MaxBodyBytes is the largest report the handler accepts. API Gateway hands
// Lambda at most 6 MB synchronously (the event, base64 included), so a report
// above this never reaches the function at all: API Gateway answers 413 and
// the template's alarm counts it.
const MaxBodyBytes = 6 << 20

// unknownProduct names the product of a report that carries no productName.
const unknownProduct = "_unknown"

// objectStore keeps report bodies.
type objectStore interface {
	Put(ctx context.Context, o reportstore.Object) (reportstore.PutResult, error)
	Delete(ctx context.Context, key string) error
}

// reportRecorder lists reports on their links.
type reportRecorder interface {
	CheckLink(ctx context.Context, linkID string) error
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	RecordReport(ctx context.Context, linkID string, r linkstore.Report) error
}

// Config is what the handler needs besides its dependencies.
type Config struct {
	SourceIPs httpapi.Allowlist
	Verifier  webhooksig.Verifier
	Logger    *slog.Logger
	Metrics   *metrics.Recorder
	Now       func() time.Time
}

// Handler answers POST /webhooks/klavi/reports.
type Handler struct {
	gate    *webhookgate.Gate
	objects objectStore
	links   reportRecorder
	cfg     Config
	log     *slog.Logger
	metric  *metrics.Recorder
	now     func() time.Time

	// bodies keeps report body buffers between invocations (see Invoke).
	bodies sync.Pool
}

// New returns a Handler.
func New(keys webhookgate.SecretKeySource, objects objectStore, links reportRecorder, cfg Config) *Handler {
	h := &Handler{objects: objects, links: links, cfg: cfg, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.gate = &webhookgate.Gate{Webhook: "reports", MaxBody: MaxBodyBytes, SourceIPs: cfg.SourceIPs,
		Verifier: cfg.Verifier, Keys: keys, Logger: h.log, Metrics: h.metric}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// result is the 200 body.
type result struct {
	ProductReportID string `json:"productReportId"`
	Stored          bool   `json:"stored"`
	Duplicate       bool   `json:"duplicate"`
	Matched         bool   `json:"matched"`
}

// Invoke is the function's Lambda entry point (lambda.Handler): it takes
// the HTTP API event as the payload bytes the runtime received and answers
// with the encoded response, as lambda.Start(h.Handle) would. Reading the
// event with httpapi.ReadRequest rather than the runtime's reflect decoding
// puts the report through one pass instead of three, into the one buffer
// that is then verified, read and uploaded.
//
// The body is unquoted into a buffer kept from the previous invocation: a
// 5 MB report then costs no 5 MB allocation, and no zeroing of it, on a warm
// instance. Nothing of the request outlives the invocation (the answer is a
// new encoding; the object store has sent the body before Handle returns),
// so the buffer is free again when Invoke returns.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	scratch, _ := h.bodies.Get().(*[]byte)
	if scratch == nil {
		scratch = new([]byte)
	}
	req, buf, err := httpapi.ReadRequestInto(payload, *scratch)
	if buf != nil {
		*scratch = buf[:0]
	}
	defer h.bodies.Put(scratch)
	if err != nil {
		// Not an API Gateway event: a deployment fault, not a delivery,
		// so it fails the invocation as the runtime's decoding would.
		return nil, fmt.Errorf("report webhook: %w", err)
	}
	resp, err := h.Handle(ctx, req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resp)
}

// Handle processes one report delivery.
func (h *Handler) Handle(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
	in := h.gate.Admit(ctx, req)
	switch {
	case in.Reject != nil:
		return *in.Reject, nil
	case in.Ping:
		return httpapi.JSON(http.StatusOK, result{}), nil
	}
	body := in.Body

	env, err := klavireport.ParseEnvelope(body)
	if errors.Is(err, klavireport.ErrMissingReportID) {
		// Kept rather than refused: Klavi gives up after a few retries, so
		// a 400 would lose a signed report for good.
		env.ProductReportID, err = compactid.Of(body), nil
		h.log.WarnContext(ctx, "report without productReportId kept under an id derived from its bytes",
			"productReportId", env.ProductReportID, "productName", env.ProductName)
		h.metric.Count("ReportIDsDerived", 1)
	}
	if err != nil {
		h.log.ErrorContext(ctx, "report webhook: unreadable report", "error_code", "invalid_report", "productName", env.ProductName, "error", err)
		h.metric.Count("ReportsMalformed", 1)
		return httpapi.Error(http.StatusBadRequest, "invalid_report", "The body is not a Klavi report."), nil
	}
	log := h.log.With("productReportId", env.ProductReportID, "productName", env.ProductName, "reportRequestId", env.RequestID)

	product := objectProduct(env.ProductName)
	linkID, named, purged, err := h.matchLink(ctx, env.LinkIDs)
	switch {
	case len(purged) > 0:
		// The user asked for their data to be deleted: a late report for
		// that link is acknowledged and not kept.
		return h.discardPurged(ctx, log, purged, product, env.ProductReportID), nil
	case err != nil:
		log.ErrorContext(ctx, "report webhook: check link", "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be stored. Retry."), nil
	}

	objectKey := reportstore.UnmatchedKey(named, product, env.ProductReportID)
	if linkID != "" {
		objectKey = reportstore.ReportKey(linkID, product, env.ProductReportID)
	}
	putAt := h.now()
	put, err := h.objects.Put(ctx, reportstore.Object{
		Key:             objectKey,
		Body:            body,
		RequestID:       env.RequestID,
		ProductName:     env.ProductName,
		ProductReportID: env.ProductReportID,
		Code:            strconv.Itoa(env.Code),
	})
	if errors.Is(err, reportstore.ErrInvalidKey) {
		// Ids too long for an S3 key: retrying cannot help.
		log.ErrorContext(ctx, "report webhook: report ids do not fit a key", "error_code", "invalid_report_ids", "error", err)
		h.metric.Count("ReportsMalformed", 1)
		return httpapi.Error(http.StatusBadRequest, "invalid_report", "The report's productName or productReportId cannot be stored."), nil
	}
	duplicate := errors.Is(err, reportstore.ErrExists)
	if err != nil && !duplicate {
		log.ErrorContext(ctx, "report webhook: store object", "linkId", linkID, "error", err)
		h.metric.Count("ReportStoreFailures", 1)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be stored. Retry."), nil
	}

	res := result{ProductReportID: env.ProductReportID, Stored: true, Duplicate: duplicate, Matched: linkID != ""}
	if linkID == "" {
		log.WarnContext(ctx, "report stored unmatched", "objectKey", objectKey, "bytes", put.Bytes, "duplicate", duplicate)
		h.metric.Count("ReportsStored", 1, "Match", "unmatched", "Duplicate", strconv.FormatBool(duplicate))
		return httpapi.JSON(http.StatusOK, res), nil
	}

	err = h.links.RecordReport(ctx, linkID, linkstore.Report{
		ProductReportID: env.ProductReportID,
		ProductName:     env.ProductName,
		RequestID:       env.RequestID,
		ObjectKey:       objectKey,
		Code:            env.Code,
		Bytes:           put.Bytes,
		SHA256:          put.SHA256,
		ReceivedAt:      h.now().UTC(),
	})
	switch {
	case errors.Is(err, linkstore.ErrDuplicate) && !duplicate:
		// Recorded, yet its object had to be written again: a concurrent
		// delivery, or a replay after the object expired (checkReplay).
		if resp := h.checkReplay(ctx, log, linkID, objectKey, env.ProductReportID, putAt); resp != nil {
			return *resp, nil
		}
		res.Duplicate = true
	case errors.Is(err, linkstore.ErrDuplicate):
		res.Duplicate = true
	case errors.Is(err, linkstore.ErrPurged):
		// Purged between the check and now: the purge may have deleted the
		// link's reports before this object landed, so this one goes too.
		// If it cannot be deleted, a 5xx makes Klavi retry, and the retry
		// finds the link purged and deletes it (discardPurged).
		if derr := h.objects.Delete(ctx, objectKey); derr != nil {
			log.ErrorContext(ctx, "report webhook: delete report of a purged link", "linkId", linkID, "objectKey", objectKey, "error", derr)
			h.metric.Count("PurgesFailed", 1, "Reason", "late_report")
			return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be handled. Retry."), nil
		}
		log.InfoContext(ctx, "report for a link purged while storing deleted", "linkId", linkID)
		h.metric.Count("ReportsDiscarded", 1, "Reason", "purged_race")
		return httpapi.JSON(http.StatusOK, result{ProductReportID: env.ProductReportID}), nil
	case err != nil:
		log.ErrorContext(ctx, "report webhook: record report", "linkId", linkID, "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be recorded. Retry."), nil
	}
	log.InfoContext(ctx, "report stored", "linkId", linkID, "objectKey", objectKey, "bytes", put.Bytes, "code", env.Code, "duplicate", res.Duplicate)
	h.metric.Count("ReportsStored", 1, "Match", "matched", "Duplicate", strconv.FormatBool(res.Duplicate))
	if !res.Duplicate {
		h.metric.Put("ReportBytes", float64(put.Bytes), metrics.UnitBytes)
	}
	if env.Code != 200 {
		h.metric.Count("ReportsNotOK", 1, "Code", codeClass(env.Code))
	}
	return httpapi.JSON(http.StatusOK, res), nil
}

// codeClass bounds the Code dimension: 204, 205 and the 5xxx families.
func codeClass(code int) string {
	switch {
	case code == 204 || code == 205:
		return strconv.Itoa(code)
	case code >= 5000 && code < 6000:
		return strconv.Itoa(code/100) + "xx"
	default:
		return "other"
	}
}
