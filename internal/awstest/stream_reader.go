package awstest

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// StreamReader reads a table's DynamoDB stream from the emulator from its
// beginning, the way Lambda's event source mapping does, and hands the
// records over in the shape Lambda delivers them to a function.
//
// What the emulator does (moto 5, observed and read in its source): one
// shard per table; a record for every PutItem, UpdateItem, DeleteItem and
// each item of a TransactWriteItems, with NEW_AND_OLD_IMAGES; no record for
// a write whose condition failed. Unlike DynamoDB, it also writes a MODIFY
// record for a write that changes nothing (old and new image equal), so
// consumers of these records see a few more no-op changes than they would
// in AWS. A cancelled transaction is rolled back by putting a copy of the
// table, stream shard included, in place of the table: records written
// during the transaction remain in the replaced shard only, and an
// iterator taken before then keeps reading that shard, phantoms first and
// nothing written later. So each Read takes a new iterator after the last
// sequence number seen, which reads the table's current shard.
type StreamReader struct {
	client *dynamodbstreams.Client
	arn    string
	shards []string          // in the order first seen
	last   map[string]string // shard id -> last sequence number read
}

// NewStreamReader returns a reader of table's stream; the table must have
// been created with its stream enabled.
func NewStreamReader(t testing.TB, cfg aws.Config, table string) *StreamReader {
	t.Helper()
	out, err := dynamodb.NewFromConfig(cfg).DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("describe table %s: %v", table, err)
	}
	arn := aws.ToString(out.Table.LatestStreamArn)
	if arn == "" {
		t.Fatalf("table %s has no stream", table)
	}
	return &StreamReader{client: dynamodbstreams.NewFromConfig(cfg), arn: arn, last: map[string]string{}}
}

// Read returns every record written since the last Read, shard by shard in
// the order the shards appeared, each shard's records in sequence order.
func (r *StreamReader) Read(t testing.TB) []events.DynamoDBEventRecord {
	t.Helper()
	ctx := t.Context()
	desc, err := r.client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(r.arn)})
	if err != nil {
		t.Fatalf("describe stream: %v", err)
	}
	for _, sh := range desc.StreamDescription.Shards {
		if id := aws.ToString(sh.ShardId); !slices.Contains(r.shards, id) {
			r.shards = append(r.shards, id)
		}
	}
	var out []events.DynamoDBEventRecord
	for _, id := range r.shards {
		in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(r.arn), ShardId: aws.String(id),
			ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon}
		if seq := r.last[id]; seq != "" {
			in.ShardIteratorType = streamtypes.ShardIteratorTypeAfterSequenceNumber
			in.SequenceNumber = aws.String(seq)
		}
		it, err := r.client.GetShardIterator(ctx, in)
		if err != nil {
			t.Fatalf("shard iterator %s: %v", id, err)
		}
		for iter := aws.ToString(it.ShardIterator); iter != ""; {
			page, err := r.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(iter)})
			if err != nil {
				t.Fatalf("get records of shard %s: %v", id, err)
			}
			if len(page.Records) == 0 {
				break
			}
			for _, rec := range page.Records {
				out = append(out, lambdaRecord(r.arn, rec))
				r.last[id] = aws.ToString(rec.Dynamodb.SequenceNumber)
			}
			iter = aws.ToString(page.NextShardIterator)
		}
	}
	return out
}

// lambdaRecord is rec as Lambda hands it to a function.
func lambdaRecord(streamARN string, rec streamtypes.Record) events.DynamoDBEventRecord {
	out := events.DynamoDBEventRecord{
		EventID:        aws.ToString(rec.EventID),
		EventName:      string(rec.EventName),
		EventVersion:   aws.ToString(rec.EventVersion),
		EventSource:    aws.ToString(rec.EventSource),
		AWSRegion:      aws.ToString(rec.AwsRegion),
		EventSourceArn: streamARN,
	}
	if d := rec.Dynamodb; d != nil {
		out.Change = events.DynamoDBStreamRecord{
			Keys:           streamRecordImage(d.Keys),
			NewImage:       streamRecordImage(d.NewImage),
			OldImage:       streamRecordImage(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber),
			SizeBytes:      aws.ToInt64(d.SizeBytes),
			StreamViewType: string(d.StreamViewType),
		}
		if d.ApproximateCreationDateTime != nil {
			out.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: d.ApproximateCreationDateTime.Truncate(time.Second)}
		}
	}
	return out
}

func streamRecordImage(item map[string]streamtypes.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if item == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		out[k] = streamRecordAttribute(v)
	}
	return out
}

func streamRecordAttribute(v streamtypes.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *streamtypes.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *streamtypes.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *streamtypes.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *streamtypes.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = streamRecordAttribute(e)
		}
		return events.NewListAttribute(l)
	case *streamtypes.AttributeValueMemberM:
		return events.NewMapAttribute(streamRecordImage(v.Value))
	default:
		return events.NewNullAttribute()
	}
}
