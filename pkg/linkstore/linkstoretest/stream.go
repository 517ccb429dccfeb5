package linkstoretest

import (
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// StreamRecord returns the DynamoDB stream record (NEW_AND_OLD_IMAGES) that
// linkstore.DynamoStore's table would carry for a write of one consent:
// INSERT when old is nil, REMOVE when new is nil, MODIFY otherwise. The
// images are linkstore.ConsentStreamImage, so linkstore.ConsentFromStreamImage
// reads them back. seq becomes the record's sequence number and event id.
// With both old and new nil the record has no images and no event name;
// stream consumers ignore it.
//
// Local runs feed MemoryStore's consent changes (WithConsentChanges)
// through it to the same stream handler a deployed table triggers.
func StreamRecord(linkID string, old, new *linkstore.Consent, seq string) events.DynamoDBEventRecord {
	rec := events.DynamoDBEventRecord{
		EventID:      seq,
		EventVersion: "1.1",
		EventSource:  "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: seq,
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}
	var written map[string]events.DynamoDBAttributeValue // the image that names the item
	var at time.Time
	switch {
	case old == nil && new == nil:
		return rec
	case old == nil:
		rec.EventName = string(events.DynamoDBOperationTypeInsert)
	case new == nil:
		rec.EventName = string(events.DynamoDBOperationTypeRemove)
	default:
		rec.EventName = string(events.DynamoDBOperationTypeModify)
	}
	if old != nil {
		rec.Change.OldImage = linkstore.ConsentStreamImage(linkID, *old)
		written, at = rec.Change.OldImage, old.UpdatedAt
	}
	if new != nil {
		rec.Change.NewImage = linkstore.ConsentStreamImage(linkID, *new)
		written, at = rec.Change.NewImage, new.UpdatedAt
	}
	// The key attributes are the table's (CreateTable): pk and sk.
	rec.Change.Keys = map[string]events.DynamoDBAttributeValue{"pk": written["pk"], "sk": written["sk"]}
	if !at.IsZero() {
		rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: at.UTC().Truncate(time.Second)}
	}
	return rec
}
