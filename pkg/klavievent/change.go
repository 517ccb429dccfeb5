package klavievent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Kind says which part of a link's state a Change is about.
type Kind string

// Kinds of Change.
const (
	KindLinkCreated Kind = "link_created"
	KindConsent     Kind = "consent"
	KindProduct     Kind = "product"
	// KindUnknown is any event this package does not interpret. It carries
	// only envelope fields; the caller stores and acknowledges it.
	KindUnknown Kind = "unknown"
)

// Event names this package interprets, besides the consent_* names known
// to klavi.ConsentStatusForEvent.
const (
	eventLinkCreated             = "link_created"
	eventLinkActionStatus        = "link_action_status"
	eventProductRequestReceived  = "product_request_received"
	eventProductGeneratedSuccess = "product_generated_success"
	eventProductGeneratedFailed  = "product_generated_failed"
)

// Change is what one event says about one link, consent or product.
type Change struct {
	Kind      Kind
	EventID   string
	EventName string
	EventTime time.Time
	LinkID    string
	// ConsentID is "" when the event names no consent.
	ConsentID       string
	InstitutionCode string
	// ExternalTrackID is the consent's externalTrackId, when present.
	ExternalTrackID string
	// ConsentStatus is upper-case (AUTHORISED, ERROR, REJECTED, EXPIRED,
	// REVOKED, DELETED_BY_USER, or an earlier stage from a
	// link_action_status event); "" unless Kind is KindConsent.
	ConsentStatus klavi.ConsentStatus
	// PersonalTaxID (CPF) and BusinessTaxID (CNPJ) are as in the payload,
	// "" when unused. Personal data: never log them.
	PersonalTaxID string
	BusinessTaxID string
	// RequestID and ProductName are set for product events when present.
	RequestID    string
	ProductName  string
	ExternalInfo json.RawMessage
}

// actionStatusKeys are the payload keys tried, in order, for the action
// status of a link_action_status event. Klavi's docs do not show the field
// name, so the plausible spellings are all accepted.
func actionStatusKeys() []string {
	return []string{"actionStatus", "action_status", "status", "action", "eventName"}
}

// Changes interprets the event. It returns at least one Change:
//
//   - link_created: one KindLinkCreated with the link id and tax ids.
//   - consent_*: one KindConsent per consent. The consent fields (consentId,
//     externalTrackId, institutionCode) may be flat in the payload, in a
//     payload.consents object, or in a payload.consents array. Fields of a
//     consents element win; linkId and tax ids missing from an element are
//     taken from the payload; consentId, externalTrackId and institutionCode
//     are taken from the payload only when there is a single consent. A
//     consent event with no linkId or consentId is still returned: the caller
//     decides what to do with it.
//   - link_action_status: as the consent_* event named by the first of
//     payload.actionStatus, action_status, status, action or eventName whose
//     value is a consent_* name or a status name (any casing); KindUnknown if
//     none is.
//   - product_request_received, product_generated_success,
//     product_generated_failed: one KindProduct per product name, from
//     payload.productName, else from the values in payload.productNames;
//     one Change with an empty ProductName if neither is present.
//   - anything else, and every event whose eventType is neither "api" nor
//     empty (e.g. web-tracking events): one KindUnknown.
//
// The error wraps ErrMalformed when a known event's payload, or a consents
// element, is present but not a JSON object.
func (e Event) Changes() ([]Change, error) {
	base := Change{
		Kind:         KindUnknown,
		EventID:      e.EventID,
		EventName:    e.EventName,
		EventTime:    e.EventTime,
		ExternalInfo: e.ExternalInfo,
	}
	if t := strings.TrimSpace(e.EventType); t != "" && !strings.EqualFold(t, "api") {
		return []Change{base}, nil
	}
	status, _ := klavi.ConsentStatusForEvent(e.EventName)
	if !Known(e.EventName) {
		return []Change{base}, nil
	}

	p, err := decodePayload(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("read %s payload: %w", e.EventName, err)
	}
	base.LinkID = p.str("linkId")
	base.PersonalTaxID = p.str("personalTaxId")
	base.BusinessTaxID = p.str("businessTaxId")

	switch e.EventName {
	case eventLinkCreated:
		base.Kind = KindLinkCreated
		return []Change{base}, nil
	case eventLinkActionStatus:
		s, ok := actionStatus(p)
		if !ok {
			return []Change{unknown(base)}, nil
		}
		return consentChanges(base, p, s)
	case eventProductRequestReceived, eventProductGeneratedSuccess, eventProductGeneratedFailed:
		return productChanges(base, p), nil
	default:
		return consentChanges(base, p, status)
	}
}

// unknown strips payload fields so that KindUnknown always carries only the
// envelope.
func unknown(c Change) Change {
	return Change{
		Kind:         KindUnknown,
		EventID:      c.EventID,
		EventName:    c.EventName,
		EventTime:    c.EventTime,
		ExternalInfo: c.ExternalInfo,
	}
}

