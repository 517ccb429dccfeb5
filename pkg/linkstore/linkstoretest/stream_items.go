package linkstoretest

import (
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// RequestStreamRecord returns the INSERT record of a new report request
// item (linkstore.ReportRequestStreamImage).
func RequestStreamRecord(linkID string, r linkstore.ReportRequest, seq string) events.DynamoDBEventRecord {
	return itemRecord(events.DynamoDBOperationTypeInsert, nil, linkstore.ReportRequestStreamImage(linkID, r), seq, r.RequestedAt)
}

// ReportStreamRecord returns the INSERT record of a new report item
// (linkstore.ReportStreamImage).
func ReportStreamRecord(linkID string, r linkstore.Report, seq string) events.DynamoDBEventRecord {
	return itemRecord(events.DynamoDBOperationTypeInsert, nil, linkstore.ReportStreamImage(linkID, r), seq, r.ReceivedAt)
}

// LinkStreamRecord returns the record of a write to a link item
// (linkstore.LinkStreamImage): INSERT when old is nil, MODIFY otherwise,
// such as a purge with new the tombstone.
func LinkStreamRecord(old *linkstore.Link, new linkstore.Link, seq string) events.DynamoDBEventRecord {
	op := events.DynamoDBOperationTypeInsert
	var oldImage map[string]events.DynamoDBAttributeValue
	if old != nil {
		op, oldImage = events.DynamoDBOperationTypeModify, linkstore.LinkStreamImage(*old)
	}
	return itemRecord(op, oldImage, linkstore.LinkStreamImage(new), seq, new.UpdatedAt)
}

func itemRecord(op events.DynamoDBOperationType, old, new map[string]events.DynamoDBAttributeValue, seq string, at time.Time) events.DynamoDBEventRecord {
	rec := events.DynamoDBEventRecord{
		EventID:      seq,
		EventName:    string(op),
		EventVersion: "1.1",
		EventSource:  "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			// The key attributes are the table's (CreateTable): pk and sk.
			Keys:           map[string]events.DynamoDBAttributeValue{"pk": new["pk"], "sk": new["sk"]},
			SequenceNumber: seq,
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
			OldImage:       old,
			NewImage:       new,
		},
	}
	if !at.IsZero() {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.UTC().Truncate(time.Second)}
	}
	return rec
}
