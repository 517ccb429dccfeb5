package integrationevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

// PutEvents limits: entries per call, and bytes per call as EventBridge
// counts them (see entrySize).
const (
	MaxEntries   = 10
	MaxCallBytes = 256 * 1024
)

// DefaultReserve is the time left in the invocation below which the
// remaining records are left for the retry rather than started.
const DefaultReserve = 2 * time.Second

// eventPutter is the EventBridge call the publisher makes.
type eventPutter interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// externalInfoReader reads a link's externalInfo (linkstore.DynamoStore).
type externalInfoReader interface {
	ExternalInfo(ctx context.Context, linkID string) (json.RawMessage, error)
}

// Config configures a Publisher.
type Config struct {
	EventBusName  string // name or ARN of the bus
	ReportsBucket string // named in Report Stored
	Reserve       time.Duration
	Logger        *slog.Logger
	Metrics       *metrics.Recorder // nil records nothing
}

// Publisher publishes the integration events of the links table's stream.
type Publisher struct {
	bus     eventPutter
	links   externalInfoReader
	busName string
	bucket  string
	reserve time.Duration
	log     *slog.Logger
	metric  *metrics.Recorder
}

// New returns a publisher to the bus.
func New(bus eventPutter, links externalInfoReader, cfg Config) (*Publisher, error) {
	if cfg.EventBusName == "" {
		return nil, errors.New("integration events: no event bus name")
	}
	if cfg.ReportsBucket == "" {
		return nil, errors.New("integration events: no reports bucket name")
	}
	p := &Publisher{bus: bus, links: links, busName: cfg.EventBusName, bucket: cfg.ReportsBucket,
		reserve: cfg.Reserve, log: cfg.Logger, metric: cfg.Metrics}
	if p.reserve <= 0 {
		p.reserve = DefaultReserve
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// pending is one event waiting in the call being built.
type pending struct {
	record int // index in the batch
	event  Event
	entry  types.PutEventsRequestEntry
}

// batch is the state of one invocation.
type batch struct {
	records []events.DynamoDBEventRecord
	call    []pending
	bytes   int
	links   map[string]bool // links with an entry in call
	info    map[string]json.RawMessage
	// failedAt is the first record not published, -1 while none.
	failedAt  int
	published int
}

// Handle publishes the events of a batch of stream records, in order. It
// never returns an error: the first record that could not be published and
// every record after it are returned in BatchItemFailures (the event
// source mapping must report batch item failures), so that the stream
// delivers them again, in order.
func (p *Publisher) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	b := &batch{records: ev.Records, links: map[string]bool{}, info: infoInBatch(ev.Records), failedAt: -1}
	var mapped int
	for i, rec := range ev.Records {
		e, ok := Map(rec, p.bucket)
		if !ok {
			continue
		}
		mapped++
		if err := p.timeLeft(ctx); err != nil {
			p.log.WarnContext(ctx, "stream records left for the retry: the invocation's deadline is near", "error", err)
			p.flush(ctx, b) // what is already in the call goes, or fails before i
			b.fail(i)
			break
		}
		entry, err := p.entry(ctx, b, e)
		if err != nil {
			p.log.ErrorContext(ctx, "integration event not built; the record will be retried",
				"linkId", e.LinkID, "detailType", e.DetailType, "eventId", e.EventID, "error", err)
			p.flush(ctx, b)
			b.fail(i)
			break
		}
		size := entrySize(entry)
		if len(b.call) == MaxEntries || b.bytes+size > MaxCallBytes || b.links[e.LinkID] {
			if !p.flush(ctx, b) {
				break
			}
		}
		b.call = append(b.call, pending{record: i, event: e, entry: entry})
		b.bytes += size
		b.links[e.LinkID] = true
	}
	if b.failedAt < 0 {
		p.flush(ctx, b)
	}
	var resp events.DynamoDBEventResponse
	if b.failedAt >= 0 {
		for _, rec := range ev.Records[b.failedAt:] {
			resp.BatchItemFailures = append(resp.BatchItemFailures,
				events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
		}
		p.metric.Count("StreamRecordsFailed", len(resp.BatchItemFailures))
	}
	if b.published > 0 {
		p.metric.Count("IntegrationEventsPublished", b.published)
	}
	p.log.InfoContext(ctx, "stream batch processed", "records", len(ev.Records), "events", mapped,
		"published", b.published, "failed", len(resp.BatchItemFailures))
	return resp, nil
}

// infoInBatch collects the externalInfo of the links whose link item is in
// the batch. Every write of a consent, request or report touches the link
// item in the same transaction, so its record is usually there, and its
// images hold externalInfo even when the link was purged since (a purge's
// old image): reading them costs no call and survives the purge, which a
// read of the table would not.
func infoInBatch(records []events.DynamoDBEventRecord) map[string]json.RawMessage {
	info := map[string]json.RawMessage{}
	for _, rec := range records {
		for _, img := range []map[string]events.DynamoDBAttributeValue{rec.Change.NewImage, rec.Change.OldImage} {
			if l, ok := linkstore.LinkFromStreamImage(img); ok && len(l.ExternalInfo) > 0 && info[l.LinkID] == nil {
				info[l.LinkID] = l.ExternalInfo
			}
		}
	}
	return info
}

// fail records that record i, and so every later one, is left for the retry.
func (b *batch) fail(i int) {
	if b.failedAt < 0 || i < b.failedAt {
		b.failedAt = i
	}
}

func (p *Publisher) timeLeft(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < p.reserve {
		return fmt.Errorf("%s left, %s needed: %w", time.Until(d).Round(time.Millisecond), p.reserve, context.DeadlineExceeded)
	}
	return nil
}

// entry builds the PutEvents entry of e. When the event carries the
// link's externalInfo and the batch did not hold it, it is read from the
// table, once per link and batch.
func (p *Publisher) entry(ctx context.Context, b *batch, e Event) (types.PutEventsRequestEntry, error) {
	if e.NeedsExternalInfo() {
		info, seen := b.info[e.LinkID]
		if !seen {
			var err error
			info, err = p.links.ExternalInfo(ctx, e.LinkID)
			if errors.Is(err, linkstore.ErrNotFound) {
				err = nil // nothing to carry
			}
			if err != nil {
				return types.PutEventsRequestEntry{}, err
			}
			b.info[e.LinkID] = info
		}
		e.SetExternalInfo(info)
	}
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return types.PutEventsRequestEntry{}, fmt.Errorf("encode %s detail: %w", e.DetailType, err)
	}
	entry := types.PutEventsRequestEntry{
		EventBusName: aws.String(p.busName),
		Source:       aws.String(Source),
		DetailType:   aws.String(e.DetailType),
		Detail:       aws.String(string(detail)),
		Time:         aws.Time(e.OccurredAt),
	}
	if n := entrySize(entry); n > MaxCallBytes {
		return types.PutEventsRequestEntry{}, fmt.Errorf("%s event of %d bytes is over the %d-byte limit", e.DetailType, n, MaxCallBytes)
	}
	return entry, nil
}

// entrySize is an entry's size as EventBridge counts it against the
// PutEvents limit: 14 bytes for Time, plus Source, DetailType, Detail and
// the resources.
func entrySize(e types.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) + len(aws.ToString(e.Detail))
	if e.Time != nil {
		n += 14
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// flush sends the call being built and starts a new one. It returns false
// when an entry failed; b.failedAt is then that entry's record.
func (p *Publisher) flush(ctx context.Context, b *batch) bool {
	call := b.call
	b.call, b.bytes, b.links = nil, 0, map[string]bool{}
	if len(call) == 0 {
		return true
	}
	entries := make([]types.PutEventsRequestEntry, len(call))
	for i, c := range call {
		entries[i] = c.entry
	}
	out, err := p.bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err == nil && len(out.Entries) != len(entries) {
		err = fmt.Errorf("%d results for %d entries", len(out.Entries), len(entries))
	}
	if err != nil {
		p.metric.Count("IntegrationEventsFailed", len(call))
		p.log.ErrorContext(ctx, "put events failed; the records will be retried",
			"entries", len(call), "firstEventId", call[0].event.EventID, "error", fmt.Errorf("put events: %w", err))
		b.fail(call[0].record)
		return false
	}
	first := -1
	var failed, resent int
	for i, r := range out.Entries {
		switch {
		case r.ErrorCode != nil:
			failed++
			if first < 0 {
				first = i
				p.log.ErrorContext(ctx, "integration event rejected; it and the records after it will be retried",
					"linkId", call[i].event.LinkID, "detailType", call[i].event.DetailType, "eventId", call[i].event.EventID,
					"errorCode", aws.ToString(r.ErrorCode), "errorMessage", aws.ToString(r.ErrorMessage),
					"failedEntryCount", out.FailedEntryCount)
			}
		case first >= 0:
			resent++ // accepted, but its record comes back with the retry
		default:
			b.published++
		}
	}
	if first < 0 {
		return true
	}
	p.metric.Count("IntegrationEventsFailed", failed)
	if resent > 0 {
		p.log.WarnContext(ctx, "integration events accepted after a rejected one will be published again with the same eventId",
			"entries", resent)
	}
	b.fail(call[first].record)
	return false
}
