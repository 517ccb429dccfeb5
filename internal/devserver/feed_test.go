package devserver

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func consent(id string, status klavi.ConsentStatus) *linkstore.Consent {
	return &linkstore.Consent{ConsentID: id, Status: status, UpdatedAt: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
}

func TestPassesFilter(t *testing.T) {
	tests := []struct {
		name     string
		old, new *linkstore.Consent
		want     bool
	}{
		{"became authorised", consent("c", klavi.ConsentAwaitingAuthorisation), consent("c", klavi.ConsentAuthorised), true},
		{"inserted authorised", nil, consent("c", klavi.ConsentAuthorised), true},
		{"lease on an authorised consent", consent("c", klavi.ConsentAuthorised), consent("c", klavi.ConsentAuthorised), true},
		{"deleted by user", consent("c", klavi.ConsentAuthorised), consent("c", klavi.ConsentDeletedByUser), true},
		{"awaiting", nil, consent("c", klavi.ConsentAwaitingAuthorisation), false},
		{"rejected", consent("c", klavi.ConsentStarted), consent("c", klavi.ConsentRejected), false},
		{"removed by a purge", consent("c", klavi.ConsentAuthorised), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := passesFilter(linkstoretest.StreamRecord("L", tc.old, tc.new, "1")); got != tc.want {
				t.Errorf("passesFilter = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeStream records the batches it is given and fails the records its
// fail function names. Each invocation sends on calls.
type fakeStream struct {
	mu      sync.Mutex
	batches [][]string // consent ids per invocation
	ids     []string   // Lambda request ids
	fail    func(call int, rec events.DynamoDBEventRecord) bool
	calls   chan struct{}
}

func newFakeStream() *fakeStream { return &fakeStream{calls: make(chan struct{}, 100)} }

func (f *fakeStream) handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := len(f.batches)
	var batch []string
	var resp events.DynamoDBEventResponse
	for _, rec := range ev.Records {
		_, c, _ := linkstore.ConsentFromStreamImage(rec.Change.NewImage)
		batch = append(batch, c.ConsentID)
		if f.fail != nil && f.fail(call, rec) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
		}
	}
	f.batches = append(f.batches, batch)
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		f.ids = append(f.ids, lc.AwsRequestID)
	}
	f.calls <- struct{}{}
	return resp, nil
}

// wait returns once n more invocations happened.
func (f *fakeStream) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-f.calls:
		case <-time.After(10 * time.Second):
			t.Fatal("the feed did not invoke the handler in time")
		}
	}
}

func (f *fakeStream) got() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...)
}

// startFeed runs a feed over fs until the test ends, with the records
// queued by setup waiting when it starts (so that they form one batch).
func startFeed(t *testing.T, fs *fakeStream, setup func(f *changeFeed)) *changeFeed {
	t.Helper()
	f := newChangeFeed(reportRequestMapping, fs.handle, slog.New(slog.DiscardHandler))
	f.retryBase = time.Millisecond
	setup(f)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

// authorise adds the stream records of consents becoming AUTHORISED, and
// one record the filter drops.
func authorise(f *changeFeed, ids ...string) {
	for _, id := range ids {
		f.Add(linkstoretest.StreamRecord("L", consent(id, klavi.ConsentAwaitingAuthorisation), consent(id, klavi.ConsentAuthorised), id))
	}
	f.Add(linkstoretest.StreamRecord("L", nil, consent("filtered-out", klavi.ConsentStarted), "z-filtered"))
}

func TestChangeFeedBatchesInOrder(t *testing.T) {
	fs := newFakeStream()
	var ids []string
	for i := range 12 {
		ids = append(ids, string(rune('a'+i)))
	}
	startFeed(t, fs, func(f *changeFeed) { authorise(f, ids...) })
	fs.wait(t, 2)

	want := [][]string{ids[:10], ids[10:]}
	if diff := cmp.Diff(want, fs.got()); diff != "" {
		t.Errorf("batches mismatch (-want +got):\n%s", diff)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.ids) != 2 || fs.ids[0] == "" || fs.ids[0] == fs.ids[1] {
		t.Errorf("Lambda request ids = %v, want one per invocation", fs.ids)
	}
}

func TestChangeFeedRetriesFromFirstFailure(t *testing.T) {
	fs := newFakeStream()
	fs.fail = func(call int, rec events.DynamoDBEventRecord) bool {
		_, c, _ := linkstore.ConsentFromStreamImage(rec.Change.NewImage)
		return call == 0 && c.ConsentID == "b"
	}
	startFeed(t, fs, func(f *changeFeed) { authorise(f, "a", "b", "c") })
	fs.wait(t, 2)
	want := [][]string{{"a", "b", "c"}, {"b", "c"}}
	if diff := cmp.Diff(want, fs.got()); diff != "" {
		t.Errorf("batches mismatch (-want +got):\n%s", diff)
	}
}

func TestChangeFeedGivesUp(t *testing.T) {
	fs := newFakeStream()
	fs.fail = func(_ int, rec events.DynamoDBEventRecord) bool {
		_, c, _ := linkstore.ConsentFromStreamImage(rec.Change.NewImage)
		return c.ConsentID == "a"
	}
	f := startFeed(t, fs, func(f *changeFeed) { authorise(f, "a", "b") })
	fs.wait(t, reportRequestMapping.maxRetries+1)
	authorise(f, "z") // only handled once the failing records are dropped
	fs.wait(t, 1)

	var want [][]string
	for range reportRequestMapping.maxRetries + 1 {
		want = append(want, []string{"a", "b"})
	}
	want = append(want, []string{"z"})
	if diff := cmp.Diff(want, fs.got()); diff != "" {
		t.Errorf("batches mismatch (-want +got):\n%s", diff)
	}
}
