package linkstore_test

import (
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// testLinkDeletionWithoutConsent: consent_deleted_by_user naming the link
// but no consent is the deletion of the whole link: its purge becomes
// pending work on the reconciliation list.
func testLinkDeletionWithoutConsent(t *testing.T, s Store) {
	ctx := t.Context()
	if err := s.CreateLink(ctx, linkstore.Link{LinkID: "L1", CreatedAt: t0}); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	out, err := s.ApplyEvent(ctx, linkstore.EventChange{EventID: "e1", EventName: "consent_deleted_by_user",
		LinkID: "L1", ConsentStatus: klavi.ConsentDeletedByUser, ReceivedAt: t0})
	if err != nil || out != linkstore.Applied {
		t.Fatalf("ApplyEvent = %v, %v; want applied", out, err)
	}
	l, err := s.GetLink(ctx, "L1")
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if want := (linkstore.PendingWork{Work: linkstore.WorkPurge, At: ms(t0)}); l.Pending != want {
		t.Errorf("Pending = %+v, want %+v", l.Pending, want)
	}
	due, err := s.ListAttention(ctx, linkstore.PendingWorkDue, t0.Add(time.Second), 0)
	if err != nil || len(due) != 1 || due[0].LinkID != "L1" {
		t.Errorf("pending-work attention = %+v, %v; want L1", due, err)
	}
	// A later report-request mark does not replace the purge.
	if err := s.MarkPending(ctx, "L1", linkstore.PendingWork{Work: linkstore.WorkReportRequest, ConsentID: "C1", At: t0.Add(time.Minute)}); err != nil {
		t.Fatalf("MarkPending: %v", err)
	}
	if l, _ := s.GetLink(ctx, "L1"); l.Pending.Work != linkstore.WorkPurge {
		t.Errorf("Pending after a request mark = %+v, want the purge kept", l.Pending)
	}
	if _, err := s.Purge(ctx, "L1", t0.Add(time.Minute)); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if l, _ := s.GetLink(ctx, "L1"); l.Pending != (linkstore.PendingWork{}) {
		t.Errorf("Pending after purge = %+v, want none", l.Pending)
	}
}

// testUnplacedDeletionKept: a deletion naming no link is recorded and,
// unlike other events, still a duplicate long after the dedupe window.
func testUnplacedDeletionKept(t *testing.T, s Store) {
	ctx := t.Context()
	e := linkstore.EventChange{EventID: "e-unplaced", EventName: "consent_deleted_by_user", ConsentID: "C9",
		ConsentStatus: klavi.ConsentDeletedByUser, ReceivedAt: t0}
	if !e.IsUnplacedDeletion() {
		t.Fatalf("IsUnplacedDeletion = false for a deletion without link")
	}
	if out, err := s.ApplyEvent(ctx, e); err != nil || out != linkstore.Recorded {
		t.Fatalf("ApplyEvent = %v, %v; want recorded", out, err)
	}
	e.ReceivedAt = t0.Add(linkstore.DefaultEventTTL + 24*time.Hour)
	if out, err := s.ApplyEvent(ctx, e); err != nil || out != linkstore.Duplicate {
		t.Errorf("redelivery after the dedupe window = %v, %v; want duplicate (kept for good)", out, err)
	}
}

// testMarkPending: the durable mark of failed work, cleared with the
// link's attention.
func testMarkPending(t *testing.T, s Store) {
	ctx := t.Context()
	err := s.MarkPending(ctx, "nope", linkstore.PendingWork{Work: linkstore.WorkPurge, At: t0})
	checkErr(t, "MarkPending unknown", err, linkstore.ErrNotFound)
	if err := s.CreateLink(ctx, linkstore.Link{LinkID: "L2", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	w := linkstore.PendingWork{Work: linkstore.WorkReportRequest, ConsentID: "C1", At: t0}
	if err := s.MarkPending(ctx, "L2", w); err != nil {
		t.Fatalf("MarkPending: %v", err)
	}
	l, _ := s.GetLink(ctx, "L2")
	if want := (linkstore.PendingWork{Work: linkstore.WorkReportRequest, ConsentID: "C1", At: ms(t0)}); l.Pending != want {
		t.Errorf("Pending = %+v, want %+v", l.Pending, want)
	}
	due, err := s.ListAttention(ctx, linkstore.PendingWorkDue, t0.Add(time.Second), 0)
	if err != nil || len(due) != 1 || due[0].LinkID != "L2" {
		t.Fatalf("pending-work attention = %+v, %v; want L2", due, err)
	}
	if err := s.ClearAttention(ctx, "L2", due[0].Due); err != nil {
		t.Fatalf("ClearAttention: %v", err)
	}
	if l, _ := s.GetLink(ctx, "L2"); l.Pending != (linkstore.PendingWork{}) {
		t.Errorf("Pending after ClearAttention = %+v, want none", l.Pending)
	}
	// A purged link takes a purge mark (an unfinished purge) but no other.
	if _, err := s.Purge(ctx, "L2", t0); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := s.MarkPending(ctx, "L2", w); err != nil {
		t.Fatalf("MarkPending on a purged link: %v", err)
	}
	if l, _ := s.GetLink(ctx, "L2"); l.Pending != (linkstore.PendingWork{}) {
		t.Errorf("request mark on a purged link = %+v, want none", l.Pending)
	}
	if err := s.MarkPending(ctx, "L2", linkstore.PendingWork{Work: linkstore.WorkPurge, At: t0}); err != nil {
		t.Fatalf("purge mark on a purged link: %v", err)
	}
	if l, _ := s.GetLink(ctx, "L2"); l.Pending.Work != linkstore.WorkPurge {
		t.Errorf("purge mark on a purged link = %+v, want it kept", l.Pending)
	}
}
