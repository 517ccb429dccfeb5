package klavisim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavievent"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// received is one webhook POST a partner got.
type received struct {
	path   string
	header http.Header
	body   []byte
}

// partner is a webhook receiver. answer gives the status for the n-th
// (1-based) POST to a path; nil answers 200.
type partner struct {
	srv    *httptest.Server
	answer func(path string, n int) int

	mu    sync.Mutex
	got   []received
	count map[string]int
}

func newPartner(t *testing.T, answer func(path string, n int) int) *partner {
	t.Helper()
	p := &partner{answer: answer, count: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *partner) serve(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	p.mu.Lock()
	p.count[r.URL.Path]++
	n := p.count[r.URL.Path]
	p.got = append(p.got, received{path: r.URL.Path, header: r.Header.Clone(), body: body.Bytes()})
	p.mu.Unlock()
	status := http.StatusOK
	if p.answer != nil {
		status = p.answer(r.URL.Path, n)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (p *partner) url(path string) string { return p.srv.URL + path }

// requests returns what arrived on path, in arrival order.
func (p *partner) requests(path string) []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []received
	for _, r := range p.got {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// newHookEnv is newEnv with event webhooks to p's /events, report
// generation on and a millisecond backoff.
func newHookEnv(t *testing.T, p *partner, mod func(*Options)) *env {
	t.Helper()
	e := newEnv(t, func(o *Options) {
		o.EventWebhookURL = p.url("/events")
		o.GenerateReports = true
		o.Delivery = DeliveryPolicy{Backoff: time.Millisecond}
		if mod != nil {
			mod(o)
		}
	})
	t.Cleanup(e.sim.Close)
	return e
}

// wireEvent is an event body element as the partner decodes it.
type wireEvent struct {
	PartnerAppID string          `json:"partnerAppId"`
	EventID      string          `json:"eventId"`
	EventType    string          `json:"eventType"`
	EventName    string          `json:"eventName"`
	EventTime    string          `json:"eventTime"`
	Payload      json.RawMessage `json:"payload"`
	ExternalInfo json.RawMessage `json:"externalInfo"`
}

// verified checks a delivery's headers and signature, and that the body is
// a one-element array of an event with exactly the envelope keys.
func verified(t *testing.T, e *env, r received) wireEvent {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	v := webhooksig.Verifier{Now: e.clock.Now}
	sig, ts := r.header.Get(webhooksig.SignatureHeader), r.header.Get(webhooksig.TimestampHeader)
	if err := v.Verify([]byte(testSecretKey), r.body, sig, ts); err != nil {
		t.Errorf("signature of %s: %v", r.body, err)
	}
	var elems []json.RawMessage
	decode(t, r.body, &elems)
	if len(elems) != 1 {
		t.Fatalf("body %s has %d elements, want 1", r.body, len(elems))
	}
	assertKeys(t, elems[0], "partnerAppId", "eventId", "eventType", "eventName", "eventTime", "payload", "externalInfo")
	var ev wireEvent
	decode(t, elems[0], &ev)
	return ev
}

// eventsOf returns the verified events that arrived at /events, in order.
func eventsOf(t *testing.T, e *env, p *partner) []wireEvent {
	t.Helper()
	var out []wireEvent
	for _, r := range p.requests("/events") {
		out = append(out, verified(t, e, r))
	}
	return out
}

func eventNames(evs []wireEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.EventName)
	}
	return out
}

// attempts returns the statuses and outcomes of the delivery records of
// each delivery (by Seq) of kind.
func attemptsBySeq(ds []Delivery, kind DeliveryKind) map[int][]Delivery {
	out := map[int][]Delivery{}
	for _, d := range ds {
		if d.Kind == kind {
			out[d.Seq] = append(out[d.Seq], d)
		}
	}
	return out
}

var eventIDRE = regexp.MustCompile(`^[0-9]{13}-[0-9a-f]{24}$`)

func TestEventWebhookBodies(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, nil)
	tok := e.token(t)
	linkID := e.createLink(t, tok, `{"businessTaxId":"11222333000181","externalInfo":{"myTraceId":"t-1"}}`)
	c, err := e.sim.AuthoriseConsent(linkID, "033")
	if err != nil {
		t.Fatalf("AuthoriseConsent: %v", err)
	}
	e.clock.Advance(time.Minute)
	if res := e.do(t, http.MethodDelete, "/data/v1/consents/"+c.ID+"/revoke", tok, ""); res.status != http.StatusOK {
		t.Fatalf("revoke: status %d; body %s", res.status, res.body)
	}
	e.sim.Wait()

	evs := eventsOf(t, e, p)
	if got, want := eventNames(evs), []string{EventLinkCreated, EventConsentAuthorised, EventConsentRevoked}; !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i, ev := range evs {
		if ev.PartnerAppID != "12345678" || ev.EventType != "api" || !eventIDRE.MatchString(ev.EventID) {
			t.Errorf("event %d envelope = %+v, want partnerAppId 12345678, eventType api and a Klavi-shaped eventId", i, ev)
		}
		if string(ev.ExternalInfo) != `{"myTraceId":"t-1"}` {
			t.Errorf("event %d externalInfo = %s, want the link's", i, ev.ExternalInfo)
		}
	}
	if got, want := evs[0].EventTime, "2025-03-01T12:00:00.000Z"; got != want {
		t.Errorf("link_created eventTime = %q, want %q", got, want)
	}
	if got, want := evs[2].EventTime, "2025-03-01T12:01:00.000Z"; got != want {
		t.Errorf("consent_revoked eventTime = %q, want %q", got, want)
	}

	wantLink := `{"personalTaxId":"","businessTaxId":"11222333000181","linkId":"` + linkID + `"}`
	if string(evs[0].Payload) != wantLink {
		t.Errorf("link_created payload = %s, want %s", evs[0].Payload, wantLink)
	}
	wantConsent := `{"personalTaxId":"","businessTaxId":"11222333000181","linkId":"` + linkID +
		`","consents":{"consentId":"` + c.ID + `","externalTrackId":"` + c.ExternalTrackID + `","institutionCode":"033"}}`
	for _, ev := range evs[1:] {
		if string(ev.Payload) != wantConsent {
			t.Errorf("%s payload = %s, want %s", ev.EventName, ev.Payload, wantConsent)
		}
	}

	// The project's own parser reads them as the consent changes they are.
	var statuses []string
	for _, r := range p.requests("/events")[1:] {
		parsed, err := klavievent.Parse(r.body)
		if err != nil {
			t.Fatalf("klavievent.Parse: %v", err)
		}
		changes, err := parsed[0].Changes()
		if err != nil || len(changes) != 1 {
			t.Fatalf("Changes = %v, %v; want one", changes, err)
		}
		ch := changes[0]
		if ch.ConsentID != c.ID || ch.LinkID != linkID || ch.InstitutionCode != "033" {
			t.Errorf("change = %+v, want consent %s of link %s at 033", ch, c.ID, linkID)
		}
		statuses = append(statuses, string(ch.ConsentStatus))
	}
	if want := []string{string(klavi.ConsentAuthorised), string(klavi.ConsentRevoked)}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("parsed statuses = %v, want %v", statuses, want)
	}

	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.EventID] = true
	}
	if len(ids) != len(evs) {
		t.Errorf("eventIds %v are not unique", ids)
	}
}

