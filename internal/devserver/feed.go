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

// The stream settings of the deployed report-request function
// (template.yaml, event source ConsentChanges).
const (
	feedBatchSize   = 10
	feedMaxRetries  = 5
	feedRetryBase   = 500 * time.Millisecond
	feedStreamARN   = "arn:aws:dynamodb:local:" + gatewayAccount + ":table/links/stream/local"
	feedFunctionARN = "arn:aws:lambda:local:" + gatewayAccount + ":function:report-request"
)

// streamFunc is the report-request function's stream handler.
type streamFunc func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// changeFeed stands in for the links table's DynamoDB stream and its
// event source mapping: the memory store reports each consent write
// (Add), the feed turns it into the stream record DynamoDB would carry,
// keeps the records the template's filter lets through, and invokes the
// stream handler with batches of them, in order, from one goroutine.
//
// Failed records are retried as Lambda does with ReportBatchItemFailures:
// the batch again from its first failed record, with a growing delay, up
// to feedMaxRetries times; then they are dropped with an error in the log
// (where the deployed mapping sends them to the dead-letter queue).
// Records that arrive meanwhile wait, as on one shard.
type changeFeed struct {
	handle    streamFunc
	log       *slog.Logger
	retryBase time.Duration

	mu    sync.Mutex
	seq   uint64
	queue []events.DynamoDBEventRecord
	wake  chan struct{}
}

func newChangeFeed(handle streamFunc, log *slog.Logger) *changeFeed {
	return &changeFeed{handle: handle, log: log, retryBase: feedRetryBase, wake: make(chan struct{}, 1)}
}

// Add queues the stream record of one consent write. It never blocks: the
// store calls it while other writes wait.
func (f *changeFeed) Add(linkID string, old, new *linkstore.Consent) {
	f.mu.Lock()
	f.seq++
	rec := linkstoretest.StreamRecord(linkID, old, new, fmt.Sprintf("%021d", f.seq))
	rec.AWSRegion = "local"
	rec.EventSourceArn = feedStreamARN
	keep := passesFilter(rec)
	if keep {
		f.queue = append(f.queue, rec)
	}
	f.mu.Unlock()
	if keep {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// passesFilter applies the event source mapping's filter criteria: a
// consent whose new image is AUTHORISED, or any new image DELETED_BY_USER.
func passesFilter(rec events.DynamoDBEventRecord) bool {
	img := rec.Change.NewImage
	str := func(name string) string {
		v, ok := img[name]
		if !ok || v.DataType() != events.DataTypeString {
			return ""
		}
		return v.String()
	}
	status := klavi.ConsentStatus(str("status"))
	return status == klavi.ConsentDeletedByUser ||
		status == klavi.ConsentAuthorised && str("type") == linkstore.ItemTypeConsent
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
		if attempt > feedMaxRetries {
			f.log.Error("stream records dropped after retries; the reconciliation sweep or a manual request must catch up",
				"records", len(batch), "firstSequenceNumber", batch[0].Change.SequenceNumber, "attempts", attempt)
			batch = nil
		}
	}
}

// next takes up to feedBatchSize queued records.
func (f *changeFeed) next() []events.DynamoDBEventRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(f.queue), feedBatchSize)
	batch := append([]events.DynamoDBEventRecord(nil), f.queue[:n]...)
	f.queue = f.queue[n:]
	return batch
}

// invoke runs the handler on batch and returns the index of the first
// failed record, or -1 when every record succeeded.
func (f *changeFeed) invoke(ctx context.Context, batch []events.DynamoDBEventRecord) int {
	ictx := lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       newRequestID(),
		InvokedFunctionArn: feedFunctionARN,
	})
	resp, err := f.safeHandle(ictx, events.DynamoDBEvent{Records: batch})
	if err != nil {
		// The whole batch failed, as a function error does.
		f.log.ErrorContext(ictx, "stream handler failed", "function", "report-request", "error", err)
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
