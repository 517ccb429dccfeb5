package linkstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// change is one call of a WithConsentChanges function, as a test sees it.
type change struct {
	LinkID   string
	Old, New *linkstore.Consent
}

// changeLog collects consent changes; safe for concurrent use.
type changeLog struct {
	mu  sync.Mutex
	got []change
}

func (l *changeLog) record(linkID string, old, new *linkstore.Consent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, change{LinkID: linkID, Old: old, New: new})
}

func (l *changeLog) changes() []change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]change(nil), l.got...)
}

func TestMemoryConsentChanges(t *testing.T) {
	ctx := t.Context()
	var log changeLog
	s := linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(log.record))...)

	mustCreate(t, s, fullLink("L"))
	apply(t, s, consentEvent("e1", "L", "C", klavi.ConsentAwaitingAuthorisation, t0), linkstore.Applied)
	apply(t, s, consentEvent("e1", "L", "C", klavi.ConsentAwaitingAuthorisation, t0), linkstore.Duplicate)
	apply(t, s, consentEvent("e2", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)), linkstore.Applied)
	apply(t, s, consentEvent("e3", "L", "C", klavi.ConsentStarted, t0), linkstore.Stale)
	apply(t, s, linkstore.EventChange{EventID: "e4", EventName: "link_created", LinkID: "L"}, linkstore.Recorded)
	checkErr(t, "claim", s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0), nil)
	checkErr(t, "claim again", s.ClaimAutoRequest(ctx, "L", "C", time.Minute, t0), linkstore.ErrLeaseHeld)
	checkErr(t, "record request", s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{RequestID: "R", ConsentID: "C", Trigger: linkstore.TriggerStream}), nil)
	checkErr(t, "manual request", s.RecordReportRequest(ctx, "L", linkstore.ReportRequest{RequestID: "M", ConsentID: "C", Trigger: linkstore.TriggerManual}), nil)
	checkErr(t, "record report", s.RecordReport(ctx, "L", linkstore.Report{ProductReportID: "P"}), nil)
	apply(t, s, consentEvent("e5", "L", "D", klavi.ConsentRejected, t0), linkstore.Applied)
	if _, err := s.Purge(ctx, "L", t0.Add(time.Hour)); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := s.Purge(ctx, "L", t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("purge again: %v", err)
	}

	awaiting := linkstore.Consent{ConsentID: "C", InstitutionCode: "260", Status: klavi.ConsentAwaitingAuthorisation,
		EventTime: ms(t0), UpdatedAt: ms(t0.Add(time.Second))}
	authorised := awaiting
	authorised.Status, authorised.EventTime, authorised.UpdatedAt = klavi.ConsentAuthorised, ms(t0.Add(time.Minute)), ms(t0.Add(time.Minute+time.Second))
	claimed := authorised
	claimed.LeaseUntil = ms(t0.Add(time.Minute))
	requested := authorised
	requested.RequestID = "R"
	rejected := linkstore.Consent{ConsentID: "D", InstitutionCode: "260", Status: klavi.ConsentRejected,
		EventTime: ms(t0), UpdatedAt: ms(t0.Add(time.Second))}
	want := []change{
		{"L", nil, &awaiting},
		{"L", &awaiting, &authorised},
		{"L", &authorised, &claimed},
		{"L", &claimed, &requested},
		{"L", nil, &rejected},
		{"L", &requested, nil},
		{"L", &rejected, nil},
	}
	if diff := cmp.Diff(want, log.changes()); diff != "" {
		t.Errorf("consent changes mismatch (-want +got):\n%s", diff)
	}
}

// TestMemoryConsentChangesReentrant: the function may write to the store,
// as a stream consumer claiming the consent does, and sees that write's
// change after the one it is handling.
func TestMemoryConsentChangesReentrant(t *testing.T) {
	ctx := t.Context()
	var log changeLog
	var s *linkstoretest.MemoryStore
	s = linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(func(linkID string, old, new *linkstore.Consent) {
		log.record(linkID, old, new)
		if new != nil && new.Status == klavi.ConsentAuthorised && (old == nil || old.Status != klavi.ConsentAuthorised) {
			if err := s.ClaimAutoRequest(ctx, linkID, new.ConsentID, time.Minute, t0); err != nil {
				t.Errorf("claim from the change function: %v", err)
			}
		}
	}))...)
	authorisedConsent(t, s)

	got := log.changes()
	if len(got) != 2 {
		t.Fatalf("got %d changes, want 2 (authorisation, then claim): %+v", len(got), got)
	}
	if got[0].Old != nil || got[0].New.Status != klavi.ConsentAuthorised {
		t.Errorf("first change = %+v, want the authorisation", got[0])
	}
	if got[1].New == nil || got[1].New.LeaseUntil.IsZero() {
		t.Errorf("second change = %+v, want the claim", got[1])
	}
}

