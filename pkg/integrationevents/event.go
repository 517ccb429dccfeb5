package integrationevents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// Source is the Source of every integration event.
const Source = "klavi-link"

// Detail types of the integration events.
const (
	TypeConsentStatusChanged = "Consent Status Changed"
	TypeReportRequested      = "Report Requested"
	TypeReportStored         = "Report Stored"
	TypeLinkDataPurged       = "Link Data Purged"
)

// timeLayout is RFC 3339 in UTC with milliseconds, the precision the store
// keeps.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Common holds what every detail carries.
type Common struct {
	// EventID is the same on every publication of the same change.
	EventID    string `json:"eventId"`
	OccurredAt string `json:"occurredAt"`
	LinkID     string `json:"linkId"`
}

// ConsentStatusChanged is the detail of a Consent Status Changed event.
type ConsentStatusChanged struct {
	Common
	ConsentID       string `json:"consentId"`
	InstitutionCode string `json:"institutionCode"`
	Status          string `json:"status"`
	// PreviousStatus is absent for a new consent.
	PreviousStatus string          `json:"previousStatus,omitempty"`
	ExternalInfo   json.RawMessage `json:"externalInfo"`
}

// ReportRequested is the detail of a Report Requested event.
type ReportRequested struct {
	Common
	// ConsentID is the consent the request was made for; a request item
	// names one (the contract's consentIds form is for a request over
	// several, which the store does not make).
	ConsentID string   `json:"consentId,omitempty"`
	RequestID string   `json:"requestId"`
	Products  []string `json:"products"`
}

// ReportStored is the detail of a Report Stored event: where the report is,
// never what it says.
type ReportStored struct {
	Common
	ProductReportID string          `json:"productReportId"`
	ProductName     string          `json:"productName"`
	RequestID       string          `json:"requestId"`
	Code            int             `json:"code"`
	Bytes           int64           `json:"bytes"`
	SHA256          string          `json:"sha256"`
	Bucket          string          `json:"bucket"`
	Key             string          `json:"key"`
	ExternalInfo    json.RawMessage `json:"externalInfo"`
}

// LinkDataPurged is the detail of a Link Data Purged event.
type LinkDataPurged struct {
	Common
	// Reason is linkstore.PurgeConsentDeletedByUser or
	// linkstore.PurgeDeletedByRequest.
	Reason string `json:"reason"`
}

// Event is one integration event, ready to publish once its externalInfo
// is filled in (SetExternalInfo).
type Event struct {
	DetailType string
	LinkID     string
	EventID    string
	OccurredAt time.Time
	// Detail is *ConsentStatusChanged, *ReportRequested, *ReportStored or
	// *LinkDataPurged.
	Detail any
}

// NeedsExternalInfo reports whether the event's detail carries the link's
// externalInfo.
func (e Event) NeedsExternalInfo() bool {
	switch e.Detail.(type) {
	case *ConsentStatusChanged, *ReportStored:
		return true
	}
	return false
}

// SetExternalInfo puts the link's externalInfo into a detail that carries
// it; nil (no externalInfo) is published as null.
func (e Event) SetExternalInfo(info json.RawMessage) {
	switch d := e.Detail.(type) {
	case *ConsentStatusChanged:
		d.ExternalInfo = info
	case *ReportStored:
		d.ExternalInfo = info
	}
}

// Map reads one stream record of the links table and returns the event it
// stands for; ok is false when the record is no event (see the package
// documentation). bucket is the reports bucket, named in Report Stored.
func Map(rec events.DynamoDBEventRecord, bucket string) (e Event, ok bool) {
	op := events.DynamoDBOperationType(rec.EventName)
	if op != events.DynamoDBOperationTypeInsert && op != events.DynamoDBOperationTypeModify {
		return Event{}, false
	}
	img := rec.Change.NewImage
	inserted := op == events.DynamoDBOperationTypeInsert
	switch linkstore.ItemType(img) {
	case linkstore.ItemTypeConsent:
		return consentEvent(rec)
	case linkstore.ItemTypeRequest:
		if !inserted {
			return Event{}, false
		}
		return requestEvent(img)
	case linkstore.ItemTypeReport:
		if !inserted {
			return Event{}, false
		}
		return reportEvent(img, bucket)
	case linkstore.ItemTypeLink:
		return purgeEvent(rec)
	}
	return Event{}, false
}

