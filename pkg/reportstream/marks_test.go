package reportstream

import (
	"context"
	"errors"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

// brokenDeleter is an S3 that cannot delete.
type brokenDeleter struct{}

func (brokenDeleter) DeletePrefix(context.Context, string) (int, error) {
	return 0, errors.New("s3: InternalError")
}

func TestIntegrationFailedPurgeLeavesMark(t *testing.T) {
	w := newWorld(t)
	linkID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	at := time.Now().UTC().Add(-time.Minute)
	rec := w.consentEvent(t, linkID, "consent-1", klavi.ConsentDeletedByUser, at)
	svc := reports.New(w.kc, w.store, brokenDeleter{}, reports.Config{})
	h := New(svc, Config{Marks: w.store, AutoRequest: true, Logger: slog.New(slog.NewJSONHandler(w.logs, nil)), Metrics: metricstest.NewCapture("report-request").Recorder})
	resp, err := h.Handle(t.Context(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("Handle = %+v, %v; want the record failed", resp, err)
	}
	l, err := w.store.GetLink(t.Context(), linkID)
	if err != nil {
		t.Fatal(err)
	}
	if l.Pending.Work != linkstore.WorkPurge || l.Pending.ConsentID != "consent-1" {
		t.Errorf("mark = %+v, want the purge of consent-1", l.Pending)
	}
	due, err := w.store.ListAttention(t.Context(), linkstore.PendingWorkDue, time.Now().Add(time.Hour), 0)
	if err != nil || len(due) != 1 || due[0].LinkID != linkID {
		t.Errorf("pending-work list = %+v, %v; want the link", due, err)
	}
	checkNoTaxID(t, "logs", w.logs.String())
}

func TestIntegrationPendingPurgeOnLinkItemPurges(t *testing.T) {
	w := newWorld(t)
	linkID := w.simLink(t, linkstore.TaxIDPersonal, testCPF)
	out, err := w.store.ApplyEvent(t.Context(), linkstore.EventChange{EventID: "del-1", EventName: "consent_deleted_by_user",
		LinkID: linkID, ConsentStatus: klavi.ConsentDeletedByUser})
	if err != nil || out != linkstore.Applied {
		t.Fatalf("ApplyEvent = %v, %v", out, err)
	}
	img := func(work string) map[string]events.DynamoDBAttributeValue {
		m := map[string]events.DynamoDBAttributeValue{
			"pk":     events.NewStringAttribute("LINK#" + linkID),
			"sk":     events.NewStringAttribute("#LINK"),
			"type":   events.NewStringAttribute("link"),
			"linkId": events.NewStringAttribute(linkID),
		}
		if work != "" {
			m["work"] = events.NewStringAttribute(work)
		}
		return m
	}
	rec := events.DynamoDBEventRecord{EventName: "MODIFY", Change: events.DynamoDBStreamRecord{
		SequenceNumber: "1", OldImage: img(""), NewImage: img("purge")}}
	resp, err := w.h.Handle(t.Context(), events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failure", resp, err)
	}
	l, err := w.store.GetLink(t.Context(), linkID)
	if err != nil {
		t.Fatal(err)
	}
	if l.PurgedAt.IsZero() || l.Pending != (linkstore.PendingWork{}) {
		t.Errorf("link = %+v, want purged with no pending work", l)
	}
}
