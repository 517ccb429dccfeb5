package linkstore

import (
	"encoding/json"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// EventChange is what a Klavi event webhook changes in the store, already
// parsed out of the event body.
type EventChange struct {
	EventID   string
	EventName string
	// EventTime orders the consent events of a consent. Zero means the
	// event has none: it then ranks below every event that has one, so it
	// never replaces their state (a replay arrives late too, so arrival
	// cannot order it), and among events without one the later state of
	// the lifecycle wins.
	EventTime time.Time
	// RawEventTime is eventTime as Klavi sent it, kept on the event's
	// record (the event item): EventTime may differ from it, when eventTime
	// was unreadable or clamped to arrival.
	RawEventTime string
	// ReceivedAt is when the webhook received the event; the store's clock
	// is used when it is zero.
	ReceivedAt      time.Time
	LinkID          string
	ConsentID       string
	InstitutionCode string
	// ConsentStatus is the status a consent event sets, "" for other events.
	ConsentStatus klavi.ConsentStatus
	TaxIDType     TaxIDType
	// TaxID is used only when the event is the first the store hears of the
	// link, to create it.
	TaxID        string
	ExternalInfo json.RawMessage
	// EventTTL is how long the event id is remembered for deduplication:
	// DefaultEventTTL when zero, never less than MinEventTTL.
	EventTTL time.Duration
}

// Outcome tells what ApplyEvent did.
type Outcome string

// Outcomes of ApplyEvent.
const (
	// Applied: a consent event changed the consent (and its link).
	Applied Outcome = "applied"
	// Duplicate: the event id was seen before; nothing changed.
	Duplicate Outcome = "duplicate"
	// Stale: the consent already holds a state from a later event; the event
	// is remembered as processed and nothing else changed.
	Stale Outcome = "stale"
	// Recorded: a non-consent event, an event without a link, or an event
	// for a purged link; it is remembered (and, when it names a link that
	// is not purged, touches it) but changes no consent.
	Recorded Outcome = "recorded"
)

// Deduplication windows for event ids.
const (
	DefaultEventTTL = 35 * 24 * time.Hour
	MinEventTTL     = 30 * 24 * time.Hour
)

// Normalized is the event as a store applies it: times in storage
// precision, status upper-cased, defaults filled in. DynamoStore and
// linkstoretest.MemoryStore both start an ApplyEvent with it, so the
// defaults have one home.
func (e EventChange) Normalized(now func() time.Time) EventChange {
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = now()
	}
	e.ReceivedAt = stored(e.ReceivedAt)
	e.EventTime = stored(e.EventTime)
	e.ConsentStatus = klavi.ParseConsentStatus(string(e.ConsentStatus))
	switch {
	case e.EventTTL == 0:
		e.EventTTL = DefaultEventTTL
	case e.EventTTL < MinEventTTL:
		e.EventTTL = MinEventTTL
	}
	return e
}

// IsConsentChange reports whether the event sets a consent's status. A
// consent event that names no link or no consent cannot be placed and is
// only recorded.
func (e EventChange) IsConsentChange() bool {
	return e.ConsentStatus != "" && e.LinkID != "" && e.ConsentID != ""
}

// WithDefaults fills in what CreateLink defaults and puts times in storage
// precision; parts are not stored by CreateLink and are dropped. Both
// DynamoStore and linkstoretest.MemoryStore start a CreateLink with it.
func (l Link) WithDefaults(now time.Time) Link {
	l.TaxIDType = normalizeTaxIDType(l.TaxIDType)
	if l.Origin == "" {
		l.Origin = OriginAPI
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = now
	}
	if l.UpdatedAt.IsZero() {
		l.UpdatedAt = l.CreatedAt
	}
	l.CreatedAt, l.UpdatedAt, l.ExpiresAt = stored(l.CreatedAt), stored(l.UpdatedAt), stored(l.ExpiresAt)
	l.PurgedAt = time.Time{}
	if !hasJSON(l.ExternalInfo) {
		l.ExternalInfo = nil
	}
	l.Consents, l.ReportRequests, l.Reports = nil, nil, nil
	return l
}
