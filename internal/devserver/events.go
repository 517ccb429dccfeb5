package devserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// DefaultKeptEvents is how many integration events the server keeps for
// GET /dev/events and the demo page.
const DefaultKeptEvents = 500

// localBusName names the in-process bus when EVENT_BUS_NAME is not set.
const localBusName = "local"

// eventPutter is the EventBridge call the publisher makes.
type eventPutter interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// KeptEvent is one integration event as the bus received it.
type KeptEvent struct {
	// ID is the id the bus gave the entry; consumers dedupe on the
	// detail's eventId instead, which is the same on every retry.
	ID         string          `json:"id"`
	Bus        string          `json:"bus"`
	Source     string          `json:"source"`
	DetailType string          `json:"detailType"`
	Time       time.Time       `json:"time"`
	LinkID     string          `json:"linkId"`
	Detail     json.RawMessage `json:"detail"`
}

// eventKeeper stands in for the event bus, or sits in front of a real one
// (next): it keeps the last max entries the bus accepted, oldest first.
// The publisher gets the bus's answer unchanged, so its retries are the
// deployed function's.
type eventKeeper struct {
	next eventPutter // nil: the keeper is the bus
	max  int

	mu   sync.Mutex
	kept []KeptEvent
}

func newEventKeeper(next eventPutter, max int) *eventKeeper {
	if max <= 0 {
		max = DefaultKeptEvents
	}
	return &eventKeeper{next: next, max: max}
}

// PutEvents forwards the call to the real bus, if there is one, and keeps
// the entries it accepted; alone, it accepts every entry.
func (k *eventKeeper) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	var out *eventbridge.PutEventsOutput
	if k.next != nil {
		var err error
		if out, err = k.next.PutEvents(ctx, in, optFns...); err != nil {
			return out, err
		}
	} else {
		out = &eventbridge.PutEventsOutput{Entries: make([]types.PutEventsResultEntry, len(in.Entries))}
		for i := range in.Entries {
			out.Entries[i].EventId = aws.String(newEventID())
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, e := range in.Entries {
		if i >= len(out.Entries) || out.Entries[i].ErrorCode != nil {
			continue
		}
		k.kept = append(k.kept, keptEvent(e, aws.ToString(out.Entries[i].EventId)))
	}
	if n := len(k.kept) - k.max; n > 0 {
		k.kept = append([]KeptEvent(nil), k.kept[n:]...)
	}
	return out, nil
}

func keptEvent(e types.PutEventsRequestEntry, id string) KeptEvent {
	detail := json.RawMessage(aws.ToString(e.Detail))
	var common struct {
		LinkID string `json:"linkId"`
	}
	_ = json.Unmarshal(detail, &common) // the publisher's own JSON
	at := time.Now().UTC()
	if e.Time != nil {
		at = e.Time.UTC()
	}
	return KeptEvent{
		ID: id, Bus: aws.ToString(e.EventBusName), Source: aws.ToString(e.Source),
		DetailType: aws.ToString(e.DetailType), Time: at, LinkID: common.LinkID, Detail: detail,
	}
}

// Events returns the kept events, oldest first; with a linkID only that
// link's.
func (k *eventKeeper) Events(linkID string) []KeptEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]KeptEvent, 0, len(k.kept))
	for _, e := range k.kept {
		if linkID == "" || e.LinkID == linkID {
			out = append(out, e)
		}
	}
	return out
}

// newEventID is an id of the shape EventBridge gives entries.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