// decodePayload reads a payload object; an absent payload reads as empty.
func decodePayload(raw json.RawMessage) (object, error) {
	if isNull(raw) {
		return nil, nil
	}
	p, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("payload is not an object: %w", ErrMalformed)
	}
	return p, nil
}

// actionStatus finds the consent status of a link_action_status payload.
func actionStatus(p object) (klavi.ConsentStatus, bool) {
	for _, key := range actionStatusKeys() {
		if s, ok := statusFromValue(p.str(key)); ok {
			return s, true
		}
	}
	return "", false
}

// statusFromValue reads an action status as sent in a link_action_status
// payload: a consent_* event name or a status name, in any casing.
func statusFromValue(v string) (klavi.ConsentStatus, bool) {
	if s, ok := klavi.ConsentStatusForEvent(v); ok {
		return s, true
	}
	if s := klavi.ParseConsentStatus(v); s.Known() {
		return s, true
	}
	return "", false
}

// consentChanges builds one KindConsent Change per consent in the payload.
func consentChanges(base Change, p object, status klavi.ConsentStatus) ([]Change, error) {
	base.Kind = KindConsent
	base.ConsentStatus = status
	elems, err := consentElements(p)
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		c := base
		c.ConsentID = p.str("consentId")
		c.ExternalTrackID = p.str("externalTrackId")
		c.InstitutionCode = p.str("institutionCode")
		return []Change{c}, nil
	}
	// With several consents, a flat consentId could belong to any of them,
	// so per-consent fields fall back to the payload only for a single one.
	var flat object
	if len(elems) == 1 {
		flat = p
	}
	changes := make([]Change, 0, len(elems))
	for _, el := range elems {
		c := base
		c.LinkID = firstNonEmpty(el.str("linkId"), base.LinkID)
		c.PersonalTaxID = firstNonEmpty(el.str("personalTaxId"), base.PersonalTaxID)
		c.BusinessTaxID = firstNonEmpty(el.str("businessTaxId"), base.BusinessTaxID)
		c.ConsentID = firstNonEmpty(el.str("consentId"), flat.str("consentId"))
		c.ExternalTrackID = firstNonEmpty(el.str("externalTrackId"), flat.str("externalTrackId"))
		c.InstitutionCode = firstNonEmpty(el.str("institutionCode"), flat.str("institutionCode"))
		changes = append(changes, c)
	}
	return changes, nil
}

// consentElements returns payload.consents as a list of objects: none when
// it is absent, null or an empty array; one for an object; one per non-null
// element of an array.
func consentElements(p object) ([]object, error) {
	raw, ok := p.get("consents")
	if !ok || isNull(raw) {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '{':
		el, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("consents is not an object: %w", ErrMalformed)
		}
		return []object{el}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("consents is not an array: %w", ErrMalformed)
		}
		var elems []object
		for i, item := range items {
			if isNull(item) {
				continue
			}
			el, err := decodeObject(item)
			if err != nil {
				return nil, fmt.Errorf("consents[%d] is not an object: %w", i, ErrMalformed)
			}
			elems = append(elems, el)
		}
		return elems, nil
	default:
		return nil, fmt.Errorf("consents is neither object nor array: %w", ErrMalformed)
	}
}

// productChanges builds one KindProduct Change per product name.
func productChanges(base Change, p object) []Change {
	base.Kind = KindProduct
	base.RequestID = p.str("requestId")
	base.ConsentID = p.str("consentId")
	base.InstitutionCode = p.str("institutionCode")
	names := productNames(p)
	if len(names) == 0 {
		return []Change{base}
	}
	changes := make([]Change, 0, len(names))
	for _, n := range names {
		c := base
		c.ProductName = n
		changes = append(changes, c)
	}
	return changes
}

// productNames returns payload.productName, or else the distinct non-empty
// string or number values of payload.productNames in order (a lone string is
// accepted too). Values of other types are skipped rather than failing the
// event.
func productNames(p object) []string {
	if n := p.str("productName"); n != "" {
		return []string{n}
	}
	raw, ok := p.get("productNames")
	if !ok {
		return nil
	}
	if n, _ := scalar(raw); n != "" {
		return []string{n}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil
	}
	var names []string
	for _, item := range items {
		if n, _ := scalar(item); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// Known reports whether name is one of the event names Klavi documents
// (link_created, link_action_status, the consent_* and product_* events),
// in any casing, as klavi.ConsentStatusForEvent reads them.
func Known(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case eventLinkCreated, eventLinkActionStatus,
		eventProductRequestReceived, eventProductGeneratedSuccess, eventProductGeneratedFailed:
		return true
	}
	_, isConsent := klavi.ConsentStatusForEvent(name)
	return isConsent
}