func TestEventWebhookURLIsOptionalAndSettable(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.EventWebhookURL = "" })
	tok := e.token(t)
	e.createLink(t, tok, `{}`)
	e.sim.Wait()
	if n := len(p.requests("/events")); n != 0 {
		t.Fatalf("events without a URL = %d, want 0", n)
	}
	e.sim.SetEventWebhookURL(p.url("/later"))
	e.createLink(t, tok, `{}`)
	e.sim.Wait()
	if n := len(p.requests("/later")); n != 1 {
		t.Errorf("events after SetEventWebhookURL = %d, want 1", n)
	}
}

func TestSignCompactVariant(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.SignCompactVariant = true })
	e.createLink(t, e.token(t), `{"personalTaxId":"12345678909"}`)
	e.sim.Wait()
	got := p.requests("/events")
	if len(got) != 1 {
		t.Fatalf("events = %d, want 1", len(got))
	}
	r := got[0]
	if !bytes.Contains(r.body, []byte("\n  ")) {
		t.Errorf("body %s is not pretty-printed", r.body)
	}
	sig := r.header.Get(webhooksig.SignatureHeader)
	rawSig, _ := webhooksig.Sign([]byte(testSecretKey), r.body, e.clock.Now())
	if sig == rawSig {
		t.Error("signature is over the raw bytes, want over the compact form")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, r.body); err != nil {
		t.Fatal(err)
	}
	if compactSig, _ := webhooksig.Sign([]byte(testSecretKey), compact.Bytes(), e.clock.Now()); sig != compactSig {
		t.Errorf("signature = %s, want the compact body's %s", sig, compactSig)
	}
	verified(t, e, r)
}

