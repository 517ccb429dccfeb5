package integrationevents

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	testTaxID = "52998224725"
	testEmail = "maria.souza@example.com.br"
	testPhone = "+5511987654321"
	testOwner = "user-7f3a"
)

// streamRecorder stands in for the table's stream: after each write of the
// code under test it reads the whole table and turns every item that
// appeared, changed or went into the record DynamoDB Streams
// (NEW_AND_OLD_IMAGES) would carry. Building the records here, one per
// write, keeps each step's expected events next to the write that caused
// them; test/lambda reads the emulator's own stream (awstest.StreamReader)
// for the end-to-end flow.
type streamRecorder struct {
	db      *dynamodb.Client
	table   string
	items   map[string]map[string]ddbtypes.AttributeValue
	seq     int
	records []events.DynamoDBEventRecord
}

func (r *streamRecorder) capture(t *testing.T) {
	t.Helper()
	now := map[string]map[string]ddbtypes.AttributeValue{}
	p := dynamodb.NewScanPaginator(r.db, &dynamodb.ScanInput{TableName: aws.String(r.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("scan table: %v", err)
		}
		for _, it := range page.Items {
			now[key(it)] = it
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range now {
			if !yield(k) {
				return
			}
		}
		for k := range r.items {
			if _, ok := now[k]; !ok && !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		old, new := r.items[k], now[k]
		var op string
		switch {
		case old == nil:
			op = "INSERT"
		case new == nil:
			op = "REMOVE"
		case sameImage(t, old, new):
			continue
		default:
			op = "MODIFY"
		}
		r.seq++
		r.records = append(r.records, events.DynamoDBEventRecord{
			EventID: strconv.Itoa(r.seq), EventName: op, EventSource: "aws:dynamodb",
			Change: events.DynamoDBStreamRecord{
				SequenceNumber: fmt.Sprintf("%021d", r.seq),
				StreamViewType: "NEW_AND_OLD_IMAGES",
				NewImage:       awstest.StreamImage(new),
				OldImage:       awstest.StreamImage(old),
			},
		})
	}
	r.items = now
}

func sameImage(t *testing.T, a, b map[string]ddbtypes.AttributeValue) bool {
	t.Helper()
	ja, errA := json.Marshal(awstest.StreamImage(a))
	jb, errB := json.Marshal(awstest.StreamImage(b))
	if errA != nil || errB != nil {
		t.Fatalf("encode images: %v %v", errA, errB)
	}
	return string(ja) == string(jb)
}

func key(it map[string]ddbtypes.AttributeValue) string {
	pk, _ := it["pk"].(*ddbtypes.AttributeValueMemberS)
	sk, _ := it["sk"].(*ddbtypes.AttributeValueMemberS)
	return pk.Value + "\x00" + sk.Value
}

// lifecycle drives one link through the store, as the functions do, and
// returns the stream records of the table. Several links interleave.
func lifecycle(t *testing.T, store *linkstore.DynamoStore, rec *streamRecorder, linkIDs ...string) {
	t.Helper()
	ctx := t.Context()
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	step := func(what string, f func(linkID string, i int) error) {
		t.Helper()
		for i, id := range linkIDs {
			if err := f(id, i); err != nil {
				t.Fatalf("%s %s: %v", what, id, err)
			}
		}
		rec.capture(t)
	}
	step("create link", func(id string, i int) error {
		return store.CreateLink(ctx, linkstore.Link{LinkID: id, TaxIDType: linkstore.TaxIDPersonal, TaxID: testTaxID,
			Owner: testOwner, ExternalInfo: json.RawMessage(fmt.Sprintf(`{"customerId":"cus-%d"}`, i)),
			ExpiresAt: at.Add(30 * time.Minute), CreatedAt: at})
	})
	consent := func(status klavi.ConsentStatus, d time.Duration) func(string, int) error {
		return func(id string, _ int) error {
			_, err := store.ApplyEvent(ctx, linkstore.EventChange{EventID: id + string(status), EventName: "consent_" + string(status),
				EventTime: at.Add(d), ReceivedAt: at.Add(d), LinkID: id, ConsentID: "consent-" + id, InstitutionCode: "260",
				ConsentStatus: status, TaxID: testTaxID})
			return err
		}
	}
	step("consent started", consent(klavi.ConsentAwaitingAuthorisation, time.Minute))
	step("consent authorised", consent(klavi.ConsentAuthorised, 2*time.Minute))
	step("claim", func(id string, _ int) error {
		return store.ClaimAutoRequest(ctx, id, "consent-"+id, time.Minute, at.Add(2*time.Minute))
	})
	step("request", func(id string, _ int) error {
		return store.RecordReportRequest(ctx, id, linkstore.ReportRequest{RequestID: "req-" + id, ConsentID: "consent-" + id,
			InstitutionCode: "260", Products: []string{"checking_account"}, RequestedAt: at.Add(3 * time.Minute), Trigger: linkstore.TriggerStream})
	})
	report := func(id string, _ int) error {
		return store.RecordReport(ctx, id, linkstore.Report{ProductReportID: "rep-" + id, ProductName: "checking_account",
			RequestID: "req-" + id, ObjectKey: "reports/" + id + "/rep-" + id + ".json", Code: 200, Bytes: 1234,
			SHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", ReceivedAt: at.Add(4 * time.Minute)})
	}
	step("report", report)
	step("report delivered again", func(id string, i int) error {
		if err := report(id, i); !errors.Is(err, linkstore.ErrDuplicate) {
			return fmt.Errorf("second delivery: %v, want ErrDuplicate", err)
		}
		return nil
	})
	step("consent deleted by user", consent(klavi.ConsentDeletedByUser, time.Hour))
	step("purge", func(id string, _ int) error {
		_, err := store.Purge(ctx, id, at.Add(time.Hour+time.Second))
		return err
	})
}

// wantTypes is what lifecycle yields for each link, in order.
var wantTypes = []string{
	TypeConsentStatusChanged, TypeConsentStatusChanged, TypeReportRequested, TypeReportStored,
	TypeConsentStatusChanged, TypeLinkDataPurged,
}

// world is a table, a bus with a rule sending every klavi-link event to
// an SQS queue, and a publisher, all in the emulator; the publisher's
// EventBridge calls go through a fault proxy.
type world struct {
	store    *linkstore.DynamoStore
	rec      *streamRecorder
	pub      *Publisher
	proxy    *faultproxy.Proxy
	sqs      *sqs.Client
	queueURL string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	eb := eventbridge.NewFromConfig(cfg)
	bus := awstest.Name(t, "klavi-link")
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("create bus: %v", err)
	}
	q := sqs.NewFromConfig(cfg)
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.Name(t, "consumer"))})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("queue arn: %v", err)
	}
	rule := awstest.Name(t, "all-klavi-link")
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus),
		EventPattern: aws.String(`{"source":["klavi-link"]}`)}); err != nil {
		t.Fatalf("put rule: %v", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatalf("put targets: %v", err)
	}

	proxy, err := faultproxy.New(awstest.Endpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	t.Cleanup(proxy.Close)
	proxied, err := config.LoadDefaultConfig(ctx, config.WithRegion(awstest.Region), config.WithBaseEndpoint(srv.URL),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	if err != nil {
		t.Fatal(err)
	}
	store := linkstore.NewDynamo(db, table)
	pub, err := New(eventbridge.NewFromConfig(proxied), store, Config{EventBusName: bus, ReportsBucket: "reports-bucket"})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{store: store, rec: &streamRecorder{db: db, table: table}, pub: pub, proxy: proxy, sqs: q, queueURL: *queue.QueueUrl}
	w.rec.capture(t)
	return w
}

// deliver hands the records to the publisher as Lambda does with
// ReportBatchItemFailures: batches of up to size records; after a failure
// the shard resumes at the lowest failed sequence number. It returns the
// number of invocations.
func (w *world) deliver(t *testing.T, records []events.DynamoDBEventRecord, size int) int {
	t.Helper()
	invocations := 0
	for next := 0; next < len(records); {
		batch := records[next:min(next+size, len(records))]
		invocations++
		if invocations > 50 {
			t.Fatalf("no progress after %d invocations", invocations)
		}
		resp, err := w.pub.Handle(t.Context(), events.DynamoDBEvent{Records: batch})
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if len(resp.BatchItemFailures) == 0 {
			next += len(batch)
			continue
		}
		lowest := slices.IndexFunc(batch, func(r events.DynamoDBEventRecord) bool {
			return slices.ContainsFunc(resp.BatchItemFailures, func(f events.DynamoDBBatchItemFailure) bool {
				return f.ItemIdentifier == r.Change.SequenceNumber
			})
		})
		if lowest < 0 {
			t.Fatalf("failures %v name no record of the batch", resp.BatchItemFailures)
		}
		next += lowest
	}
	return invocations
}

// consumed is one event as the SQS consumer reads it.
type consumed struct {
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Time       string          `json:"time"`
	Detail     json.RawMessage `json:"detail"`
	raw        string
	common     Common
}

// receive reads n events from the queue (more if they come), failing
// after a while without them.
func (w *world) receive(t *testing.T, n int) []consumed {
	t.Helper()
	var out []consumed
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		msgs, err := w.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(w.queueURL),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range msgs.Messages {
			var c consumed
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &c); err != nil {
				t.Fatalf("message %q is not an EventBridge event: %v", aws.ToString(m.Body), err)
			}
			c.raw = aws.ToString(m.Body)
			if err := json.Unmarshal(c.Detail, &c.common); err != nil {
				t.Fatalf("detail: %v", err)
			}
			out = append(out, c)
			if _, err := w.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(w.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete message: %v", err)
			}
		}
		if len(out) >= n && len(msgs.Messages) == 0 {
			break
		}
	}
	if len(out) < n {
		t.Fatalf("received %d events, want %d", len(out), n)
	}
	return out
}

