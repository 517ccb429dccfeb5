package devserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// mapping is one event source mapping of the links table's stream, with the
// settings the template gives it.
type mapping struct {
	function   string // the function it invokes, for log lines
	batchSize  int
	maxRetries int
	filter     func(events.DynamoDBEventRecord) bool
}

// The event source mappings of the deployed functions on the table's stream
// (template.yaml: ReportRequestFunction's ConsentChanges and
// IntegrationEventsFunction's TableChanges).
var (
	reportRequestMapping = mapping{function: "report-request", batchSize: 10, maxRetries: 5, filter: passesFilter}
	integrationMapping   = mapping{function: "integration-events", batchSize: 100, maxRetries: 10, filter: publishable}
)

const (
	feedRetryBase = 500 * time.Millisecond
	feedStreamARN = "arn:aws:dynamodb:local:" + gatewayAccount + ":table/links/stream/local"
)

// streamFunc is a stream handler: the report-request function's or the
// integration events publisher's.
type streamFunc func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// tableStream stands in for the links table's DynamoDB stream: it numbers
// the records of the store's writes and hands each, in that order, to
// every mapping on it. Consent writes come from the memory store
// (linkstoretest.WithConsentChanges); the writes of link, report request
// and report items from streamedStore.
type tableStream struct {
	mu    sync.Mutex
	seq   uint64
	feeds []*changeFeed
}

// Consent puts the record of one consent write.
func (s *tableStream) Consent(linkID string, old, new *linkstore.Consent) {
	s.put(func(seq string) events.DynamoDBEventRecord { return linkstoretest.StreamRecord(linkID, old, new, seq) })
}

// put numbers a record and hands it to every mapping. It never blocks on a
// handler: the store calls it while other writes wait.
func (s *tableStream) put(build func(seq string) events.DynamoDBEventRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	rec := build(fmt.Sprintf("%021d", s.seq))
	rec.AWSRegion = "local"
	rec.EventSourceArn = feedStreamARN
	for _, f := range s.feeds {
		f.Add(rec)
	}
}

// changeFeed is one event source mapping on the stream: it keeps the
// records its filter lets through and invokes its function's handler with
// batches of them, in order, from one goroutine.
//
// Failed records are retried as Lambda does with ReportBatchItemFailures:
// the batch again from its first failed record, with a growing delay, up
// to the mapping's retry limit; then they are dropped with an error in the
// log (where the deployed mapping sends them to the dead-letter queue).
// Records that arrive meanwhile wait, as on one shard.
type changeFeed struct {
	mapping
	handle    streamFunc
	log       *slog.Logger
	retryBase time.Duration

	mu    sync.Mutex
	queue []events.DynamoDBEventRecord
	wake  chan struct{}
}

func newChangeFeed(m mapping, handle streamFunc, log *slog.Logger) *changeFeed {
	return &changeFeed{mapping: m, handle: handle, log: log, retryBase: feedRetryBase, wake: make(chan struct{}, 1)}
}

// Add queues a stream record if the mapping's filter lets it through.
func (f *changeFeed) Add(rec events.DynamoDBEventRecord) {
	if !f.filter(rec) {
		return
	}
	f.mu.Lock()
	f.queue = append(f.queue, rec)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// imageString returns a string attribute of a stream image, "" when it is
// missing or of another type.
func imageString(img map[string]events.DynamoDBAttributeValue, name string) string {
	v, ok := img[name]
	if !ok || v.DataType() != events.DataTypeString {
		return ""
	}
	return v.String()
}

// passesFilter applies the report-request mapping's filter criteria: a
// consent whose new image is AUTHORISED, or any new image DELETED_BY_USER.
func passesFilter(rec events.DynamoDBEventRecord) bool {
	img := rec.Change.NewImage
	status := klavi.ConsentStatus(imageString(img, "status"))
	return status == klavi.ConsentDeletedByUser ||
		status == klavi.ConsentAuthorised && imageString(img, "type") == linkstore.ItemTypeConsent
}

// publishable applies the integration events mapping's filter criteria:
// inserts and changes of the item types that can be an event.
func publishable(rec events.DynamoDBEventRecord) bool {
	op := events.DynamoDBOperationType(rec.EventName)
	if op != events.DynamoDBOperationTypeInsert && op != events.DynamoDBOperationTypeModify {
		return false
	}
	switch imageString(rec.Change.NewImage, "type") {
	case linkstore.ItemTypeConsent, linkstore.ItemTypeRequest, linkstore.ItemTypeReport, linkstore.ItemTypeLink:
		return true
	}
	return false
}

// Run delivers records until ctx is done.
func (f *changeFeed) Run(ctx context.Context) {
	var batch []events.DynamoDBEventRecord
	attempt := 0
	for {
		if len(batch) == 0 {
			batch, attempt = f.next(), 0
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
				continue
			}
		}
		if attempt > 0 && !sleepCtx(ctx, f.retryBase<<(attempt-1)) {
			return
		}
		failed := f.invoke(ctx, batch)
		if ctx.Err() != nil {
			return
		}
		if failed < 0 {
			batch = nil
			continue
		}
		batch = batch[failed:]
		attempt++
		if attempt > f.maxRetries {
			f.log.Error("stream records dropped after retries", "function", f.function,
				"records", len(batch), "firstSequenceNumber", batch[0].Change.SequenceNumber, "attempts", attempt)
			batch = nil
		}
	}
}

// next takes up to a batch of queued records.
func (f *changeFeed) next() []events.DynamoDBEventRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(f.queue), f.batchSize)
	batch := append([]events.DynamoDBEventRecord(nil), f.queue[:n]...)
	f.queue = f.queue[n:]
	return batch
}

// invoke runs the handler on batch and returns the index of the first
// failed record, or -1 when every record succeeded.
func (f *changeFeed) invoke(ctx context.Context, batch []events.DynamoDBEventRecord) int {
	ictx := lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newRequestID(),
		InvokedFunctionArn: "arn:aws:lambda:local:" + gatewayAccount + ":function:" + f.function,
	})
	resp, err := f.safeHandle(ictx, events.DynamoDBEvent{Records: batch})
	if err != nil {
		// The whole batch failed, as a function error does.
		f.log.ErrorContext(ictx, "stream handler failed", "function", f.function, "error", err)
		return 0
	}
	failed := -1
	for _, item := range resp.BatchItemFailures {
		for i, rec := range batch {
			if rec.Change.SequenceNumber == item.ItemIdentifier && (failed < 0 || i < failed) {
				failed = i
			}
		}
		if item.ItemIdentifier == "" {
			return 0 // Lambda retries the whole batch
		}
	}
	return failed
}

func (f *changeFeed) safeHandle(ctx context.Context, ev events.DynamoDBEvent) (resp events.DynamoDBEventResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f.handle(ctx, ev)
}

// sleepCtx waits d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