func consentEvent(rec events.DynamoDBEventRecord) (Event, bool) {
	linkID, c, ok := linkstore.ConsentFromStreamImage(rec.Change.NewImage)
	if !ok || c.Status == "" {
		return Event{}, false
	}
	var previous string
	if _, old, ok := linkstore.ConsentFromStreamImage(rec.Change.OldImage); ok {
		if old.Status == c.Status {
			// Its lease, its request id or a later event with the same status.
			return Event{}, false
		}
		previous = string(old.Status)
	}
	at := firstSet(c.EventTime, c.UpdatedAt, rec.Change.ApproximateCreationDateTime.Time)
	id := eventID(TypeConsentStatusChanged, linkID, c.ConsentID, string(c.Status), stamp(c.EventTime))
	return newEvent(TypeConsentStatusChanged, linkID, id, at, &ConsentStatusChanged{
		ConsentID:       c.ConsentID,
		InstitutionCode: c.InstitutionCode,
		Status:          string(c.Status),
		PreviousStatus:  previous,
	}), true
}

func requestEvent(img map[string]events.DynamoDBAttributeValue) (Event, bool) {
	linkID, r, ok := linkstore.ReportRequestFromStreamImage(img)
	if !ok {
		return Event{}, false
	}
	products := r.Products
	if products == nil {
		products = []string{}
	}
	id := eventID(TypeReportRequested, linkID, r.RequestID)
	return newEvent(TypeReportRequested, linkID, id, r.RequestedAt, &ReportRequested{
		ConsentID: r.ConsentID,
		RequestID: r.RequestID,
		Products:  products,
	}), true
}

func reportEvent(img map[string]events.DynamoDBAttributeValue, bucket string) (Event, bool) {
	linkID, r, ok := linkstore.ReportFromStreamImage(img)
	if !ok {
		return Event{}, false
	}
	id := eventID(TypeReportStored, linkID, r.ProductReportID)
	return newEvent(TypeReportStored, linkID, id, r.ReceivedAt, &ReportStored{
		ProductReportID: r.ProductReportID,
		ProductName:     r.ProductName,
		RequestID:       r.RequestID,
		Code:            r.Code,
		Bytes:           r.Bytes,
		SHA256:          r.SHA256,
		Bucket:          bucket,
		Key:             r.ObjectKey,
	}), true
}

// purgeEvent reads a link item's change: only the write that turned it into
// a tombstone is an event.
func purgeEvent(rec events.DynamoDBEventRecord) (Event, bool) {
	l, ok := linkstore.LinkFromStreamImage(rec.Change.NewImage)
	if !ok || l.PurgedAt.IsZero() {
		return Event{}, false
	}
	if old, ok := linkstore.LinkFromStreamImage(rec.Change.OldImage); ok && !old.PurgedAt.IsZero() {
		return Event{}, false // purged before: a repeated purge finishing its work
	}
	reason := linkstore.PurgeConsentDeletedByUser
	if l.PurgeReason == linkstore.PurgeDeletedByRequest {
		reason = linkstore.PurgeDeletedByRequest
	}
	id := eventID(TypeLinkDataPurged, l.LinkID, stamp(l.PurgedAt))
	return newEvent(TypeLinkDataPurged, l.LinkID, id, l.PurgedAt, &LinkDataPurged{Reason: reason}), true
}

func newEvent(detailType, linkID, id string, at time.Time, detail any) Event {
	at = at.UTC()
	c := Common{EventID: id, OccurredAt: at.Format(timeLayout), LinkID: linkID}
	switch d := detail.(type) {
	case *ConsentStatusChanged:
		d.Common = c
	case *ReportRequested:
		d.Common = c
	case *ReportStored:
		d.Common = c
	case *LinkDataPurged:
		d.Common = c
	}
	return Event{DetailType: detailType, LinkID: linkID, EventID: id, OccurredAt: at, Detail: detail}
}

// eventID hashes what identifies a change into a UUID-shaped id (RFC 9562
// version 8, the form for ids of one's own making), so that consumers can
// keep it in a uuid column.
func eventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func firstSet(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