// checkPerLink checks the consumer's view after deduplication on eventId:
// each link's events are exactly wantTypes, in order, and an eventId seen
// twice carries the same detail both times.
func checkPerLink(t *testing.T, got []consumed, links []string) {
	t.Helper()
	seen := map[string]consumed{}
	perLink := map[string][]string{}
	for _, c := range got {
		if c.Source != Source {
			t.Errorf("source %q, want %q", c.Source, Source)
		}
		checkNoPersonalData(t, string(c.Detail), testTaxID, testEmail, testPhone, testOwner)
		if prev, dup := seen[c.common.EventID]; dup {
			if !cmp.Equal(prev.Detail, c.Detail) {
				t.Errorf("eventId %s published with two details:\n%s\n%s", c.common.EventID, prev.Detail, c.Detail)
			}
			continue
		}
		seen[c.common.EventID] = c
		perLink[c.common.LinkID] = append(perLink[c.common.LinkID], c.DetailType)
	}
	for _, l := range links {
		if diff := cmp.Diff(wantTypes, perLink[l]); diff != "" {
			t.Errorf("events of link %s in order (-want +got):\n%s", l, diff)
		}
	}
	if len(perLink) != len(links) {
		t.Errorf("events for %d links, want %d", len(perLink), len(links))
	}
}

