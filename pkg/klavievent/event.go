// Package klavievent parses and interprets the bodies of Klavi event
// webhooks (link_created, consent_*, link_action_status, product_*).
//
// Parse turns a body into Events and only checks what every event needs:
// a JSON object, with an event id (derived from its bytes when missing). Event.Changes then reads the payload of
// the events this package understands. Neither fails on unknown events or
// unknown fields: the caller keeps the raw body and acknowledges them.
//
// Bodies carry CPF/CNPJ tax ids, so no error from this package includes any
// part of the body.
package klavievent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/compactid"
)

// MaxEvents is the most events Parse accepts in one body. Klavi's examples
// carry one event per body; the limit bounds the work a single request can
// cause.
const MaxEvents = 100

// DerivedIDPrefix starts the id Parse gives an event that carries none:
// the prefix and the first 16 bytes of the SHA-256 of the event's compact
// JSON (json.Compact). The compact form, because the signature check
// accepts a signature over it (Klavi's Node sample signs
// JSON.stringify(body)): anyone holding a captured delivery can add
// whitespace and keep the signature valid, and each such variant must still
// be the same event, a duplicate.
const DerivedIDPrefix = compactid.Prefix

// Sentinel errors returned (wrapped) by Parse and Event.Changes.
var (
	// ErrMalformed: the body is not JSON, or not an object or an array of
	// objects, or a known event's payload has an unreadable shape.
	ErrMalformed = errors.New("malformed klavi event body")
	// ErrEmpty: the body is empty, only whitespace, or an empty array.
	ErrEmpty = errors.New("empty klavi event body")
	// ErrMissingEventID: an event has no eventId. Parse does not return it:
	// such an event gets an id derived from its bytes (DerivedIDPrefix).
	ErrMissingEventID = errors.New("klavi event without eventId")
	// ErrTooManyEvents: the body holds more than MaxEvents events.
	ErrTooManyEvents = errors.New("too many klavi events in body")
)

// Event is one Klavi event as received.
type Event struct {
	PartnerAppID string
	// EventID comes from "eventId" or "eventID" (any casing): Klavi's docs
	// use both.
	EventID   string
	EventType string
	// EventName is lower-cased and trimmed.
	EventName string
	// EventTime is in UTC, as sent; zero when eventTime is missing or
	// unparseable. Order events by OrderTime, not by this.
	EventTime time.Time
	// RawEventTime is eventTime as sent, for logging when EventTime is zero.
	RawEventTime string
	// Payload and ExternalInfo are nil when absent or null.
	Payload      json.RawMessage
	ExternalInfo json.RawMessage
}

// utf8BOM is tolerated in front of a body; some HTTP stacks add it.
const utf8BOM = "\xef\xbb\xbf"

// Parse decodes a webhook body holding one event object or an array of
// event objects. The first non-space byte decides which.
//
// Any invalid event rejects the whole body, so that a caller never applies
// part of a delivery and acknowledges the rest away. Unknown fields are
// ignored here; the caller keeps the raw body.
//
// Errors wrap ErrEmpty (empty or whitespace-only body, or []), ErrMalformed
// (not JSON, null, a scalar, an array element that is not an object, an
// eventId of non-scalar type, or eventId spellings with different values),
// or ErrTooManyEvents (more than MaxEvents). An event without a non-empty
// eventId gets an id derived from its bytes (DerivedIDPrefix).
func Parse(body []byte) ([]Event, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte(utf8BOM)))
	if len(body) == 0 {
		return nil, ErrEmpty
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("parse event body: invalid JSON: %w", ErrMalformed)
	}
	switch body[0] {
	case '{':
		e, err := parseEvent(body)
		if err != nil {
			return nil, fmt.Errorf("parse event body: %w", err)
		}
		return []Event{e}, nil
	case '[':
		return parseArray(body)
	default:
		return nil, fmt.Errorf("parse event body: not an object or array: %w", ErrMalformed)
	}
}

