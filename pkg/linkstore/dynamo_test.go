package linkstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// newTable creates a table of its own for t in the emulator.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return client, table
}

func TestDynamoConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		client, table := newTable(t)
		return linkstore.NewDynamo(client, table, testOptions()...)
	})
}

// countingDB counts the calls made through it to the real client.
type countingDB struct {
	linkstore.DynamoAPI
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingDB) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
}

// take returns the calls counted since the last take.
func (c *countingDB) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.calls
	c.calls = map[string]int{}
	return got
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.DynamoAPI.PutItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.DynamoAPI.UpdateItem(ctx, in, o...)
}

func (c *countingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.DynamoAPI.Query(ctx, in, o...)
}

func (c *countingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems")
	return c.DynamoAPI.TransactWriteItems(ctx, in, o...)
}

func (c *countingDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.count("BatchWriteItem")
	return c.DynamoAPI.BatchWriteItem(ctx, in, o...)
}

// TestDynamoCallCounts holds the store to the call budget of design §6:
// event webhook DynamoDB <= 2, report webhook DynamoDB <= 2, create link 1.
func TestDynamoCallCounts(t *testing.T) {
	client, table := newTable(t)
	db := &countingDB{DynamoAPI: client, calls: map[string]int{}}
	s := linkstore.NewDynamo(db, table, testOptions()...)
	ctx := t.Context()

	steps := []struct {
		name string
		do   func() error
		want map[string]int
	}{
		{"create link", func() error { return s.CreateLink(ctx, fullLink("L")) },
			map[string]int{"UpdateItem": 1}},
		{"get link", func() error { _, err := s.GetLink(ctx, "L"); return err },
			map[string]int{"Query": 1}},
		{"event applied", outcomeStep(t, s, consentEvent("e1", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)), linkstore.Applied),
			map[string]int{"TransactWriteItems": 1}},
		{"event duplicate", outcomeStep(t, s, consentEvent("e1", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)), linkstore.Duplicate),
			map[string]int{"TransactWriteItems": 1}},
		{"event stale", outcomeStep(t, s, consentEvent("e2", "L", "C", klavi.ConsentStarted, t0), linkstore.Stale),
			map[string]int{"TransactWriteItems": 1, "PutItem": 1}},
		{"stale event redelivered", outcomeStep(t, s, consentEvent("e2", "L", "C", klavi.ConsentStarted, t0), linkstore.Duplicate),
			map[string]int{"TransactWriteItems": 1}},
		{"non-consent event", outcomeStep(t, s, linkstore.EventChange{EventID: "e3", EventName: "link_created", LinkID: "L"}, linkstore.Recorded),
			map[string]int{"TransactWriteItems": 1}},
		{"event without link", outcomeStep(t, s, linkstore.EventChange{EventID: "e4", EventName: "page_view"}, linkstore.Recorded),
			map[string]int{"PutItem": 1}},
		{"claim", func() error { return s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0) },
			map[string]int{"UpdateItem": 1}},
		{"record request", func() error {
			return s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{RequestID: "r1", ConsentID: "C", Trigger: linkstore.TriggerStream})
		}, map[string]int{"TransactWriteItems": 1}},
		{"record report", func() error { return s.RecordReport(ctx, "L", linkstore.Report{ProductReportID: "p1"}) },
			map[string]int{"TransactWriteItems": 1}},
		{"record report duplicate", func() error {
			if err := s.RecordReport(ctx, "L", linkstore.Report{ProductReportID: "p1"}); !errors.Is(err, linkstore.ErrDuplicate) {
				return errors.New("want ErrDuplicate")
			}
			return nil
		}, map[string]int{"TransactWriteItems": 1}},
		{"purge", func() error { _, err := s.Purge(ctx, "L", t0); return err },
			map[string]int{"UpdateItem": 1, "Query": 1, "BatchWriteItem": 1}},
		{"event for purged link", outcomeStep(t, s, consentEvent("e5", "L", "C", klavi.ConsentRevoked, t0.Add(time.Hour)), linkstore.Recorded),
			map[string]int{"TransactWriteItems": 1, "PutItem": 1}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, db.take()); diff != "" {
			t.Errorf("%s: calls mismatch (-want +got):\n%s", st.name, diff)
		}
	}
}

func outcomeStep(t *testing.T, s *linkstore.DynamoStore, e linkstore.EventChange, want linkstore.Outcome) func() error {
	return func() error {
		t.Helper()
		apply(t, s, e, want)
		return nil
	}
}

