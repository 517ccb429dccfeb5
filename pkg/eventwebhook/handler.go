// Package eventwebhook receives Klavi's event webhooks
// (POST /webhooks/klavi/events) and applies them to the link store.
//
// Klavi gives up on a webhook after about ten seconds of retries, so the
// handler only verifies, parses and records: each event is one conditional
// DynamoDB transaction (dedupe on eventId plus the consent change guarded by
// eventTime). Requesting reports happens later, driven by the table's stream.
//
// Order of checks: source IP, body size, the empty console ping, signature,
// then parsing. Nothing is written before the signature is verified.
package eventwebhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavievent"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// MaxBodyBytes bounds an event delivery. Events are small; a body this large
// is not an event batch Klavi would send.
const MaxBodyBytes = 256 << 10

// secretKeySource gives the HMAC key (the Klavi secretKey).
type secretKeySource interface {
	SecretKey(ctx context.Context) ([]byte, error)
}

// eventStore applies one event change.
type eventStore interface {
	ApplyEvent(ctx context.Context, c linkstore.EventChange) (linkstore.Outcome, error)
}

// Config is what the handler needs besides its dependencies.
type Config struct {
	SourceIPs httpapi.Allowlist
	// Verifier checks signatures and timestamps (tolerance, clock).
	Verifier webhooksig.Verifier
	Logger   *slog.Logger
	Metrics  *metrics.Recorder
	Now      func() time.Time
}

// Handler answers POST /webhooks/klavi/events.
type Handler struct {
	keys   secretKeySource
	store  eventStore
	cfg    Config
	log    *slog.Logger
	metric *metrics.Recorder
	now    func() time.Time
}

