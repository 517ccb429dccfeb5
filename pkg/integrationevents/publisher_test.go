package integrationevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
)

// fakeBus records PutEvents calls; reject decides each entry's fate and
// fail the whole call's.
type fakeBus struct {
	mu     sync.Mutex
	calls  [][]types.PutEventsRequestEntry
	fail   func(call int) error
	reject func(call, entry int) bool
}

func (f *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := len(f.calls)
	f.calls = append(f.calls, in.Entries)
	if f.fail != nil {
		if err := f.fail(call); err != nil {
			return nil, err
		}
	}
	out := &eventbridge.PutEventsOutput{}
	for i := range in.Entries {
		if f.reject != nil && f.reject(call, i) {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, types.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("injected")})
			continue
		}
		out.Entries = append(out.Entries, types.PutEventsResultEntry{EventId: aws.String(fmt.Sprintf("eb-%d-%d", call, i))})
	}
	return out, nil
}

// accepted returns the details EventBridge accepted, in order.
func (f *fakeBus) accepted() []map[string]any {
	var out []map[string]any
	for call, entries := range f.calls {
		if f.fail != nil && f.fail(call) != nil {
			continue
		}
		for i, e := range entries {
			if f.reject != nil && f.reject(call, i) {
				continue
			}
			var m map[string]any
			_ = json.Unmarshal([]byte(aws.ToString(e.Detail)), &m)
			out = append(out, m)
		}
	}
	return out
}

// fakeLinks serves externalInfo by link id and counts the reads.
type fakeLinks struct {
	info  map[string]json.RawMessage
	err   map[string]error
	reads map[string]int
}

func (f *fakeLinks) ExternalInfo(_ context.Context, linkID string) (json.RawMessage, error) {
	if f.reads == nil {
		f.reads = map[string]int{}
	}
	f.reads[linkID]++
	if err := f.err[linkID]; err != nil {
		return nil, err
	}
	if info, ok := f.info[linkID]; ok {
		return info, nil
	}
	return nil, fmt.Errorf("external info of %s: %w", linkID, linkstore.ErrNotFound)
}

func newPublisher(t *testing.T, bus *fakeBus, links *fakeLinks) (*Publisher, *metricstest.Capture) {
	t.Helper()
	m := metricstest.NewCapture("integration-events")
	p, err := New(bus, links, Config{EventBusName: "bus", ReportsBucket: "bucket", Metrics: m.Recorder})
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// reportRecords builds one Report Stored record per (link, n) in order,
// with consecutive sequence numbers.
func reportRecords(links ...string) []events.DynamoDBEventRecord {
	var recs []events.DynamoDBEventRecord
	for i, link := range links {
		id := fmt.Sprintf("rep-%03d", i)
		s := events.NewStringAttribute
		recs = append(recs, events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
			SequenceNumber: strconv.Itoa(1000 + i),
			NewImage: map[string]events.DynamoDBAttributeValue{
				"pk": s("LINK#" + link), "sk": s("REPORT#" + id), "type": s("report"), "linkId": s(link),
				"productReportId": s(id), "productName": s("checking_account"), "objectKey": s("reports/" + link + "/" + id + ".json"),
				"code": events.NewNumberAttribute("200"), "bytes": events.NewNumberAttribute("10"), "receivedAt": s("2026-11-24T12:00:00.000Z"),
			},
		}})
	}
	return recs
}

func failures(resp events.DynamoDBEventResponse) []string {
	var out []string
	for _, f := range resp.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return out
}

func seqs(recs []events.DynamoDBEventRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Change.SequenceNumber)
	}
	return out
}

func TestHandleFixture(t *testing.T) {
	bus := &fakeBus{}
	links := &fakeLinks{info: map[string]json.RawMessage{fixtureLink: json.RawMessage(`{"read":"from the table"}`)}}
	p, m := newPublisher(t, bus, links)
	resp, err := p.Handle(t.Context(), loadFixture(t))
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("Handle = %v, %v; want no failure", resp, err)
	}
	var types []string
	for _, call := range bus.calls {
		if len(call) != 1 {
			t.Errorf("a call carries %d entries of one link; want one per call so the link's order holds", len(call))
		}
		for _, e := range call {
			types = append(types, aws.ToString(e.DetailType))
			if aws.ToString(e.Source) != Source || aws.ToString(e.EventBusName) != "bus" {
				t.Errorf("entry source %q bus %q", aws.ToString(e.Source), aws.ToString(e.EventBusName))
			}
			checkNoPersonalData(t, aws.ToString(e.Detail), fixtureTaxID, "user-7f3a")
		}
	}
	want := []string{TypeConsentStatusChanged, TypeConsentStatusChanged, TypeReportRequested, TypeReportStored, TypeConsentStatusChanged, TypeLinkDataPurged}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	if got := links.reads[fixtureLink]; got != 0 {
		t.Errorf("externalInfo read %d times from the table; the batch's link item images hold it", got)
	}
	if got := m.Sum("IntegrationEventsPublished", nil); got != 6 {
		t.Errorf("IntegrationEventsPublished = %v, want 6", got)
	}
	for _, d := range bus.accepted() {
		if d["detail-type"] != nil {
			t.Errorf("detail carries the envelope: %v", d)
		}
		if _, ok := d["externalInfo"]; ok && fmt.Sprint(d["externalInfo"]) != "map[applicationId:app-2291 customerId:cus_8841]" {
			t.Errorf("externalInfo = %v", d["externalInfo"])
		}
	}
}