// TestDynamoPagedPartition reads a link whose partition needs several
// Query pages (DynamoDB returns at most 1 MB per page).
func TestDynamoPagedPartition(t *testing.T) {
	client, table := newTable(t)
	db := &countingDB{DynamoAPI: client, calls: map[string]int{}}
	s := linkstore.NewDynamo(db, table, testOptions()...)
	mustCreate(t, s, fullLink("big"))
	const n = 30
	big := strings.Repeat("k", 40_000) // n items of ~40 KB: more than a page
	for i := range n {
		r := linkstore.Report{ProductReportID: fmt.Sprintf("pr-%03d", i), ObjectKey: big, ReceivedAt: t0.Add(time.Duration(i) * time.Second)}
		checkErr(t, "record report", s.RecordReport(t.Context(), "big", r), nil)
	}
	db.take()
	if got := len(mustGet(t, s, "big").Reports); got != n {
		t.Errorf("reports read = %d, want %d", got, n)
	}
	if got := db.take()["Query"]; got < 2 {
		t.Errorf("Query calls = %d, want several pages", got)
	}
}

// TestStreamImageOfStoredConsent reads a consent item, as DynamoStore wrote
// it, through ConsentFromStreamImage and IsConsentItem.
func TestStreamImageOfStoredConsent(t *testing.T) {
	client, table := newTable(t)
	s := linkstore.NewDynamo(client, table, testOptions()...)
	authorisedConsent(t, s)
	checkErr(t, "claim", s.ClaimAutoRequest(t.Context(), "L", "C", time.Minute, t0), nil)

	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: consentItemKey("L", "C")})
	if err != nil {
		t.Fatalf("get consent item: %v", err)
	}
	img := streamImage(t, out.Item)
	if !linkstore.IsConsentItem(img) {
		t.Fatalf("IsConsentItem(%v) = false, want true", img)
	}
	linkID, c, ok := linkstore.ConsentFromStreamImage(img)
	if !ok || linkID != "L" {
		t.Fatalf("ConsentFromStreamImage = %q, %+v, %v; want link L", linkID, c, ok)
	}
	if diff := cmp.Diff(mustGet(t, s, "L").Consents[0], c); diff != "" {
		t.Errorf("consent from stream image mismatch (-store +image):\n%s", diff)
	}
}

// consentItemKey is the key of a consent item, as the package documents
// the item layout.
func consentItemKey(linkID, consentID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "LINK#" + linkID},
		"sk": &types.AttributeValueMemberS{Value: "CONSENT#" + consentID},
	}
}

// streamImage converts an item as DynamoDB streams would deliver it.
func streamImage(t *testing.T, it map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	img := map[string]events.DynamoDBAttributeValue{}
	for k, v := range it {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			img[k] = events.NewStringAttribute(v.Value)
		case *types.AttributeValueMemberN:
			img[k] = events.NewNumberAttribute(v.Value)
		default:
			t.Fatalf("attribute %s of unexpected type %T", k, v)
		}
	}
	return img
}

// echoDB fails every write with an error that quotes the request, as a
// validation message might.
type echoDB struct{ linkstore.DynamoAPI }

func (echoDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, echoError(in.ExpressionAttributeValues)
}

func (echoDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	var vals []string
	for _, it := range in.TransactItems {
		if it.Update != nil {
			vals = append(vals, echoError(it.Update.ExpressionAttributeValues).Error())
		}
	}
	return nil, &types.InternalServerError{Message: aws.String(strings.Join(vals, "; "))}
}

var errEcho = errors.New("invalid value")

func echoError(vals map[string]types.AttributeValue) error {
	var b strings.Builder
	for k, v := range vals {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			b.WriteString(k + "=" + s.Value + " ")
		}
	}
	return &echoErr{msg: b.String()}
}

type echoErr struct{ msg string }

func (e *echoErr) Error() string        { return "validation: " + e.msg }
func (e *echoErr) Is(target error) bool { return target == errEcho }

func TestErrorsNeverCarryTaxID(t *testing.T) {
	s := linkstore.NewDynamo(echoDB{}, "t", testOptions()...)
	err := s.CreateLink(t.Context(), fullLink("L"))
	if err == nil || strings.Contains(err.Error(), testCPF) || !errors.Is(err, errEcho) {
		t.Errorf("CreateLink error = %v, want the cause kept (errors.Is) without the tax id", err)
	}
	e := consentEvent("e", "L", "C", klavi.ConsentAuthorised, t0)
	e.TaxID = testCPF
	_, err = s.ApplyEvent(t.Context(), e)
	var ise *types.InternalServerError
	if err == nil || strings.Contains(err.Error(), testCPF) || !errors.As(err, &ise) {
		t.Errorf("ApplyEvent error = %v, want the cause kept (errors.As) without the tax id", err)
	}
}
