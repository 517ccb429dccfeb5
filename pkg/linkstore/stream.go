package linkstore

import (
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// IsConsentItem reports whether a DynamoDB stream image (NewImage or
// OldImage) is a consent item.
func IsConsentItem(img map[string]events.DynamoDBAttributeValue) bool {
	return streamString(img, attrType) == ItemTypeConsent
}

// ConsentFromStreamImage reads a consent item out of a DynamoDB stream
// image. ok is false when the image is not a consent item.
func ConsentFromStreamImage(img map[string]events.DynamoDBAttributeValue) (linkID string, c Consent, ok bool) {
	if !IsConsentItem(img) {
		return "", Consent{}, false
	}
	it := item{}
	for name, v := range img {
		switch v.DataType() {
		case events.DataTypeString:
			it[name] = str(v.String())
		case events.DataTypeNumber:
			it[name] = &types.AttributeValueMemberN{Value: v.Number()}
		}
	}
	c = decodeConsent(it)
	linkID = getS(it, attrLinkID)
	if linkID == "" {
		linkID = strings.TrimPrefix(getS(it, attrPK), linkPrefix)
	}
	if linkID == "" || c.ConsentID == "" {
		return "", Consent{}, false
	}
	return linkID, c, true
}

// streamString returns a string attribute of an image, "" when it is
// missing or not a string (the accessors of events panic on a wrong type).
func streamString(img map[string]events.DynamoDBAttributeValue, name string) string {
	v, ok := img[name]
	if !ok || v.DataType() != events.DataTypeString {
		return ""
	}
	return v.String()
}

// StreamRecord returns the DynamoDB stream record (NEW_AND_OLD_IMAGES) that
// DynamoStore's table would carry for a write of one consent: INSERT when
// old is nil, REMOVE when new is nil, MODIFY otherwise. The images hold the
// consent item's attributes exactly as DynamoStore writes them, so
// ConsentFromStreamImage reads them back. seq becomes the record's sequence
// number and event id. With both old and new nil the record has no images
// and no event name; stream consumers ignore it.
//
// Local runs feed MemoryStore's consent changes (WithConsentChanges) through
// it to the same stream handler a deployed table triggers.
func StreamRecord(linkID string, old, new *Consent, seq string) events.DynamoDBEventRecord {
	rec := events.DynamoDBEventRecord{
		EventID:      seq,
		EventVersion: "1.1",
		EventSource:  "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: seq,
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}
	var written *Consent // the image that names the item
	switch {
	case old == nil && new == nil:
		return rec
	case old == nil:
		rec.EventName, written = string(events.DynamoDBOperationTypeInsert), new
	case new == nil:
		rec.EventName, written = string(events.DynamoDBOperationTypeRemove), old
	default:
		rec.EventName, written = string(events.DynamoDBOperationTypeModify), new
	}
	rec.Change.Keys = itemImage(consentKey(linkID, written.ConsentID))
	if old != nil {
		rec.Change.OldImage = itemImage(encodeConsent(linkID, *old))
	}
	if new != nil {
		rec.Change.NewImage = itemImage(encodeConsent(linkID, *new))
	}
	if !written.UpdatedAt.IsZero() {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: written.UpdatedAt.UTC().Truncate(time.Second)}
	}
	return rec
}

// encodeConsent is the consent item as DynamoStore leaves it: ApplyEvent
// writes the keys, type, linkId, consentId, status, eventTime, eventRank,
// updatedAt and institutionCode (when known), ClaimAutoRequest adds
// leaseUntil, RecordReportRequest sets requestId and removes leaseUntil.
func encodeConsent(linkID string, c Consent) item {
	it := consentKey(linkID, c.ConsentID)
	it[attrType] = str(ItemTypeConsent)
	it[attrLinkID] = str(linkID)
	it[attrConsentID] = str(c.ConsentID)
	it[attrStatus] = str(c.Status)
	it[attrEventTime] = timeValue(c.EventTime)
	it[attrEventRank] = num(int64(statusRank(c.Status)))
	it[attrUpdatedAt] = timeValue(c.UpdatedAt)
	putIf(it, attrInstitutionCode, c.InstitutionCode)
	putIf(it, attrRequestID, c.RequestID)
	if !c.LeaseUntil.IsZero() {
		it[attrLeaseUntil] = timeValue(c.LeaseUntil)
	}
	return it
}

// itemImage converts an item of string and number attributes (all a
// consent item holds) to a stream image.
func itemImage(it item) map[string]events.DynamoDBAttributeValue {
	img := make(map[string]events.DynamoDBAttributeValue, len(it))
	for name, v := range it {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			img[name] = events.NewStringAttribute(v.Value)
		case *types.AttributeValueMemberN:
			img[name] = events.NewNumberAttribute(v.Value)
		}
	}
	return img
}
