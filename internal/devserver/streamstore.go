package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// streamedStore is the in-memory link store with the whole of the table's
// stream: the memory store reports its consent writes itself, and this
// wrapper puts the records of the link, report request and report items
// that a DynamoStore write would leave on the stream, built from what the
// store holds after the write (its timestamps, a tombstone's purge
// reason). Writes that fail, or change nothing (a duplicate report, a purge
// repeated), put no record, as a conditional write that fails puts none.
type streamedStore struct {
	*linkstoretest.MemoryStore
	stream *tableStream
}

func newStreamedStore(stream *tableStream) *streamedStore {
	return &streamedStore{
		MemoryStore: linkstoretest.NewMemory(linkstoretest.WithConsentChanges(stream.Consent)),
		stream:      stream,
	}
}

// CreateLink stores the link and puts its item's record, whose externalInfo
// the publisher then finds in the batch as it does with a table.
func (s *streamedStore) CreateLink(ctx context.Context, l linkstore.Link) error {
	if err := s.MemoryStore.CreateLink(ctx, l); err != nil {
		return err
	}
	if stored, err := s.MemoryStore.GetLink(ctx, l.LinkID); err == nil {
		s.stream.put(func(seq string) events.DynamoDBEventRecord { return linkstoretest.LinkStreamRecord(nil, *stored, seq) })
	}
	return nil
}

func (s *streamedStore) RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error {
	if err := s.MemoryStore.RecordReportRequest(ctx, linkID, r); err != nil {
		return err
	}
	if l, err := s.MemoryStore.GetLink(ctx, linkID); err == nil {
		for _, stored := range l.ReportRequests {
			if stored.RequestID == r.RequestID {
				s.stream.put(func(seq string) events.DynamoDBEventRecord {
					return linkstoretest.RequestStreamRecord(linkID, stored, seq)
				})
			}
		}
	}
	return nil
}

func (s *streamedStore) RecordReport(ctx context.Context, linkID string, r linkstore.Report) error {
	if err := s.MemoryStore.RecordReport(ctx, linkID, r); err != nil {
		return err
	}
	if l, err := s.MemoryStore.GetLink(ctx, linkID); err == nil {
		for _, stored := range l.Reports {
			if stored.ProductReportID == r.ProductReportID {
				s.stream.put(func(seq string) events.DynamoDBEventRecord {
					return linkstoretest.ReportStreamRecord(linkID, stored, seq)
				})
			}
		}
	}
	return nil
}

// Purge purges the link and, the first time, puts the record of its item
// turning into a tombstone.
func (s *streamedStore) Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error) {
	was, err := s.MemoryStore.Purge(ctx, linkID, now)
	if err != nil || !was.PurgedAt.IsZero() {
		return was, err
	}
	if tomb, err := s.MemoryStore.GetLink(ctx, linkID); err == nil {
		s.stream.put(func(seq string) events.DynamoDBEventRecord { return linkstoretest.LinkStreamRecord(was, *tomb, seq) })
	}
	return was, nil
}

// ExternalInfo is what the publisher reads for a link whose item is not in
// its batch, as from DynamoStore: nil when the link has none or was purged.
func (s *streamedStore) ExternalInfo(ctx context.Context, linkID string) (json.RawMessage, error) {
	l, err := s.MemoryStore.GetLink(ctx, linkID)
	if errors.Is(err, linkstore.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("get external info of link %s: %w", linkID, err)
	}
	if !l.PurgedAt.IsZero() || len(l.ExternalInfo) == 0 {
		return nil, nil
	}
	return l.ExternalInfo, nil
}