func TestHandleBatchesByCountSizeAndLink(t *testing.T) {
	t.Run("ten entries a call", func(t *testing.T) {
		var links []string
		for i := range 25 {
			links = append(links, fmt.Sprintf("link-%02d", i))
		}
		bus := &fakeBus{}
		p, _ := newPublisher(t, bus, &fakeLinks{})
		if resp, _ := p.Handle(t.Context(), events.DynamoDBEvent{Records: reportRecords(links...)}); len(resp.BatchItemFailures) > 0 {
			t.Fatalf("failures %v", failures(resp))
		}
		var sizes []int
		for _, c := range bus.calls {
			sizes = append(sizes, len(c))
		}
		if diff := cmp.Diff([]int{10, 10, 5}, sizes); diff != "" {
			t.Errorf("entries per call (-want +got):\n%s", diff)
		}
	})
	t.Run("one entry of a link a call, in stream order", func(t *testing.T) {
		bus := &fakeBus{}
		p, _ := newPublisher(t, bus, &fakeLinks{})
		recs := reportRecords("a", "b", "a", "c", "a", "b")
		if resp, _ := p.Handle(t.Context(), events.DynamoDBEvent{Records: recs}); len(resp.BatchItemFailures) > 0 {
			t.Fatalf("failures %v", failures(resp))
		}
		var got [][]string
		for _, c := range bus.calls {
			var ids []string
			for _, e := range c {
				var d ReportStored
				_ = json.Unmarshal([]byte(aws.ToString(e.Detail)), &d)
				ids = append(ids, d.LinkID+"/"+d.ProductReportID)
			}
			got = append(got, ids)
		}
		want := [][]string{{"a/rep-000", "b/rep-001"}, {"a/rep-002", "c/rep-003"}, {"a/rep-004", "b/rep-005"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
	t.Run("256 KB a call", func(t *testing.T) {
		var links []string
		info := map[string]json.RawMessage{}
		big := json.RawMessage(`{"note":"` + strings.Repeat("x", 70*1024) + `"}`)
		for i := range 9 {
			l := fmt.Sprintf("link-%d", i)
			links = append(links, l)
			info[l] = big
		}
		bus := &fakeBus{}
		p, _ := newPublisher(t, bus, &fakeLinks{info: info})
		if resp, _ := p.Handle(t.Context(), events.DynamoDBEvent{Records: reportRecords(links...)}); len(resp.BatchItemFailures) > 0 {
			t.Fatalf("failures %v", failures(resp))
		}
		n := 0
		for _, c := range bus.calls {
			size := 0
			for _, e := range c {
				size += entrySize(e)
			}
			if size > MaxCallBytes {
				t.Errorf("a call of %d bytes, over %d", size, MaxCallBytes)
			}
			n += len(c)
		}
		if n != 9 || len(bus.calls) != 3 {
			t.Errorf("%d entries in %d calls, want 9 in 3 (three 70 KB entries fit in 256 KB, four do not)", n, len(bus.calls))
		}
	})
}

func TestHandleFailures(t *testing.T) {
	throttled := errors.New("ThrottlingException: Rate exceeded")
	tests := []struct {
		name      string
		links     []string
		bus       *fakeBus
		infoErr   map[string]error
		wantFail  int // index of the first record reported failed; -1 none
		published int
	}{
		{
			name:  "call fails: its records and every later one come back",
			links: []string{"a", "b", "a", "c", "d"},
			bus: &fakeBus{fail: func(call int) error {
				if call == 1 {
					return throttled
				}
				return nil
			}},
			wantFail: 2, published: 2,
		},
		{
			name:  "an entry fails (FailedEntryCount): from its record on",
			links: []string{"a", "b", "c", "d", "e"},
			bus:   &fakeBus{reject: func(call, entry int) bool { return call == 0 && entry == 2 }},
			// d and e were accepted after c failed: they come back too.
			wantFail: 2, published: 2,
		},
		{
			name:     "externalInfo unreadable: what came before goes, the rest comes back",
			links:    []string{"a", "b", "c", "d"},
			bus:      &fakeBus{},
			infoErr:  map[string]error{"c": errors.New("ProvisionedThroughputExceededException")},
			wantFail: 2, published: 2,
		},
		{
			name:     "the first call fails",
			links:    []string{"a", "b"},
			bus:      &fakeBus{fail: func(int) error { return throttled }},
			wantFail: 0, published: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := reportRecords(tc.links...)
			p, m := newPublisher(t, tc.bus, &fakeLinks{err: tc.infoErr, info: map[string]json.RawMessage{}})
			resp, err := p.Handle(t.Context(), events.DynamoDBEvent{Records: recs})
			if err != nil {
				t.Fatalf("Handle error %v; failures go in BatchItemFailures", err)
			}
			var want []string
			if tc.wantFail >= 0 {
				want = seqs(recs[tc.wantFail:])
			}
			if diff := cmp.Diff(want, failures(resp)); diff != "" {
				t.Errorf("BatchItemFailures (-want +got):\n%s", diff)
			}
			if got := m.Sum("IntegrationEventsPublished", nil); got != float64(tc.published) {
				t.Errorf("IntegrationEventsPublished = %v, want %d", got, tc.published)
			}
			if got := m.Sum("StreamRecordsFailed", nil); got != float64(len(want)) {
				t.Errorf("StreamRecordsFailed = %v, want %d", got, len(want))
			}
			if tc.infoErr == nil && m.Sum("IntegrationEventsFailed", nil) == 0 {
				t.Errorf("no IntegrationEventsFailed metric for a failed publication")
			}
		})
	}
}

func TestHandleDefersNearTheDeadline(t *testing.T) {
	bus := &fakeBus{}
	p, _ := newPublisher(t, bus, &fakeLinks{})
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(time.Second)) // under DefaultReserve
	defer cancel()
	recs := reportRecords("a", "b")
	resp, _ := p.Handle(ctx, events.DynamoDBEvent{Records: recs})
	if diff := cmp.Diff(seqs(recs), failures(resp)); diff != "" {
		t.Errorf("BatchItemFailures (-want +got):\n%s", diff)
	}
	if len(bus.calls) != 0 {
		t.Errorf("%d calls made with no time left", len(bus.calls))
	}
}

func TestHandleSkipsRecordsThatAreNoEvent(t *testing.T) {
	bus := &fakeBus{}
	p, _ := newPublisher(t, bus, &fakeLinks{})
	marker := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{SequenceNumber: "1",
		NewImage: map[string]events.DynamoDBAttributeValue{"type": events.NewStringAttribute("event"), "pk": events.NewStringAttribute("EVENT#x")}}}
	removed := events.DynamoDBEventRecord{EventName: "REMOVE", Change: events.DynamoDBStreamRecord{SequenceNumber: "2",
		OldImage: reportRecords("a")[0].Change.NewImage}}
	resp, _ := p.Handle(t.Context(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{marker, removed}})
	if len(resp.BatchItemFailures) != 0 || len(bus.calls) != 0 {
		t.Errorf("failures %v, calls %d; want none", failures(resp), len(bus.calls))
	}
}

func TestNewNeedsBusAndBucket(t *testing.T) {
	if _, err := New(&fakeBus{}, &fakeLinks{}, Config{ReportsBucket: "b"}); err == nil {
		t.Error("New without a bus name: no error")
	}
	if _, err := New(&fakeBus{}, &fakeLinks{}, Config{EventBusName: "bus"}); err == nil {
		t.Error("New without a bucket: no error")
	}
}

func TestHandleReadsExternalInfoOncePerLink(t *testing.T) {
	bus := &fakeBus{}
	links := &fakeLinks{info: map[string]json.RawMessage{"a": json.RawMessage(`{"n":"a"}`)}}
	p, _ := newPublisher(t, bus, links)
	// No link item in the batch: the table is read, once for each link.
	resp, _ := p.Handle(t.Context(), events.DynamoDBEvent{Records: reportRecords("a", "a", "b", "a")})
	if len(resp.BatchItemFailures) > 0 {
		t.Fatalf("failures %v", failures(resp))
	}
	if diff := cmp.Diff(map[string]int{"a": 1, "b": 1}, links.reads); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
	var infos []string
	for _, d := range bus.accepted() {
		infos = append(infos, fmt.Sprint(d["externalInfo"]))
	}
	// b has none (ErrNotFound reads as none): null.
	if diff := cmp.Diff([]string{"map[n:a]", "map[n:a]", "<nil>", "map[n:a]"}, infos); diff != "" {
		t.Errorf("externalInfo (-want +got):\n%s", diff)
	}
}