func TestPublishToEventBridgeAndSQS(t *testing.T) {
	w := newWorld(t)
	links := []string{"link-a", "link-b", "link-c"}
	lifecycle(t, w.store, w.rec, links...)
	w.deliver(t, w.rec.records, 100)
	got := w.receive(t, len(links)*len(wantTypes))
	if len(got) != len(links)*len(wantTypes) {
		t.Errorf("received %d events, want %d: a change published twice or one too many", len(got), len(links)*len(wantTypes))
	}
	checkPerLink(t, got, links)
	for _, c := range got {
		var d map[string]any
		_ = json.Unmarshal(c.Detail, &d)
		switch c.DetailType {
		case TypeConsentStatusChanged, TypeReportStored:
			want := map[string]any{"customerId": "cus-" + strconv.Itoa(slices.Index(links, c.common.LinkID))}
			if diff := cmp.Diff(want, d["externalInfo"]); diff != "" {
				t.Errorf("%s externalInfo (-want +got):\n%s", c.DetailType, diff)
			}
		case TypeLinkDataPurged:
			if d["reason"] != linkstore.PurgeConsentDeletedByUser {
				t.Errorf("reason %v", d["reason"])
			}
		}
		if _, err := time.Parse(time.RFC3339, c.common.OccurredAt); err != nil {
			t.Errorf("occurredAt %q: %v", c.common.OccurredAt, err)
		}
	}
}

func TestThrottledPutEventsRetriesWithoutLossOrDuplicates(t *testing.T) {
	w := newWorld(t)
	links := []string{"link-a", "link-b"}
	lifecycle(t, w.store, w.rec, links...)
	putEvents := faultproxy.EventBridgeOp("PutEvents")
	// The SDK makes 3 attempts a call: the first two calls fail for the
	// handler, the third gets through after one retry of its own.
	w.proxy.Inject(faultproxy.Rule{Match: putEvents, Times: 7, Fault: faultproxy.Throttle()})
	invocations := w.deliver(t, w.rec.records, 10)
	if w.proxy.Armed() != 0 {
		t.Fatalf("%d throttles left unused", w.proxy.Armed())
	}
	if invocations <= (len(w.rec.records)+9)/10 {
		t.Errorf("%d invocations: the throttling made no record come back", invocations)
	}
	got := w.receive(t, len(links)*len(wantTypes))
	ids := map[string]int{}
	for _, c := range got {
		ids[c.common.EventID]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("eventId %s published %d times", id, n)
		}
	}
	if len(got) != len(links)*len(wantTypes) {
		t.Errorf("received %d events, want %d", len(got), len(links)*len(wantTypes))
	}
	checkPerLink(t, got, links)
}
