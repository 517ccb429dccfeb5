package reports

import (
	"errors"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func TestPurge(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	linked := reportstore.ReportKey("l-1", "pf_credit_card", "r-1")
	unmatched := reportstore.UnmatchedPrefix("l-1") + "r-2"
	other := reportstore.ReportKey("l-10", "pf_credit_card", "r-3")
	e.objects.Reset(linked, unmatched, other)

	for i := range 2 { // purging again changes nothing and counts nothing
		if err := e.h.Purge(t.Context(), "l-1"); err != nil {
			t.Fatalf("purge %d: %v", i+1, err)
		}
	}
	if e.objects.Has(linked) || e.objects.Has(unmatched) {
		t.Errorf("the link's reports were kept")
	}
	if !e.objects.Has(other) {
		t.Errorf("another link's report was deleted")
	}
	if l := getLink(t, e.store.MemoryStore, "l-1"); l.PurgedAt.IsZero() || len(l.Consents) != 0 {
		t.Errorf("link after purge: purgedAt %v, %d consents; want a tombstone", l.PurgedAt, len(l.Consents))
	}
	if got := e.metrics.Sum("LinksPurged", nil); got != 1 {
		t.Errorf("LinksPurged = %v, want 1", got)
	}
	if got := e.metrics.Sum("ReportObjectsDeleted", nil); got != 2 {
		t.Errorf("ReportObjectsDeleted = %v, want 2", got)
	}
}

func TestPurgeWithoutDeleter(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	h := New(e.klavi, e.store, nil, Config{Now: e.clock.Now})
	if err := h.Purge(t.Context(), "l-1"); !errors.Is(err, errNoDeleter) {
		t.Fatalf("Purge = %v, want errNoDeleter", err)
	}
	if l := getLink(t, e.store.MemoryStore, "l-1"); !l.PurgedAt.IsZero() {
		t.Errorf("link purged although its reports could not be deleted")
	}
	if _, err := e.store.GetLink(t.Context(), "l-1"); errors.Is(err, linkstore.ErrNotFound) {
		t.Errorf("link removed")
	}
}
