package linkstore

import (
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The stream records of the other item types, for the same local runs as
// StreamRecord: linkstoretest.MemoryStore reports consent writes only, and
// the local stand-in of the table's stream builds the records of link,
// report request and report items from what the store returns, so that the
// integration events publisher reads them as it reads the table's.

// RequestStreamRecord returns the INSERT record of a new report request
// item, as DynamoStore writes it.
func RequestStreamRecord(linkID string, r ReportRequest, seq string) events.DynamoDBEventRecord {
	it := encodeRequest(linkID, r)
	return insertRecord(it, seq, r.RequestedAt)
}

// ReportStreamRecord returns the INSERT record of a new report item (the
// report's metadata), as DynamoStore writes it.
func ReportStreamRecord(linkID string, r Report, seq string) events.DynamoDBEventRecord {
	it := encodeReport(linkID, r)
	return insertRecord(it, seq, r.ReceivedAt)
}

// LinkStreamRecord returns the record of a write to a link item: INSERT
// when old is nil, MODIFY otherwise (a purge: new is the tombstone). The
// images hold the link's own attributes as DynamoStore writes them, except
// the tax id, which is left out: no reader of the stream may take it
// further (LinkFromStreamImage drops it too).
func LinkStreamRecord(old *Link, new Link, seq string) events.DynamoDBEventRecord {
	op := events.DynamoDBOperationTypeInsert
	if old != nil {
		op = events.DynamoDBOperationTypeModify
	}
	rec := record(string(op), linkKey(new.LinkID), seq, new.UpdatedAt)
	if old != nil {
		rec.Change.OldImage = itemImage(encodeLinkOwn(*old))
	}
	rec.Change.NewImage = itemImage(encodeLinkOwn(new))
	return rec
}

// encodeLinkOwn is the link item without its parts and without the tax
// id: a tombstone (purgedAt set) keeps its dates and purge reason only, as
// Purge leaves it.
func encodeLinkOwn(l Link) item {
	it := linkKey(l.LinkID)
	it[attrType] = str(ItemTypeLink)
	it[attrLinkID] = str(l.LinkID)
	it[attrCreatedAt] = timeValue(l.CreatedAt)
	it[attrUpdatedAt] = timeValue(l.UpdatedAt)
	if !l.ExpiresAt.IsZero() {
		it[attrExpiresAt] = timeValue(l.ExpiresAt)
	}
	if !l.PurgedAt.IsZero() {
		it[attrPurgedAt] = timeValue(l.PurgedAt)
		putIf(it, attrPurgeReason, l.PurgeReason)
		return it
	}
	if l.TaxIDType != TaxIDUnknown && l.TaxIDType != "" {
		it[attrTaxIDType] = str(string(l.TaxIDType))
	}
	putIf(it, attrInstitutionCode, l.InstitutionCode)
	putIf(it, attrRedirectURL, l.RedirectURL)
	putIf(it, attrReportWebhookURL, l.ReportWebhookURL)
	putIf(it, attrExternalInfo, string(l.ExternalInfo))
	putIf(it, attrOrigin, l.Origin)
	putIf(it, attrOwner, l.Owner)
	return it
}

func insertRecord(it item, seq string, at time.Time) events.DynamoDBEventRecord {
	rec := record(string(events.DynamoDBOperationTypeInsert), item{attrPK: it[attrPK], attrSK: it[attrSK]}, seq, at)
	rec.Change.NewImage = itemImage(it)
	return rec
}

func record(op string, keys item, seq string, at time.Time) events.DynamoDBEventRecord {
	rec := events.DynamoDBEventRecord{
		EventID:      seq,
		EventName:    op,
		EventVersion: "1.1",
		EventSource:  "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			Keys:           itemImage(keys),
			SequenceNumber: seq,
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}
	if !at.IsZero() {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.UTC().Truncate(time.Second)}
	}
	return rec
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
