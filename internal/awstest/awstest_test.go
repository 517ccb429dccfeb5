package awstest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
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