// parseArray decodes a syntactically valid JSON array of events.
func parseArray(body []byte) ([]Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("parse event body: %w", ErrMalformed)
	}
	var events []Event
	for i := 0; dec.More(); i++ {
		if i == MaxEvents {
			return nil, fmt.Errorf("parse event body: more than %d events: %w", MaxEvents, ErrTooManyEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("parse event %d: %w", i, ErrMalformed)
		}
		e, err := parseEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("parse event %d: %w", i, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return nil, ErrEmpty
	}
	return events, nil
}

// parseEvent decodes one event object. The returned errors carry no body
// content.
func parseEvent(raw json.RawMessage) (Event, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return Event{}, fmt.Errorf("event is not an object: %w", ErrMalformed)
	}
	id, err := eventID(obj)
	if errors.Is(err, ErrMissingEventID) {
		// Kept rather than refused: a signed event Klavi cannot redeliver
		// forever must not be lost over a missing id. The id is the hash of
		// the event's compact form, so a redelivery of the same event, with
		// or without added whitespace, is still a duplicate.
		id, err = derivedID(raw), nil
	}
	if err != nil {
		return Event{}, err
	}
	e := Event{
		PartnerAppID: obj.str("partnerAppId"),
		EventID:      id,
		EventType:    obj.str("eventType"),
		EventName:    strings.ToLower(obj.str("eventName")),
		RawEventTime: obj.str("eventTime"),
	}
	e.EventTime = parseTime(e.RawEventTime)
	if v, ok := obj.get("payload"); ok && !isNull(v) {
		e.Payload = v
	}
	if v, ok := obj.get("externalInfo"); ok && !isNull(v) {
		e.ExternalInfo = v
	}
	return e, nil
}

// derivedID is the id of an event without one (see DerivedIDPrefix). raw
// is valid JSON.
func derivedID(raw []byte) string { return compactid.Of(raw) }

// eventID reads the event id from every key spelled eventId in any casing.
// Empty and null spellings are ignored; two non-empty spellings must agree,
// because deduplication on the wrong one would drop or repeat an event.
func eventID(obj object) (string, error) {
	var id string
	for _, m := range obj {
		if !strings.EqualFold(m.key, "eventId") {
			continue
		}
		s, ok := scalar(m.value)
		if !ok {
			return "", fmt.Errorf("eventId is not a string: %w", ErrMalformed)
		}
		switch {
		case s == "":
		case id == "":
			id = s
		case id != s:
			return "", fmt.Errorf("eventId spellings disagree: %w", ErrMalformed)
		}
	}
	if id == "" {
		return "", ErrMissingEventID
	}
	return id, nil
}

// parseTime reads Klavi's ISO-8601 timestamps leniently: with or without
// fractional seconds, with Z, a numeric offset or no zone at all (taken as
// UTC, as Klavi documents its times as UTC). The result is in UTC; the zero
// time means "unknown".
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	layouts := [...]string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
	}
	for _, layout := range layouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// OrderTime is the time the event is ordered by against the other events
// of its consent: its eventTime, but never later than arrival plus skew,
// the clock difference the signature check allows between Klavi and us.
// An eventTime further ahead is not a clock Klavi could have: left as
// sent, an authorisation dated 2099 would make every later revocation,
// expiry or deletion of its consent look stale forever.
//
// It is zero when the event has no eventTime. Such an event is not ordered
// by its arrival: a replay arrives late too. The store orders it below any
// event that has one, so it never replaces their state, and among events
// without one by the consent lifecycle alone.
func (e Event) OrderTime(arrival time.Time, skew time.Duration) time.Time {
	if e.EventTime.IsZero() {
		return time.Time{}
	}
	if limit := arrival.Add(skew).UTC(); e.EventTime.After(limit) {
		return limit
	}
	return e.EventTime
}
