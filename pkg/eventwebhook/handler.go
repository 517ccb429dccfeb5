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
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavievent"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhookgate"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// MaxBodyBytes bounds an event delivery. Events are small; a body this large
// is not an event batch Klavi would send.
const MaxBodyBytes = 256 << 10

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
	gate   *webhookgate.Gate
	store  eventStore
	cfg    Config
	log    *slog.Logger
	metric *metrics.Recorder
	now    func() time.Time
}

// New returns a Handler.
func New(keys webhookgate.SecretKeySource, store eventStore, cfg Config) *Handler {
	h := &Handler{store: store, cfg: cfg, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.gate = &webhookgate.Gate{Webhook: "events", MaxBody: MaxBodyBytes, SourceIPs: cfg.SourceIPs,
		Verifier: cfg.Verifier, Keys: keys, Logger: h.log, Metrics: h.metric}
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
	in := h.gate.Admit(ctx, req)
	switch {
	case in.Reject != nil:
		return *in.Reject, nil
	case in.Ping:
		return httpapi.JSON(http.StatusOK, result{}), nil
	}
	body := in.Body

	evs, err := klavievent.Parse(body)
	if err != nil {
		h.log.WarnContext(ctx, "event webhook: unreadable body", "error_code", "invalid_event", "error", err)
		h.metric.Count("EventsMalformed", 1)
		return httpapi.Error(http.StatusBadRequest, "invalid_event", "The body is not a Klavi event or array of events."), nil
	}

	receivedAt := h.now().UTC()
	res := result{Received: len(evs)}
	for _, ev := range evs {
		at := ev.OrderTime(receivedAt, h.skew())
		if !at.Equal(ev.EventTime) {
			h.log.WarnContext(ctx, "event webhook: eventTime ahead of arrival, ordered by arrival plus the allowed skew",
				"eventId", ev.EventID, "eventName", ev.EventName, "rawEventTime", ev.RawEventTime)
			h.metric.Count("EventTimeClamped", 1)
		}
		changes, err := ev.Changes()
		if err != nil {
			// A signed event whose payload we cannot read is still recorded
			// (and acknowledged) so it is not redelivered forever.
			h.log.WarnContext(ctx, "event webhook: unreadable payload", "eventId", ev.EventID, "eventName", ev.EventName, "error", err)
			changes = []klavievent.Change{{Kind: klavievent.KindUnknown, EventID: ev.EventID, EventName: ev.EventName, EventTime: ev.EventTime}}
		}
		for i, c := range changes {
			change := toStoreChange(c, at, ev.RawEventTime, receivedAt)
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
			if change.IsUnplacedDeletion() && outcome != linkstore.Duplicate {
				// Kept by the store for good; an operator must place it.
				h.log.ErrorContext(ctx, "event webhook: user deletion names no link; kept for an operator",
					"error_code", "deletion_unplaced", "eventId", ev.EventID, "consentId", c.ConsentID)
				h.metric.Count("DeletionsUnplaced", 1)
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

// skew is how far ahead of our clock an eventTime may be: the clock
// difference the signature check allows (its default when that check is
// off).
func (h *Handler) skew() time.Duration {
	if t := h.cfg.Verifier.Tolerance; t > 0 {
		return t
	}
	return webhooksig.DefaultTolerance
}

// toStoreChange builds the store's change from c, ordered at eventTime
// (klavievent.Event.OrderTime: zero when Klavi sent none) and keeping the
// eventTime as sent for the record.
func toStoreChange(c klavievent.Change, eventTime time.Time, rawEventTime string, receivedAt time.Time) linkstore.EventChange {
	ch := linkstore.EventChange{
		EventID:         c.EventID,
		EventName:       c.EventName,
		EventTime:       eventTime,
		RawEventTime:    rawEventTime,
		ReceivedAt:      receivedAt,
		LinkID:          c.LinkID,
		ConsentID:       c.ConsentID,
		InstitutionCode: c.InstitutionCode,
		ExternalInfo:    c.ExternalInfo,
	}
	// A consent event without consentId keeps its status: the store
	// applies the user's deletion to the whole link, and records the
	// others without changing a consent.
	if c.Kind == klavievent.KindConsent {
		ch.ConsentStatus = c.ConsentStatus
	}
	// The tax id only matters for links this backend did not create; it is
	// kept only when it is a valid CPF/CNPJ.
	if id, err := taxid.ParseCPF(c.PersonalTaxID); c.PersonalTaxID != "" && err == nil {
		ch.TaxIDType, ch.TaxID = "personal", id.Bare()
	} else if id, err := taxid.ParseCNPJ(c.BusinessTaxID); c.BusinessTaxID != "" && err == nil {
		ch.TaxIDType, ch.TaxID = "business", id.Bare()
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
	if klavievent.Known(name) {
		return name
	}
	return "other"
}
