package devserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"

	"github.com/openfinance-br/klavi-link-lambda/pkg/integrationevents"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func entry(linkID, detailType string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{
		EventBusName: aws.String("b"), Source: aws.String(integrationevents.Source), DetailType: aws.String(detailType),
		Detail: aws.String(fmt.Sprintf(`{"eventId":"e","linkId":%q}`, linkID)),
		Time:   aws.Time(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)),
	}
}

func detailTypes(kept []KeptEvent) []string {
	var out []string
	for _, e := range kept {
		out = append(out, e.LinkID+" "+e.DetailType)
	}
	return out
}

func TestEventKeeperKeepsTheLastOnes(t *testing.T) {
	k := newEventKeeper(nil, 3)
	for i := range 5 {
		out, err := k.PutEvents(t.Context(), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry(fmt.Sprint("L", i%2), fmt.Sprint("T", i))}})
		if err != nil || len(out.Entries) != 1 || out.Entries[0].EventId == nil || out.FailedEntryCount != 0 {
			t.Fatalf("PutEvents = %+v, %v; want one accepted entry with an id", out, err)
		}
	}
	if diff := cmp.Diff([]string{"L0 T2", "L1 T3", "L0 T4"}, detailTypes(k.Events(""))); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"L0 T2", "L0 T4"}, detailTypes(k.Events("L0"))); diff != "" {
		t.Errorf("kept for L0 (-want +got):\n%s", diff)
	}
	got := k.Events("L1")[0]
	if got.Bus != "b" || got.Source != integrationevents.Source || !got.Time.Equal(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)) ||
		string(got.Detail) != `{"eventId":"e","linkId":"L1"}` {
		t.Errorf("kept event = %+v", got)
	}
}

// fakeBus answers as EventBridge would, failing what it is told to.
type fakeBus struct {
	err    error
	reject map[int]bool // entry index -> rejected
	calls  int
}

func (b *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	b.calls++
	if b.err != nil {
		return nil, b.err
	}
	out := &eventbridge.PutEventsOutput{}
	for i := range in.Entries {
		if b.reject[i] {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, types.PutEventsResultEntry{ErrorCode: aws.String("ThrottlingException")})
			continue
		}
		out.Entries = append(out.Entries, types.PutEventsResultEntry{EventId: aws.String(fmt.Sprint("id-", i))})
	}
	return out, nil
}

func TestEventKeeperInFrontOfABus(t *testing.T) {
	bus := &fakeBus{reject: map[int]bool{1: true}}
	k := newEventKeeper(bus, 10)
	in := &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("L", "A"), entry("L", "B"), entry("L", "C")}}
	out, err := k.PutEvents(t.Context(), in)
	if err != nil || out.FailedEntryCount != 1 || bus.calls != 1 {
		t.Fatalf("PutEvents = %+v, %v after %d calls; want the bus's answer with one failed entry", out, err, bus.calls)
	}
	if diff := cmp.Diff([]string{"L A", "L C"}, detailTypes(k.Events(""))); diff != "" {
		t.Errorf("kept (-want +got): only what the bus accepted\n%s", diff)
	}
	if k.Events("")[0].ID != "id-0" {
		t.Errorf("kept id = %q, want the bus's", k.Events("")[0].ID)
	}

	bus.err = errors.New("throttled")
	if _, err := k.PutEvents(t.Context(), in); err == nil {
		t.Error("PutEvents hid the bus's error")
	}
	if n := len(k.Events("")); n != 2 {
		t.Errorf("kept %d events after a failed call, want still 2", n)
	}
}

