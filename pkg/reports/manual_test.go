package reports

import (
	"errors"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

func TestRequestForLinkCooldown(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ManualCooldown = time.Minute })
	seed(t, e.store.MemoryStore, personalLink("L"), authorised("c-1", "260"), authorised("c-2", "341"))
	link := getLink(t, e.store.MemoryStore, "L")

	first, err := e.h.RequestForLink(t.Context(), link, []string{"pf_balance"}, "")
	if err != nil || len(first) != 2 || first[0].Err != nil || first[1].Err != nil {
		t.Fatalf("first RequestForLink = %+v, %v; want two requests", first, err)
	}
	e.clock.Advance(20 * time.Second)
	again, err := e.h.RequestForLink(t.Context(), link, []string{"pf_balance"}, "")
	if err != nil || len(again) != 2 {
		t.Fatalf("repeat RequestForLink = %+v, %v; want two refusals", again, err)
	}
	for _, r := range again {
		var ce *linkstore.CooldownError
		if r.RequestID != "" || !errors.Is(r.Err, ErrTooSoon) || !errors.As(r.Err, &ce) || ReasonOf(r.Err) != ReasonTooSoon {
			t.Errorf("repeat for %s = %+v, want ErrTooSoon with a CooldownError", r.ConsentID, r)
			continue
		}
		if want := testStart.Add(time.Minute); !ce.Until.Equal(want) {
			t.Errorf("cool-down of %s until %v, want %v", r.ConsentID, ce.Until, want)
		}
	}
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("klavi calls = %d, want 2", n)
	}
	// The automatic request's claim is another matter: untouched.
	for _, c := range getLink(t, e.store.MemoryStore, "L").Consents {
		if c.RequestID != "" || !c.LeaseUntil.IsZero() {
			t.Errorf("consent %s = %+v, want no automatic request or lease", c.ConsentID, c)
		}
	}
}

// A purge between reading the link and claiming its request ends the
// manual request as a purged link's.
func TestRequestForLinkPurgedBeforeClaim(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("L"), authorised("c-1", "260"))
	link := getLink(t, e.store.MemoryStore, "L")
	if _, err := e.store.MemoryStore.Purge(t.Context(), "L", testStart); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := e.h.RequestForLink(t.Context(), link, nil, ""); !errors.Is(err, ErrLinkPurged) {
		t.Errorf("RequestForLink after purge: err = %v, want ErrLinkPurged", err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
}
