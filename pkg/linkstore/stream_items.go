package linkstore

import (
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The stream images of the other item types, for the same reason as
// ConsentStreamImage: linkstoretest builds from them the records a
// deployed table would carry for the link, report request and report
// items, so that local runs feed the integration events publisher what it
// reads in a deployment.

// ReportRequestStreamImage is the image of the report request item
// DynamoStore writes for r.
func ReportRequestStreamImage(linkID string, r ReportRequest) map[string]events.DynamoDBAttributeValue {
	return itemImage(encodeRequest(linkID, r))
}

// ReportStreamImage is the image of the report item (a report's metadata)
// DynamoStore writes for r.
func ReportStreamImage(linkID string, r Report) map[string]events.DynamoDBAttributeValue {
	return itemImage(encodeReport(linkID, r))
}

// LinkStreamImage is the image of the link item without its parts, as
// DynamoStore leaves it after creating l or, when l.PurgedAt is set, after
// purging it (a tombstone: its dates, owner and purge reason). The tax id
// is left out: no reader of a stream may take it further
// (LinkFromStreamImage drops it too); so are the attention and pending-work
// entries, which no stream consumer reads.
func LinkStreamImage(l Link) map[string]events.DynamoDBAttributeValue {
	return itemImage(encodeLinkOwn(l))
}

func encodeLinkOwn(l Link) item {
	it := linkKey(l.LinkID)
	it[attrType] = str(ItemTypeLink)
	it[attrLinkID] = str(l.LinkID)
	it[attrCreatedAt] = timeValue(l.CreatedAt)
	it[attrUpdatedAt] = timeValue(l.UpdatedAt)
	if !l.ExpiresAt.IsZero() {
		it[attrExpiresAt] = timeValue(l.ExpiresAt)
	}
	putIf(it, attrOwner, l.Owner)
	if !l.PurgedAt.IsZero() {
		it[attrPurgedAt] = timeValue(l.PurgedAt)
		putIf(it, attrPurgeReason, l.PurgeReason)
		return it
	}
	if l.TaxIDType != TaxIDUnknown && l.TaxIDType != "" {
		it[attrTaxIDType] = str(string(l.TaxIDType))
	}
	putIf(it, attrPurgeReason, l.PurgeReason) // a deletion asked for, not done yet
	putIf(it, attrInstitutionCode, l.InstitutionCode)
	putIf(it, attrRedirectURL, l.RedirectURL)
	putIf(it, attrReportWebhookURL, l.ReportWebhookURL)
	putIf(it, attrExternalInfo, string(l.ExternalInfo))
	putIf(it, attrOrigin, l.Origin)
	return it
}

// listImage converts a list of strings (a request's products).
func listImage(l *types.AttributeValueMemberL) events.DynamoDBAttributeValue {
	out := make([]events.DynamoDBAttributeValue, 0, len(l.Value))
	for _, v := range l.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out = append(out, events.NewStringAttribute(s.Value))
		}
	}
	return events.NewListAttribute(out)
}