func TestPublishable(t *testing.T) {
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	link := linkstore.Link{LinkID: "L", CreatedAt: at, UpdatedAt: at}
	tests := []struct {
		name string
		rec  events.DynamoDBEventRecord
		want bool
	}{
		{"new consent", linkstoretest.StreamRecord("L", nil, consent("c", klavi.ConsentAwaitingAuthorisation), "1"), true},
		{"consent change", linkstoretest.StreamRecord("L", consent("c", klavi.ConsentAwaitingAuthorisation), consent("c", klavi.ConsentAuthorised), "1"), true},
		{"consent removed by a purge", linkstoretest.StreamRecord("L", consent("c", klavi.ConsentAuthorised), nil, "1"), false},
		{"request", linkstoretest.RequestStreamRecord("L", linkstore.ReportRequest{RequestID: "R"}, "1"), true},
		{"report", linkstoretest.ReportStreamRecord("L", linkstore.Report{ProductReportID: "P"}, "1"), true},
		{"link", linkstoretest.LinkStreamRecord(nil, link, "1"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := publishable(tc.rec); got != tc.want {
				t.Errorf("publishable = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTableStreamFansOut: every mapping gets the records its filter keeps,
// in the order of the writes, with the same sequence numbers.
func TestTableStreamFansOut(t *testing.T) {
	reqs, pubs := newFakeStream(), newFakeStream()
	stream := &tableStream{}
	for _, f := range []*changeFeed{
		newChangeFeed(reportRequestMapping, reqs.handle, slog.New(slog.DiscardHandler)),
		newChangeFeed(integrationMapping, pubs.handle, slog.New(slog.DiscardHandler)),
	} {
		stream.feeds = append(stream.feeds, f)
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
	}
	stream.Consent("L", nil, consent("a", klavi.ConsentAwaitingAuthorisation))
	stream.Consent("L", consent("a", klavi.ConsentAwaitingAuthorisation), consent("a", klavi.ConsentAuthorised))
	stream.Consent("L", consent("a", klavi.ConsentAuthorised), nil)
	reqs.wait(t, 1)
	deadline := time.Now().Add(5 * time.Second)
	for len(flatten(pubs.got())) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff([]string{"a"}, flatten(reqs.got())); diff != "" {
		t.Errorf("report-request records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "a"}, flatten(pubs.got())); diff != "" {
		t.Errorf("integration-events records (-want +got):\n%s", diff)
	}
}

func flatten(batches [][]string) []string { return slices.Concat(batches...) }

// TestEndToEndEvents runs a link from creation to its purge and reads its
// integration events back from GET /dev/events: the contract's events in
// order, one eventId per change, no personal data.
func TestEndToEndEvents(t *testing.T) {
	e := startServer(t, nil)
	other := e.createLink(t, "personalTaxId", testCPF)
	link := e.createLink(t, "personalTaxId", testCPF)
	e.consent(t, link.LinkURL, "authorise")
	e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	e.srv.sim.Wait()
	v := e.view(t, link.LinkID)
	if _, err := e.srv.sim.SetConsentStatus(v.Consents[0].ConsentID, klavi.ConsentDeletedByUser); err != nil {
		t.Fatalf("delete the consent at the simulator: %v", err)
	}
	e.waitFor(t, link.LinkID, "DELETED_BY_USER", hasStatus("DELETED_BY_USER"))

	var got []KeptEvent
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, body := e.do(t, http.MethodGet, "/dev/events?linkId="+link.LinkID, "", nil)
		if status != http.StatusOK {
			t.Fatalf("GET /dev/events = %d %s", status, body)
		}
		got = nil
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decode /dev/events: %v", err)
		}
		if n := len(got); n > 0 && got[n-1].DetailType == integrationevents.TypeLinkDataPurged || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	var seen []string // detail-type, and a consent's status
	ids := map[string]bool{}
	for _, ev := range got {
		var d struct {
			EventID      string          `json:"eventId"`
			LinkID       string          `json:"linkId"`
			Status       string          `json:"status"`
			Reason       string          `json:"reason"`
			ExternalInfo json.RawMessage `json:"externalInfo"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatalf("decode detail %s: %v", ev.Detail, err)
		}
		seen = append(seen, strings.TrimSpace(ev.DetailType+" "+d.Status))
		if d.LinkID != link.LinkID || ev.LinkID != link.LinkID || ev.Source != integrationevents.Source || ev.Bus != localBusName {
			t.Errorf("event %+v: want link %s, source %s, bus %s", ev, link.LinkID, integrationevents.Source, localBusName)
		}
		if d.EventID == "" || ids[d.EventID] {
			t.Errorf("%s: eventId %q missing or given before", ev.DetailType, d.EventID)
		}
		ids[d.EventID] = true
		if ev.DetailType == integrationevents.TypeConsentStatusChanged && string(d.ExternalInfo) != `{"source":"test"}` {
			t.Errorf("%s %s: externalInfo %s, want the link's", ev.DetailType, d.Status, d.ExternalInfo)
		}
		if ev.DetailType == integrationevents.TypeLinkDataPurged && d.Reason != linkstore.PurgeConsentDeletedByUser {
			t.Errorf("Link Data Purged reason %q, want %s", d.Reason, linkstore.PurgeConsentDeletedByUser)
		}
		for _, personal := range []string{testCPF, testCPFBare, "ana@example.com"} {
			if strings.Contains(string(ev.Detail), personal) {
				t.Errorf("%s carries personal data: %s", ev.DetailType, ev.Detail)
			}
		}
	}
	// The consent's way to AUTHORISED, then the request and its reports
	// (Klavi may send a report before the request's answer is recorded, so
	// in either order), the user's deletion and the purge.
	authorised := slices.Index(seen, integrationevents.TypeConsentStatusChanged+" AUTHORISED")
	if authorised < 0 || len(seen) < authorised+3 {
		t.Fatalf("events = %q, want consent changes up to AUTHORISED, then the reports and the purge", seen)
	}
	for _, s := range seen[:authorised] {
		if !strings.HasPrefix(s, integrationevents.TypeConsentStatusChanged) {
			t.Errorf("before AUTHORISED: %q, want consent changes only", s)
		}
	}
	end := len(seen) - 2
	want := append([]string{integrationevents.TypeReportRequested}, slices.Repeat([]string{integrationevents.TypeReportStored}, len(v.Reports))...)
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(seen[authorised+1:end]))); diff != "" {
		t.Errorf("events after AUTHORISED, sorted (-want +got):\n%s", diff)
	}
	tail := []string{integrationevents.TypeConsentStatusChanged + " DELETED_BY_USER", integrationevents.TypeLinkDataPurged}
	if diff := cmp.Diff(tail, seen[end:]); diff != "" {
		t.Errorf("last events (-want +got):\n%s", diff)
	}
	if n := len(e.srv.events.Events(other.LinkID)); n != 0 {
		t.Errorf("%d events for the link that was never authorised, want none (it only exists)", n)
	}
}

// TestEndToEndEventBridge: with EVENT_BUS_NAME the events go to that bus
// (the emulator's, with a rule to an SQS queue as a consumer would set
// up) and are listed as well.
func TestEndToEndEventBridge(t *testing.T) {
	awstest.SkipShort(t, "the AWS emulator")
	cfg := awstest.Config(t)
	ctx := t.Context()
	eb := eventbridge.NewFromConfig(cfg)
	bus := awstest.Name(t, "klavi-link")
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("create bus: %v", err)
	}
	q := sqs.NewFromConfig(cfg)
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.Name(t, "stored"))})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("queue arn: %v", err)
	}
	rule := awstest.Name(t, "report-stored")
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus),
		EventPattern: aws.String(`{"source":["klavi-link"],"detail-type":["Report Stored"]}`)}); err != nil {
		t.Fatalf("put rule: %v", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []types.Target{{Id: aws.String("queue"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatalf("put targets: %v", err)
	}

	e := startServer(t, func(c *Config) {
		c.AWS = &cfg
		c.EventBusName = bus
	})
	if info := e.srv.Info(); info.EventBus != "eventbridge:"+bus || !info.ChangeFeed {
		t.Errorf("Info = %+v, want the change feed publishing to %s", info, bus)
	}
	link := e.createLink(t, "personalTaxId", testCPF)
	e.consent(t, link.LinkURL, "authorise")
	e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	e.srv.sim.Wait()
	v := e.view(t, link.LinkID)

	want := map[string]bool{}
	for _, r := range v.Reports {
		want[r.ProductReportID] = true
	}
	got := map[string]bool{}
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			var ev struct {
				DetailType string `json:"detail-type"`
				Detail     struct {
					LinkID          string `json:"linkId"`
					ProductReportID string `json:"productReportId"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("decode message %s: %v", aws.ToString(m.Body), err)
			}
			if ev.DetailType != integrationevents.TypeReportStored || ev.Detail.LinkID != link.LinkID || got[ev.Detail.ProductReportID] {
				t.Errorf("queue got %s for %s (report %s), want each Report Stored of the link once", ev.DetailType, ev.Detail.LinkID, ev.Detail.ProductReportID)
			}
			got[ev.Detail.ProductReportID] = true
		}
	}
	if diff := cmp.Diff(want, got); diff != "" || len(want) == 0 {
		t.Errorf("Report Stored events through the bus's rule (-want +got):\n%s", diff)
	}
	listed := e.srv.events.Events(link.LinkID)
	if len(listed) == 0 {
		t.Fatal("no events listed")
	}
	for _, ev := range listed {
		if ev.Bus != bus || ev.ID == "" {
			t.Errorf("listed event %+v: want bus %s and the bus's id", ev, bus)
		}
	}
}

// TestEndToEndRevokeDelete goes through the demo page's buttons by HTTP: a
// report's download, Revoke (the simulator sends consent_revoked), Delete,
// and the events each publishes.
func TestEndToEndRevokeDelete(t *testing.T) {
	e := startServer(t, nil)
	link := e.createLink(t, "personalTaxId", testCPF)
	e.consent(t, link.LinkURL, "authorise")
	e.waitFor(t, link.LinkID, "REPORTS_RECEIVED", hasStatus("REPORTS_RECEIVED"))
	e.srv.sim.Wait()
	v := e.view(t, link.LinkID)

	status, _, body := e.do(t, http.MethodGet, "/links/"+link.LinkID+"/reports/"+v.Reports[0].ProductReportID, "", nil)
	var meta struct {
		SHA256 string `json:"sha256"`
		Bytes  int    `json:"bytes"`
		URL    string `json:"url"`
	}
	if err := json.Unmarshal(body, &meta); status != http.StatusOK || err != nil || !strings.HasPrefix(meta.URL, e.url+downloadPath) {
		t.Fatalf("GET report = %d %s, want 200 with a download URL of this server", status, body)
	}
	status, _, got := e.do(t, http.MethodGet, strings.TrimPrefix(meta.URL, e.url), "", nil)
	if sum := sha256.Sum256(got); status != http.StatusOK || hex.EncodeToString(sum[:]) != meta.SHA256 || len(got) != meta.Bytes {
		t.Errorf("download = %d with %d bytes, want 200 with the %d bytes of sha256 %s", status, len(got), meta.Bytes, meta.SHA256)
	}

	status, _, body = e.do(t, http.MethodPost, "/links/"+link.LinkID+"/revoke", "application/json", nil)
	if status != http.StatusAccepted || !bytes.Contains(body, []byte(v.Consents[0].ConsentID)) {
		t.Fatalf("POST revoke = %d %s, want 202 naming the consent", status, body)
	}
	e.waitFor(t, link.LinkID, "the consent REVOKED", func(v linkapi.View) bool {
		return len(v.Consents) == 1 && v.Consents[0].Status == "REVOKED"
	})
	status, _, body = e.do(t, http.MethodPost, "/links/"+link.LinkID+"/revoke", "application/json", nil)
	if status != http.StatusAccepted || !bytes.Contains(body, []byte(`"status":"REVOKED"`)) {
		t.Errorf("POST revoke again = %d %s, want 202 with the consent REVOKED", status, body)
	}

	status, _, body = e.do(t, http.MethodDelete, "/links/"+link.LinkID, "", nil)
	if status != http.StatusAccepted || !bytes.Contains(body, []byte(`"DELETED"`)) {
		t.Fatalf("DELETE = %d %s, want 202 DELETED", status, body)
	}
	e.waitFor(t, link.LinkID, "DELETED", hasStatus("DELETED"))
	if status, _, _ := e.do(t, http.MethodGet, strings.TrimPrefix(meta.URL, e.url), "", nil); status != http.StatusNotFound {
		t.Errorf("download after the delete = %d, want 404: the report is gone", status)
	}

	var purged *KeptEvent
	deadline := time.Now().Add(10 * time.Second)
	for purged == nil && time.Now().Before(deadline) {
		for _, ev := range e.srv.events.Events(link.LinkID) {
			if ev.DetailType == integrationevents.TypeLinkDataPurged {
				purged = &ev
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if purged == nil || !bytes.Contains(purged.Detail, []byte(`"reason":"`+linkstore.PurgeDeletedByRequest+`"`)) {
		t.Fatalf("Link Data Purged = %+v, want one with reason %s", purged, linkstore.PurgeDeletedByRequest)
	}
	var seen []string
	for _, ev := range e.srv.events.Events(link.LinkID) {
		var d struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(ev.Detail, &d)
		seen = append(seen, strings.TrimSpace(ev.DetailType+" "+d.Status))
	}
	tail := []string{integrationevents.TypeConsentStatusChanged + " REVOKED", integrationevents.TypeLinkDataPurged}
	if len(seen) < 2 || !slices.Equal(seen[len(seen)-2:], tail) {
		t.Errorf("events end with %q, want %q", seen, tail)
	}
}