// failFirst answers bad to the first n attempts, then good.
func failFirst(n, bad, good int) func(int) int {
	return func(attempt int) int {
		if attempt <= n {
			return bad
		}
		return good
	}
}

func TestDeliveryRetries(t *testing.T) {
	tests := []struct {
		name     string
		retries  int
		answer   func(n int) int
		statuses []int
		outcome  Outcome
	}{
		{
			name:     "500 twice then 200",
			answer:   failFirst(2, 500, 200),
			statuses: []int{500, 500, 200}, outcome: OutcomeDelivered,
		},
		{
			name:     "always 500",
			answer:   func(int) int { return 500 },
			statuses: []int{500, 500, 500, 500, 500, 500}, outcome: OutcomeGaveUp,
		},
		{
			name:     "4xx is retried too",
			answer:   failFirst(1, 413, 204),
			statuses: []int{413, 204}, outcome: OutcomeDelivered,
		},
		{
			name:     "no retries",
			retries:  -1,
			answer:   func(int) int { return 503 },
			statuses: []int{503}, outcome: OutcomeGaveUp,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPartner(t, func(_ string, n int) int { return tc.answer(n) })
			e := newHookEnv(t, p, func(o *Options) { o.Delivery.Retries = tc.retries })
			linkID := e.createLink(t, e.token(t), `{}`)
			e.sim.Wait()

			ds := e.sim.Deliveries()
			var statuses, numbers []int
			for i, d := range ds {
				statuses = append(statuses, d.Status)
				numbers = append(numbers, d.Attempt)
				if d.Seq != ds[0].Seq || d.Kind != DeliveryEvent || d.Name != EventLinkCreated || d.LinkID != linkID {
					t.Errorf("record %d = %+v, want attempts of the link_created delivery", i, d)
				}
				if want := Outcome(""); i < len(ds)-1 && d.Outcome != want {
					t.Errorf("attempt %d outcome = %q, want none before the last", d.Attempt, d.Outcome)
				}
			}
			if !reflect.DeepEqual(statuses, tc.statuses) {
				t.Errorf("statuses = %v, want %v", statuses, tc.statuses)
			}
			wantNumbers := make([]int, len(tc.statuses))
			for i := range wantNumbers {
				wantNumbers[i] = i + 1
			}
			if !reflect.DeepEqual(numbers, wantNumbers) {
				t.Errorf("attempt numbers = %v, want %v", numbers, wantNumbers)
			}
			if got := ds[len(ds)-1].Outcome; got != tc.outcome {
				t.Errorf("outcome = %q, want %q", got, tc.outcome)
			}
			if got := p.requests("/events"); len(got) != len(tc.statuses) || !bytes.Equal(got[0].body, got[len(got)-1].body) {
				t.Errorf("partner got %d posts, want %d of the same body", len(got), len(tc.statuses))
			}
		})
	}
}

func TestDeliveryBackoffPolicy(t *testing.T) {
	p := DeliveryPolicy{}.withDefaults()
	if p.Timeout != 10*time.Second || p.Retries != 5 || p.Backoff != 250*time.Millisecond || p.MaxRedirects != 3 {
		t.Errorf("defaults = %+v, want Klavi's 10s, 5 retries, 250ms, 3 redirects", p)
	}
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, p.backoff(n))
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backoffs = %v, want %v", got, want)
	}
	if got := p.backoff(100); got != maxBackoff {
		t.Errorf("backoff(100) = %v, want the cap %v", got, maxBackoff)
	}
}

func TestDeliveryRedirects(t *testing.T) {
	tests := []struct {
		name    string
		hops    int
		status  int
		outcome Outcome
	}{
		{name: "three redirects are followed", hops: 3, status: 200, outcome: OutcomeDelivered},
		{name: "a fourth is not", hops: 4, status: http.StatusTemporaryRedirect, outcome: OutcomeGaveUp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var finalBodies [][]byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
				if n < tc.hops {
					http.Redirect(w, r, "/hop/"+strconv.Itoa(n+1), http.StatusTemporaryRedirect)
					return
				}
				var b bytes.Buffer
				_, _ = b.ReadFrom(r.Body)
				mu.Lock()
				finalBodies = append(finalBodies, b.Bytes())
				mu.Unlock()
			}))
			t.Cleanup(srv.Close)
			e := newEnv(t, func(o *Options) {
				o.EventWebhookURL = srv.URL + "/hop/0"
				o.Delivery = DeliveryPolicy{Backoff: time.Millisecond, Retries: -1}
			})
			t.Cleanup(e.sim.Close)
			e.createLink(t, e.token(t), `{}`)
			e.sim.Wait()
			ds := e.sim.Deliveries()
			if len(ds) != 1 || ds[0].Status != tc.status || ds[0].Outcome != tc.outcome {
				t.Fatalf("deliveries = %+v, want one with status %d, %s", ds, tc.status, tc.outcome)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.outcome == OutcomeDelivered && (len(finalBodies) != 1 || !bytes.Equal(finalBodies[0], ds[0].Body)) {
				t.Errorf("final target got %q, want the event body once", finalBodies)
			}
		})
	}
}

func TestDeliveryTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	e := newEnv(t, func(o *Options) {
		o.EventWebhookURL = srv.URL
		o.Delivery = DeliveryPolicy{Timeout: 20 * time.Millisecond, Backoff: time.Millisecond, Retries: 1}
	})
	t.Cleanup(e.sim.Close)
	e.createLink(t, e.token(t), `{}`)
	e.sim.Wait()
	ds := e.sim.Deliveries()
	if len(ds) != 2 {
		t.Fatalf("deliveries = %+v, want 2 attempts", ds)
	}
	for _, d := range ds {
		if d.Status != 0 || !strings.Contains(d.Err, "deadline exceeded") {
			t.Errorf("attempt %d = status %d, err %q; want no status and a deadline error", d.Attempt, d.Status, d.Err)
		}
	}
	if ds[1].Outcome != OutcomeGaveUp {
		t.Errorf("outcome = %q, want %q", ds[1].Outcome, OutcomeGaveUp)
	}
}

func TestCloseCancelsDeliveries(t *testing.T) {
	first := make(chan struct{}, 1)
	p := newPartner(t, func(string, int) int {
		select {
		case first <- struct{}{}:
		default:
		}
		return http.StatusInternalServerError
	})
	e := newEnv(t, func(o *Options) {
		o.EventWebhookURL = p.url("/events")
		// Long enough that only Close can end the wait for the retry.
		o.Delivery = DeliveryPolicy{Backoff: time.Hour}
	})
	e.createLink(t, e.token(t), `{}`)
	<-first
	e.sim.Close()

	// Close may catch the attempt before or after the 500 is read; either
	// way the delivery ends cancelled, without a retry.
	ds := e.sim.Deliveries()
	if len(ds) != 1 || ds[0].Attempt != 1 || ds[0].Outcome != OutcomeCancelled {
		t.Fatalf("deliveries = %+v, want one attempt, cancelled", ds)
	}
	if n := len(p.requests("/events")); n != 1 {
		t.Errorf("partner got %d posts, want 1", n)
	}
	e.createLink(t, e.token(t), `{}`)
	e.sim.Wait()
	if n := len(e.sim.Deliveries()); n != 1 {
		t.Errorf("deliveries after Close = %d, want still 1", n)
	}
}

func TestDeliveriesRecordBodies(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, nil)
	e.createLink(t, e.token(t), `{}`)
	e.sim.Wait()
	ds := e.sim.Deliveries()
	got := p.requests("/events")
	if len(ds) != 1 || len(got) != 1 {
		t.Fatalf("deliveries %d, posts %d; want 1 each", len(ds), len(got))
	}
	sum := sha256.Sum256(got[0].body)
	want := Delivery{
		Seq: ds[0].Seq, Kind: DeliveryEvent, URL: p.url("/events"), Name: EventLinkCreated,
		ID: verified(t, e, got[0]).EventID, LinkID: ds[0].LinkID, Attempt: 1, Status: 200,
		Size: len(got[0].body), SHA256: hex.EncodeToString(sum[:]), Body: got[0].body,
		Time: e.clock.Now(), Outcome: OutcomeDelivered,
	}
	if diff := cmp.Diff(want, ds[0]); diff != "" {
		t.Errorf("delivery mismatch (-want +got):\n%s", diff)
	}
	ds[0].Body[0] = 'X'
	if again := e.sim.Deliveries(); again[0].Body[0] == 'X' {
		t.Error("Deliveries shares its Body with the simulator")
	}
	if slices.ContainsFunc(ds, func(d Delivery) bool { return strings.Contains(d.Err, testSecretKey) }) {
		t.Error("a delivery error contains the secret key")
	}
}
