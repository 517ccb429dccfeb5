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
