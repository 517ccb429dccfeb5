package awstest_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// TestEmulatorServesSDK proves the harness points the SDK at a live emulator
// over HTTP: an S3 object and a secret written are read back.
func TestEmulatorServesSDK(t *testing.T) {
	cfg := awstest.Config(t)
	ctx := t.Context()

	bucket := awstest.Name(t, "bucket")
	s3c := s3.NewFromConfig(cfg)
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatalf("put object: %v", err)
	}
	out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("get object: %v", err)
	}
	out.Body.Close()
	if got := aws.ToInt64(out.ContentLength); got != 1 {
		t.Errorf("object length = %d, want 1", got)
	}

	sm := secretsmanager.NewFromConfig(cfg)
	name := awstest.Name(t, "secret")
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"a":1}`)}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	got, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatalf("get secret: %v", err)
	}
	if aws.ToString(got.SecretString) != `{"a":1}` {
		t.Errorf("secret = %q, want %q", aws.ToString(got.SecretString), `{"a":1}`)
	}
}

func TestStreamImage(t *testing.T) {
	item := map[string]types.AttributeValue{
		"s": &types.AttributeValueMemberS{Value: "x"},
		"n": &types.AttributeValueMemberN{Value: "42"},
		"b": &types.AttributeValueMemberBOOL{Value: true},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: "y"}}}}},
		"z": &types.AttributeValueMemberNULL{Value: true},
	}
	img := awstest.StreamImage(item)
	if img["s"].String() != "x" || img["n"].Number() != "42" || !img["b"].Boolean() || !img["z"].IsNull() {
		t.Errorf("scalars = %v", img)
	}
	if got := img["m"].Map()["l"].List()[0].String(); got != "y" {
		t.Errorf("nested value = %q, want y", got)
	}
	if awstest.StreamImage(nil) != nil {
		t.Errorf("StreamImage(nil) != nil")
	}
}

// TestStreamReader reads a table's stream from the emulator: each write once,
// in order, and neither a record of a cancelled transaction nor a miss of
// the writes after one.
func TestStreamReader(t *testing.T) {
	cfg := awstest.Config(t)
	ctx := t.Context()
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "stream")
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	}); err != nil {
		t.Fatalf("create table: %v", err)
	}
	key := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
	}
	put := func(pk string) {
		t.Helper()
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key(pk)}); err != nil {
			t.Fatalf("put %s: %v", pk, err)
		}
	}
	r := awstest.NewStreamReader(t, cfg, table)
	summary := func(recs []events.DynamoDBEventRecord) []string {
		var out []string
		for _, rec := range recs {
			out = append(out, rec.EventName+" "+rec.Change.Keys["pk"].String())
		}
		return out
	}

	put("a")
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("a"),
		UpdateExpression: aws.String("SET v = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: "1"}}}); err != nil {
		t.Fatalf("update a: %v", err)
	}
	if got, want := summary(r.Read(t)), []string{"INSERT a", "MODIFY a"}; !slices.Equal(got, want) {
		t.Errorf("first read = %q, want %q", got, want)
	}

	// A transaction whose condition fails writes nothing, and the writes
	// after it are read.
	_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(table), Item: key("b")}},
		{ConditionCheck: &types.ConditionCheck{TableName: aws.String(table), Key: key("a"), ConditionExpression: aws.String("attribute_not_exists(v)")}},
	}})
	if err == nil {
		t.Fatal("the transaction was not cancelled")
	}
	put("c")
	recs := r.Read(t)
	if got, want := summary(recs), []string{"INSERT c"}; !slices.Equal(got, want) {
		t.Errorf("read after a cancelled transaction = %q, want %q", got, want)
	}
	if len(recs) == 1 && (recs[0].Change.NewImage["pk"].String() != "c" || recs[0].Change.OldImage != nil || recs[0].Change.SequenceNumber == "") {
		t.Errorf("record = %+v, want the new image of c, no old image, a sequence number", recs[0].Change)
	}
	if got := r.Read(t); len(got) != 0 {
		t.Errorf("read with nothing written = %q, want nothing", summary(got))
	}
}