// TestMemoryConsentChangesInOrder writes one consent from many goroutines
// and checks that the changes form one chain: each change starts from the
// state the previous one ended in.
func TestMemoryConsentChangesInOrder(t *testing.T) {
	var log changeLog
	s := linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(log.record))...)
	mustCreate(t, s, fullLink("L"))

	const writers = 16
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			e := consentEvent(fmt.Sprintf("e%d", i), "L", "C", klavi.ConsentAwaitingAuthorisation, t0.Add(time.Duration(i)*time.Second))
			if _, err := s.ApplyEvent(t.Context(), e); err != nil {
				t.Errorf("apply event %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	got := log.changes()
	if len(got) == 0 {
		t.Fatal("no consent changes")
	}
	if got[0].Old != nil {
		t.Errorf("first change old = %+v, want nil", got[0].Old)
	}
	for i := 1; i < len(got); i++ {
		if diff := cmp.Diff(got[i-1].New, got[i].Old); diff != "" {
			t.Errorf("change %d does not start where change %d ended (-previous new +old):\n%s", i, i-1, diff)
		}
	}
	final := mustGet(t, s, "L").Consents[0]
	if diff := cmp.Diff(&final, got[len(got)-1].New); diff != "" {
		t.Errorf("last change is not the stored consent (-stored +change):\n%s", diff)
	}
}

// TestMemoryConsentChangesWhileFeeding: a write made while the function is
// still handling an earlier change returns at once, and its change is
// handed over after the earlier one, by the goroutine already feeding.
func TestMemoryConsentChangesWhileFeeding(t *testing.T) {
	var log changeLog
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	s := linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(func(linkID string, old, new *linkstore.Consent) {
		if first { // only the feeding goroutine calls fn, so no race here
			first = false
			close(entered)
			<-release
		}
		log.record(linkID, old, new)
	}))...)
	mustCreate(t, s, fullLink("L"))

	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.ApplyEvent(t.Context(), consentEvent("e1", "L", "C", klavi.ConsentAwaitingAuthorisation, t0)); err != nil {
			t.Errorf("apply e1: %v", err)
		}
	}()
	<-entered
	apply(t, s, consentEvent("e2", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)), linkstore.Applied)
	if got := log.changes(); len(got) != 0 {
		t.Errorf("changes handed over while the first is still handled: %+v", got)
	}
	close(release)
	<-done

	got := log.changes()
	if len(got) != 2 {
		t.Fatalf("got %d changes, want 2: %+v", len(got), got)
	}
	if got[0].New.Status != klavi.ConsentAwaitingAuthorisation || got[1].New.Status != klavi.ConsentAuthorised {
		t.Errorf("changes = %s then %s, want AWAITING_AUTHORISATION then AUTHORISED", got[0].New.Status, got[1].New.Status)
	}
}

// TestMemoryConsentChangesAfterPanic: a function that panics does not stop
// later changes from being reported.
func TestMemoryConsentChangesAfterPanic(t *testing.T) {
	var log changeLog
	first := true
	s := linkstoretest.NewMemory(append(memoryOptions(), linkstoretest.WithConsentChanges(func(linkID string, old, new *linkstore.Consent) {
		if first {
			first = false
			panic("boom")
		}
		log.record(linkID, old, new)
	}))...)
	mustCreate(t, s, fullLink("L"))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the function's panic", r)
			}
		}()
		_, _ = s.ApplyEvent(t.Context(), consentEvent("e1", "L", "C", klavi.ConsentAwaitingAuthorisation, t0))
	}()
	apply(t, s, consentEvent("e2", "L", "C", klavi.ConsentAuthorised, t0.Add(time.Minute)), linkstore.Applied)
	got := log.changes()
	if len(got) != 1 || got[0].New.Status != klavi.ConsentAuthorised {
		t.Errorf("changes after the panic = %+v, want the authorisation", got)
	}
}
