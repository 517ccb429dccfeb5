package linkstore

import (
	"strings"

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
	it := streamItem(img)
	c = decodeConsent(it)
	linkID = streamLinkID(it)
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

// ConsentStreamImage is the stream image (NewImage or OldImage) of the
// consent item DynamoStore leaves after writing c: the inverse of
// ConsentFromStreamImage. Nothing deployed needs it, since DynamoDB makes the
// images; it lives here, beside the item layout it must follow, so that
// linkstoretest.StreamRecord can feed local runs and tests the records a
// deployed table would carry without a second copy of that layout.
func ConsentStreamImage(linkID string, c Consent) map[string]events.DynamoDBAttributeValue {
	return itemImage(encodeConsent(linkID, c))
}

// encodeConsent is the consent item as DynamoStore leaves it: ApplyEvent
// writes the keys, type, linkId, consentId, status, eventTime, eventRank,
// updatedAt and institutionCode (when known), ClaimAutoRequest adds
// leaseUntil, RecordReportRequest sets requestId and removes leaseUntil,
// ClaimRevoke adds revokeLeaseUntil, RecordRevoke sets revokeRequestedAt
// and removes revokeLeaseUntil.
func encodeConsent(linkID string, c Consent) item {
	it := consentKey(linkID, c.ConsentID)
	it[attrType] = str(ItemTypeConsent)
	it[attrLinkID] = str(linkID)
	it[attrConsentID] = str(c.ConsentID)
	it[attrStatus] = str(string(c.Status))
	it[attrEventTime] = timeValue(c.EventTime)
	it[attrEventRank] = num(int64(c.Status.Rank()))
	it[attrUpdatedAt] = timeValue(c.UpdatedAt)
	putIf(it, attrInstitutionCode, c.InstitutionCode)
	putIf(it, attrRequestID, c.RequestID)
	if !c.LeaseUntil.IsZero() {
		it[attrLeaseUntil] = timeValue(c.LeaseUntil)
	}
	if !c.RevokeRequestedAt.IsZero() {
		it[attrRevokeRequested] = timeValue(c.RevokeRequestedAt)
	}
	if !c.RevokeLeaseUntil.IsZero() {
		it[attrRevokeLease] = timeValue(c.RevokeLeaseUntil)
	}
	return it
}

// itemImage converts an item of string, number and string-list attributes
// (all the store writes) to a stream image.
func itemImage(it item) map[string]events.DynamoDBAttributeValue {
	img := make(map[string]events.DynamoDBAttributeValue, len(it))
	for name, v := range it {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			img[name] = events.NewStringAttribute(v.Value)
		case *types.AttributeValueMemberN:
			img[name] = events.NewNumberAttribute(v.Value)
		case *types.AttributeValueMemberL:
			img[name] = listImage(v)
		}
	}
	return img
}

// streamItem converts a stream image to an item of the store's layout:
// strings, numbers and lists of strings (all the store writes).
func streamItem(img map[string]events.DynamoDBAttributeValue) item {
	it := make(item, len(img))
	for name, v := range img {
		switch v.DataType() {
		case events.DataTypeString:
			it[name] = str(v.String())
		case events.DataTypeNumber:
			it[name] = &types.AttributeValueMemberN{Value: v.Number()}
		case events.DataTypeList:
			var l []types.AttributeValue
			for _, e := range v.List() {
				if e.DataType() == events.DataTypeString {
					l = append(l, str(e.String()))
				}
			}
			it[name] = &types.AttributeValueMemberL{Value: l}
		}
	}
	return it
}

// streamLinkID is the link an item belongs to: its linkId attribute, else
// its partition key.
func streamLinkID(it item) string {
	if id := getS(it, attrLinkID); id != "" {
		return id
	}
	pk := getS(it, attrPK)
	if !strings.HasPrefix(pk, linkPrefix) {
		return ""
	}
	return strings.TrimPrefix(pk, linkPrefix)
}

// ItemType returns the "type" attribute of a stream image ("" when absent):
// ItemTypeLink, ItemTypeConsent, ItemTypeRequest, ItemTypeReport or
// ItemTypeEvent.
func ItemType(img map[string]events.DynamoDBAttributeValue) string {
	return streamString(img, attrType)
}

// LinkFromStreamImage reads a link item out of a stream image. ok is false
// when the image is not a link item. Only the link's own attributes are
// read, never its parts; the tax id is left out, so that nothing read from
// a stream can carry it further.
func LinkFromStreamImage(img map[string]events.DynamoDBAttributeValue) (l Link, ok bool) {
	if ItemType(img) != ItemTypeLink {
		return Link{}, false
	}
	it := streamItem(img)
	l = decodeLink(it)
	l.TaxID = ""
	l.LinkID = streamLinkID(it)
	return l, l.LinkID != ""
}

// ReportRequestFromStreamImage reads a report request item out of a stream
// image. ok is false when the image is not one.
func ReportRequestFromStreamImage(img map[string]events.DynamoDBAttributeValue) (linkID string, r ReportRequest, ok bool) {
	if ItemType(img) != ItemTypeRequest {
		return "", ReportRequest{}, false
	}
	it := streamItem(img)
	r, linkID = decodeRequest(it), streamLinkID(it)
	if linkID == "" || r.RequestID == "" {
		return "", ReportRequest{}, false
	}
	return linkID, r, true
}

// ReportFromStreamImage reads a report item (a report's metadata, never its
// content) out of a stream image. ok is false when the image is not one.
func ReportFromStreamImage(img map[string]events.DynamoDBAttributeValue) (linkID string, r Report, ok bool) {
	if ItemType(img) != ItemTypeReport {
		return "", Report{}, false
	}
	it := streamItem(img)
	r, linkID = decodeReport(it), streamLinkID(it)
	if linkID == "" || r.ProductReportID == "" {
		return "", Report{}, false
	}
	return linkID, r, true
}