// New returns a Handler.
func New(keys secretKeySource, store eventStore, cfg Config) *Handler {
	h := &Handler{keys: keys, store: store, cfg: cfg, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// result is the 200 body: counts only, nothing from the payload.
type result struct {
	Received   int `json:"received"`
	Applied    int `json:"applied"`
	Duplicates int `json:"duplicates"`
	Stale      int `json:"stale"`
}

// Handle processes one delivery.
func (h *Handler) Handle(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
	if !h.cfg.SourceIPs.Allows(req) {
		h.log.WarnContext(ctx, "event webhook: source not allowed", "error_code", "source_not_allowed")
		h.metric.Count("SourceRejected", 1, "Webhook", "events")
		return httpapi.Error(http.StatusForbidden, "source_not_allowed", "This source may not call the webhook."), nil
	}
	body, err := httpapi.Body(req, MaxBodyBytes)
	if errors.Is(err, httpapi.ErrBodyTooLarge) {
		h.log.WarnContext(ctx, "event webhook: body too large", "error_code", "body_too_large", "limit", MaxBodyBytes)
		h.metric.Count("BodyTooLarge", 1, "Webhook", "events")
		return httpapi.Error(http.StatusRequestEntityTooLarge, "body_too_large", "The event body is too large."), nil
	}
	if err != nil {
		return httpapi.Error(http.StatusBadRequest, "invalid_body", "The body could not be read."), nil
	}
	sig := httpapi.Header(req, webhooksig.SignatureHeader)
	if len(bytes.TrimSpace(body)) == 0 && sig == "" {
		// Klavi's console connectivity test posts an empty, unsigned body.
		// It carries nothing to apply, so it is acknowledged and ignored.
		h.log.InfoContext(ctx, "event webhook: empty connectivity check acknowledged")
		return httpapi.JSON(http.StatusOK, result{}), nil
	}

	key, err := h.keys.SecretKey(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "event webhook: signature key unavailable", "error_code", "key_unavailable", "error", err)
		return httpapi.Error(http.StatusServiceUnavailable, "dependency_unavailable", "The webhook cannot verify deliveries right now."), nil
	}
	if err := h.cfg.Verifier.Verify(key, body, sig, httpapi.Header(req, webhooksig.TimestampHeader)); err != nil {
		reason := webhooksig.ErrorCode(err)
		h.log.WarnContext(ctx, "event webhook: signature rejected", "error_code", reason)
		h.metric.Count("SignatureRejected", 1, "Webhook", "events", "Reason", reason)
		return httpapi.Error(http.StatusUnauthorized, reason, "The delivery's signature could not be verified."), nil
	}

	evs, err := klavievent.Parse(body)
	if err != nil {
		h.log.WarnContext(ctx, "event webhook: unreadable body", "error_code", "invalid_event", "error", err)
		h.metric.Count("EventsMalformed", 1)
		return httpapi.Error(http.StatusBadRequest, "invalid_event", "The body is not a Klavi event or array of events."), nil
	}

	res := result{Received: len(evs)}
	for _, ev := range evs {
		changes, err := ev.Changes()
		if err != nil {
			// A signed event whose payload we cannot read is still recorded
			// (and acknowledged) so it is not redelivered forever.
			h.log.WarnContext(ctx, "event webhook: unreadable payload", "eventId", ev.EventID, "eventName", ev.EventName, "error", err)
			changes = []klavievent.Change{{Kind: klavievent.KindUnknown, EventID: ev.EventID, EventName: ev.EventName, EventTime: ev.EventTime}}
		}
		for i, c := range changes {
			change := h.toStoreChange(c)
			if len(changes) > 1 {
				// One event can carry several consents; each is deduplicated
				// on its own so a partial failure is retried safely.
				change.EventID = ev.EventID + "/" + changeKey(c, i)
			}
			outcome, err := h.store.ApplyEvent(ctx, change)
			if err != nil {
				h.log.ErrorContext(ctx, "event webhook: apply event", "eventId", ev.EventID, "eventName", ev.EventName, "linkId", c.LinkID, "error", err)
				// Not yet recorded: Klavi retries, and what was applied is
				// deduplicated on redelivery.
				return httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The event could not be recorded. Retry."), nil
			}
			switch outcome {
			case linkstore.Duplicate:
				res.Duplicates++
			case linkstore.Stale:
				res.Stale++
			default:
				res.Applied++
			}
			h.log.InfoContext(ctx, "event processed", "eventId", ev.EventID, "eventName", ev.EventName, "linkId", c.LinkID, "consentId", c.ConsentID, "consentStatus", c.ConsentStatus, "outcome", string(outcome))
			h.metric.Count("EventsProcessed", 1, "EventName", metricName(ev.EventName), "Outcome", string(outcome))
		}
	}
	return httpapi.JSON(http.StatusOK, res), nil
}

func (h *Handler) toStoreChange(c klavievent.Change) linkstore.EventChange {
	ch := linkstore.EventChange{
		EventID:         c.EventID,
		EventName:       c.EventName,
		EventTime:       c.EventTime,
		ReceivedAt:      h.now().UTC(),
		LinkID:          c.LinkID,
		ConsentID:       c.ConsentID,
		InstitutionCode: c.InstitutionCode,
		ExternalInfo:    c.ExternalInfo,
	}
	if c.Kind == klavievent.KindConsent && c.ConsentID != "" {
		ch.ConsentStatus = c.ConsentStatus
	}
	// The tax id only matters for links this backend did not create; it is
	// kept only when it is a valid CPF/CNPJ.
	if id, err := taxid.ParseCPF(c.PersonalTaxID); c.PersonalTaxID != "" && err == nil {
		ch.TaxIDType, ch.TaxID = "personal", id.Bare()
	} else if id, err := taxid.ParseCNPJ(c.BusinessTaxID); c.BusinessTaxID != "" && err == nil {
		ch.TaxIDType, ch.TaxID = "business", id.Bare()
	}
	if ch.EventTime.IsZero() {
		// Without eventTime, order by arrival.
		ch.EventTime = ch.ReceivedAt
	}
	return ch
}

func changeKey(c klavievent.Change, i int) string {
	if c.ConsentID != "" {
		return c.ConsentID
	}
	return strconv.Itoa(i)
}

// metricName bounds the EventName dimension: Klavi's names as they are,
// anything else as "other", so a stray sender cannot create metrics at will.
func metricName(name string) string {
	switch name {
	case "link_created", "link_action_status",
		"consent_authorised", "consent_error", "consent_rejected", "consent_expired", "consent_revoked", "consent_deleted_by_user",
		"product_request_received", "product_generated_success", "product_generated_failed":
		return name
	default:
		return "other"
	}
}
