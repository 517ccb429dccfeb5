package klavisim

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// linkLifecycle creates a link, authorises and revokes its consent, and
// returns the link id.
func linkLifecycle(t *testing.T, e *env) string {
	t.Helper()
	tok := e.token(t)
	linkID := e.createLink(t, tok, `{"personalTaxId":"12345678909"}`)
	c, err := e.sim.AuthoriseConsent(linkID, "260")
	if err != nil {
		t.Fatalf("AuthoriseConsent: %v", err)
	}
	if _, err := e.sim.SetConsentStatus(c.ID, klavi.ConsentRevoked); err != nil {
		t.Fatalf("SetConsentStatus: %v", err)
	}
	return linkID
}

func TestChaosDuplicate(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{Duplicate: 1} })
	linkLifecycle(t, e)
	e.sim.Wait()

	seen := map[string]int{}
	for _, ev := range eventsOf(t, e, p) {
		seen[ev.EventID]++
	}
	if len(seen) != 3 {
		t.Fatalf("distinct events = %d, want 3", len(seen))
	}
	for id, n := range seen {
		if n != 2 {
			t.Errorf("event %s arrived %d times, want 2", id, n)
		}
	}
	copies := map[string][]int{}
	for _, d := range e.sim.Deliveries() {
		if d.Outcome != OutcomeDelivered {
			t.Errorf("delivery %+v not delivered", d)
		}
		copies[d.ID] = append(copies[d.ID], d.Copy)
	}
	for id, cs := range copies {
		if slices.Sort(cs); !reflect.DeepEqual(cs, []int{0, 1}) {
			t.Errorf("copies of %s = %v, want [0 1]", id, cs)
		}
	}
}

func TestChaosOutOfOrder(t *testing.T) {
	p := newPartner(t, nil)
	// A window far longer than the test: Wait releases the held events.
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{OutOfOrder: time.Hour} })
	linkLifecycle(t, e)
	e.sim.Wait()

	emitted := []string{EventLinkCreated, EventConsentAuthorised, EventConsentRevoked}
	got := eventNames(eventsOf(t, e, p))
	if reflect.DeepEqual(got, emitted) {
		t.Errorf("events arrived in emission order %v, want them reordered", got)
	}
	if sorted := slices.Sorted(slices.Values(got)); !reflect.DeepEqual(sorted, slices.Sorted(slices.Values(emitted))) {
		t.Errorf("events = %v, want each of %v once", got, emitted)
	}

	// Without chaos the same lifecycle keeps its order.
	e.sim.SetChaos(Chaos{})
	p2 := newPartner(t, nil)
	e.sim.SetEventWebhookURL(p2.url("/events"))
	linkLifecycle(t, e)
	e.sim.Wait()
	if got := eventNames(eventsOf(t, e, p2)); !reflect.DeepEqual(got, emitted) {
		t.Errorf("without chaos, events = %v, want %v", got, emitted)
	}
}

func TestReorderNeverKeepsTheOrder(t *testing.T) {
	for n := 2; n <= 6; n++ {
		for seed := range int64(20) {
			var held []*job
			for i := range n {
				held = append(held, &job{id: strconv.Itoa(i)})
			}
			out := reorder(seed, held)
			if reflect.DeepEqual(out, held) {
				t.Errorf("reorder(seed %d, %d jobs) kept the order", seed, n)
			}
			if len(out) != n {
				t.Errorf("reorder returned %d jobs, want %d", len(out), n)
			}
		}
	}
	one := []*job{{id: "a"}}
	if out := reorder(1, one); len(out) != 1 || out[0] != one[0] {
		t.Errorf("reorder of one job = %v, want it unchanged", out)
	}
}

func TestChaosOutOfOrderWindowReleases(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{OutOfOrder: time.Millisecond} })
	e.createLink(t, e.token(t), `{}`)
	// Released by the window's timer, not by Wait (which would release it
	// itself): wait for the background work to drain on its own.
	drained := make(chan struct{})
	go func() {
		h := e.sim.hooks
		h.mu.Lock()
		for h.busy > 0 {
			h.cond.Wait()
		}
		h.mu.Unlock()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the held event was never released by its window")
	}
	if n := len(p.requests("/events")); n != 1 {
		t.Errorf("events = %d, want 1", n)
	}
}

func TestChaosDropFirstAttempt(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{DropFirstAttempt: 1} })
	linkLifecycle(t, e)
	e.sim.Wait()
	if n := len(p.requests("/events")); n != 3 {
		t.Errorf("events received = %d, want 3, each once", n)
	}
	for seq, ds := range attemptsBySeq(e.sim.Deliveries(), DeliveryEvent) {
		if len(ds) != 2 || ds[0].Status != 0 || !strings.Contains(ds[0].Err, "dropped") ||
			ds[1].Status != 200 || ds[1].Outcome != OutcomeDelivered {
			t.Errorf("delivery %d = %+v, want a dropped first attempt then a delivered retry", seq, ds)
		}
	}
}

func TestChaosDropForever(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{DropForever: 1} })
	linkLifecycle(t, e)
	e.sim.Wait()
	if n := len(p.requests("/events")); n != 0 {
		t.Errorf("events received = %d, want 0", n)
	}
	ds := e.sim.Deliveries()
	if len(ds) != 3 {
		t.Fatalf("deliveries = %d, want 3", len(ds))
	}
	for _, d := range ds {
		if d.Attempt != 0 || d.Outcome != OutcomeDropped {
			t.Errorf("delivery %+v, want no attempt and outcome dropped", d)
		}
	}
	// The state is there for a reconciliation to find.
	if cs := e.sim.Consents(); len(cs) != 1 || cs[0].Status != klavi.ConsentRevoked {
		t.Errorf("consents = %+v, want one REVOKED", cs)
	}
}

func TestChanceIsAFraction(t *testing.T) {
	const n = 2000
	hits := 0
	for i := range n {
		if chance(7, 0.25, "x", strconv.Itoa(i)) {
			hits++
		}
	}
	if hits < n*20/100 || hits > n*30/100 {
		t.Errorf("chance 0.25 hit %d of %d", hits, n)
	}
	first := chance(7, 0.5, "same")
	for range 10 {
		if chance(7, 0.5, "same") != first {
			t.Fatal("chance is not deterministic")
		}
	}
	if chance(7, 0, "x") || !chance(7, 1, "x") {
		t.Error("chance 0 hit or chance 1 missed")
	}
}

func TestChaosFailReports(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Chaos = Chaos{FailReports: 1} })
	tok := e.token(t)
	e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	e.requestReports(t, tok, "/data/v1/personal/user-data", `{"taxId":"12345678909","products":["all"],
		"productsCallbackURL":{"all":"`+p.url("/reports")+`"}}`)
	e.sim.Wait()
	if n := len(p.requests("/reports")); n != 0 {
		t.Errorf("reports = %d, want none", n)
	}
	want := []string{EventLinkCreated, EventConsentAuthorised, EventProductRequestReceived,
		EventProductGeneratedFailed, EventProductGeneratedFailed, EventProductGeneratedFailed}
	if got := eventNames(eventsOf(t, e, p)); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestChaosFailAPI(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Chaos = Chaos{FailAPI: 1} })
	assertError(t, e.do(t, http.MethodPost, "/data/v1/auth", "", authBody), 503, 503)
	// Only the data API fails; the consent page is not behind it.
	res := e.browse(t, http.MethodGet, e.srv.URL+"/link/nope?v=x", "", "")
	if res.status != http.StatusNotFound {
		t.Errorf("consent page status = %d, want 404 from the page itself", res.status)
	}
	e.sim.SetChaos(Chaos{})
	if res := e.do(t, http.MethodPost, "/data/v1/auth", "", authBody); res.status != http.StatusOK {
		t.Errorf("after SetChaos(Chaos{}): status %d, want 200", res.status)
	}
	var statuses []int
	for _, r := range e.sim.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := []int{503, 404, 200}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("recorded statuses = %v, want %v", statuses, want)
	}
}

func TestChaosFailAPIFractionIsDeterministic(t *testing.T) {
	run := func(seed int64) []int {
		e := newEnv(t, func(o *Options) { o.Seed, o.Chaos = seed, Chaos{FailAPI: 0.5} })
		var out []int
		for range 24 {
			out = append(out, e.do(t, http.MethodPost, "/data/v1/auth", "", authBody).status)
		}
		return out
	}
	first, second := run(5), run(5)
	if !reflect.DeepEqual(first, second) {
		t.Errorf("statuses differ for one seed: %v and %v", first, second)
	}
	if !slices.Contains(first, 503) || !slices.Contains(first, 200) {
		t.Errorf("statuses = %v, want both failures and successes at 0.5", first)
	}
}

func TestChaosSlowAnswerGivesUpWhenClientCancels(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Chaos = Chaos{SlowAnswer: time.Hour} })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/data/v1/auth", strings.NewReader(authBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatalf("got status %d, want the client to give up", res.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the deadline", err)
	}
	// Closing the server waits for the handler, which returns once it sees
	// the cancellation; then the request is recorded without an answer.
	e.srv.Close()
	rs := e.sim.Requests()
	if len(rs) != 1 || rs[0].Status != 0 {
		t.Errorf("requests = %+v, want one without an answer", rs)
	}
}
