package load_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// Klavi's event names (reference §3) as the burst sends them.
const (
	eventLinkCreated      = "link_created"
	eventConsentAuth      = "consent_authorised"
	eventConsentRejected  = "consent_rejected"
	eventProductRequested = "product_request_received"
	eventProductGenerated = "product_generated_success"
)

// eventTimeLayout is eventTime's format in Klavi's bodies.
const eventTimeLayout = "2006-01-02T15:04:05.000Z"

// Report sizes: small synthetic reports, so that a burst is about the
// handlers and not about moving megabytes.
const (
	minReportBytes = 8 << 10
	maxReportBytes = 32 << 10
)

// institutions are the banks the links preselect.
func institutions() []string { return []string{"001", "033", "104", "237", "260", "341"} }

// productsOf are the products a person type can have reports of.
func productsOf(personal bool) []string {
	prefix := "pf_"
	if !personal {
		prefix = "pj_"
	}
	return []string{prefix + "checking_account", prefix + "credit_card", prefix + "categorized_checking_l3"}
}

// linkPlan is one link of the burst: what the frontend asks for, what the
// user does at the bank, and, once the link exists, what Klavi sends.
type linkPlan struct {
	index        int
	personal     bool
	taxID        string // bare CPF or CNPJ
	institution  string
	authorised   bool
	products     []string
	externalInfo json.RawMessage

	// Set once POST /links answered.
	linkID string
	// Set by planTraffic.
	consentID string
	requestID string
	reports   []*reportPlan
}

// reportPlan is one product report Klavi delivers for a link.
type reportPlan struct {
	link            *linkPlan
	productName     string
	productReportID string
	key             string // where the report webhook stores it
	body            []byte
	sha256          [sha256.Size]byte
}

// eventPlan is one Klavi event: its body and how many changes it makes
// in the store (one per product name of a product event, else one).
type eventPlan struct {
	id      string
	name    string
	link    *linkPlan
	changes int
	body    []byte
}

// traffic is what Klavi sends for the whole burst, in delivery order.
type traffic struct {
	events  []*eventPlan
	reports []*reportPlan
	// eventOrder and reportOrder index events and reports: each appears
	// copies times, all shuffled together.
	eventOrder  []int
	reportOrder []int
}

// newLinkPlans plans n links: 4 in 5 for a CPF, the rest for a CNPJ, and
// every tenth link rejected at the bank (so 10% of any burst of 10 or more).
func newLinkPlans(rng *rand.Rand, n int) []*linkPlan {
	banks := institutions()
	links := make([]*linkPlan, n)
	for i := range links {
		l := &linkPlan{
			index:       i,
			personal:    rng.IntN(5) != 0,
			institution: banks[rng.IntN(len(banks))],
			authorised:  i%10 != 3,
		}
		if l.personal {
			l.taxID = newCPF(rng)
		} else {
			l.taxID = newCNPJ(rng)
		}
		l.externalInfo = json.RawMessage(fmt.Sprintf(`{"applicationId":"load-%d"}`, i))
		if l.authorised {
			all := productsOf(l.personal)
			rng.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
			l.products = all[:1+rng.IntN(len(all))]
		}
		links[i] = l
	}
	return links
}

// createBody is the frontend's POST /links body.
func (l *linkPlan) createBody(redirectURL string) []byte {
	body := map[string]any{
		"email":           fmt.Sprintf("user%d@example.com", l.index),
		"phone":           fmt.Sprintf("+55 11 9%04d-%04d", l.index/10000, l.index%10000),
		"institutionCode": l.institution,
		"redirectURL":     redirectURL,
		"externalInfo":    l.externalInfo,
	}
	if l.personal {
		body["personalTaxId"] = l.taxID
	} else {
		body["businessTaxId"] = l.taxID
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic("encode create body: " + err.Error()) // only strings and raw JSON
	}
	return b
}

// taxIDs returns the personalTaxId and businessTaxId fields of Klavi's
// payloads for the link: one set, the other empty.
func (l *linkPlan) taxIDs() (personal, business string) {
	if l.personal {
		return l.taxID, ""
	}
	return "", l.taxID
}

// planTraffic plans Klavi's events and reports for links that exist. Each
// link's events are seconds apart in eventTime, starting at base, in the
// order Klavi sends them; delivery order is shuffled anyway.
func planTraffic(rng *rand.Rand, links []*linkPlan, base time.Time) *traffic {
	tr := &traffic{}
	for _, l := range links {
		t0 := base.Add(time.Duration(l.index) * time.Millisecond)
		l.consentID = newUUID(rng)
		tr.addEvent(rng, l, eventLinkCreated, t0, 1, linkPayload(l))
		if !l.authorised {
			tr.addEvent(rng, l, eventConsentRejected, t0.Add(20*time.Second), 1, consentPayload(l))
			continue
		}
		tr.addEvent(rng, l, eventConsentAuth, t0.Add(20*time.Second), 1, consentPayload(l))
		l.requestID = newUUID(rng)
		tr.addEvent(rng, l, eventProductRequested, t0.Add(21*time.Second), len(l.products), productPayload(l, "", ""))
		for i, product := range l.products {
			r := &reportPlan{link: l, productName: product, productReportID: newUUID(rng)}
			r.key = reportstore.ReportKey(l.linkID, r.productName, r.productReportID)
			r.body = klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
				Size:            minReportBytes + rng.IntN(maxReportBytes-minReportBytes+1),
				Seed:            rng.Int64(),
				ProductName:     product,
				RequestID:       l.requestID,
				ProductReportID: r.productReportID,
				LinkID:          l.linkID,
				InstitutionCode: l.institution,
				ExternalInfo:    l.externalInfo,
			})
			r.sha256 = sha256.Sum256(r.body)
			l.reports = append(l.reports, r)
			tr.reports = append(tr.reports, r)
			at := t0.Add(time.Duration(40+i) * time.Second)
			tr.addEvent(rng, l, eventProductGenerated, at, 1, productPayload(l, product, r.productReportID))
		}
	}
	tr.eventOrder = shuffledCopies(rng, len(tr.events))
	tr.reportOrder = shuffledCopies(rng, len(tr.reports))
	return tr
}

// addEvent plans one event with Klavi's envelope: a one-element array,
// pretty-printed as in Klavi's examples.
func (tr *traffic) addEvent(rng *rand.Rand, l *linkPlan, name string, at time.Time, changes int, payload map[string]any) {
	id := strconv.FormatInt(at.UnixMilli(), 10) + "-" + randomHex(rng, 12)
	body, err := json.MarshalIndent([]map[string]any{{
		"partnerAppId": "12345678",
		"eventId":      id,
		"eventType":    "api",
		"eventName":    name,
		"eventTime":    at.UTC().Format(eventTimeLayout),
		"payload":      payload,
		"externalInfo": l.externalInfo,
	}}, "", "  ")
	if err != nil {
		panic("encode event: " + err.Error()) // only strings and raw JSON
	}
	tr.events = append(tr.events, &eventPlan{id: id, name: name, link: l, changes: changes, body: body})
}

func linkPayload(l *linkPlan) map[string]any {
	personal, business := l.taxIDs()
	return map[string]any{"personalTaxId": personal, "businessTaxId": business, "linkId": l.linkID}
}

func consentPayload(l *linkPlan) map[string]any {
	p := linkPayload(l)
	p["consents"] = map[string]any{
		"consentId":       l.consentID,
		"externalTrackId": "trk-" + strconv.Itoa(l.index),
		"institutionCode": l.institution,
	}
	return p
}

// productPayload is product_request_received's payload when product is
// empty (all the request's products), else product_generated_success's.
func productPayload(l *linkPlan, product, productReportID string) map[string]any {
	p := linkPayload(l)
	p["requestId"] = l.requestID
	p["institutionCode"] = l.institution
	if product == "" {
		p["productNames"] = l.products
	} else {
		p["productName"] = product
		p["productReportId"] = productReportID
	}
	return p
}

// shuffledCopies returns copies of every index below n, shuffled.
func shuffledCopies(rng *rand.Rand, n int) []int {
	order := make([]int, 0, n*copies)
	for range copies {
		for i := range n {
			order = append(order, i)
		}
	}
	rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	return order
}

// newCPF returns a CPF with valid check digits: nine random digits, and
// the two digits taxid accepts after them.
func newCPF(rng *rand.Rand) string {
	return withCheckDigits(fmt.Sprintf("%09d", 1+rng.IntN(999999998)), taxid.ParseCPF)
}

// newCNPJ returns a numeric CNPJ (branch 0001) with valid check digits.
func newCNPJ(rng *rand.Rand) string {
	return withCheckDigits(fmt.Sprintf("%08d0001", 1+rng.IntN(99999998)), taxid.ParseCNPJ)
}

// withCheckDigits appends the two check digits that make parse accept
// base. Asking taxid rather than computing them keeps one definition of the
// rule.
func withCheckDigits(base string, parse func(string) (taxid.ID, error)) string {
	for d := range 100 {
		s := fmt.Sprintf("%s%02d", base, d)
		if _, err := parse(s); err == nil {
			return s
		}
	}
	panic("no check digits for " + base) // every base has exactly one pair
}

func newUUID(rng *rand.Rand) string {
	h := randomHex(rng, 16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func TestPlanIsWhatKlaviSends(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed, 1))
	links := newLinkPlans(rng, 20)
	for i, l := range links {
		l.linkID = fmt.Sprintf("link-%d", i)
	}
	tr := planTraffic(rng, links, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))

	rejected, reports, changes := 0, 0, 0
	for _, l := range links {
		if _, err := taxid.Parse(l.taxID); err != nil {
			t.Errorf("link %d tax id is invalid: %v", l.index, err)
		}
		if !l.authorised {
			rejected++
			if len(l.reports) != 0 {
				t.Errorf("rejected link %d has %d reports, want none", l.index, len(l.reports))
			}
			continue
		}
		if n := len(l.reports); n < 1 || n > 3 {
			t.Errorf("link %d has %d reports, want 1 to 3", l.index, n)
		}
		reports += len(l.reports)
	}
	if rejected != 2 {
		t.Errorf("rejected links = %d of 20, want 2", rejected)
	}
	for _, r := range tr.reports {
		if len(r.body) < minReportBytes-(1<<10) || len(r.body) > maxReportBytes+(1<<10) {
			t.Errorf("report %s is %d bytes, want about %d to %d", r.productReportID, len(r.body), minReportBytes, maxReportBytes)
		}
		env, err := klavireport.ParseEnvelope(r.body)
		if err != nil {
			t.Fatalf("report %s: %v", r.productReportID, err)
		}
		got := []string{env.ProductReportID, env.ProductName, env.RequestID}
		want := []string{r.productReportID, r.productName, r.link.requestID}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(env.LinkIDs) != 1 || env.LinkIDs[0] != r.link.linkID {
			t.Errorf("report envelope = %v %v, want %v [%s]", got, env.LinkIDs, want, r.link.linkID)
		}
	}
	for _, e := range tr.events {
		changes += e.changes
		var body []map[string]json.RawMessage
		if err := json.Unmarshal(e.body, &body); err != nil || len(body) != 1 {
			t.Fatalf("event %s body is not a one-element array: %v", e.id, err)
		}
	}
	if len(tr.reports) != reports {
		t.Errorf("planned reports = %d, want %d", len(tr.reports), reports)
	}
	if got, want := len(tr.eventOrder), copies*len(tr.events); got != want {
		t.Errorf("event deliveries = %d, want %d", got, want)
	}
	if got, want := len(tr.reportOrder), copies*len(tr.reports); got != want {
		t.Errorf("report deliveries = %d, want %d", got, want)
	}
	seen := map[int]int{}
	for _, i := range tr.eventOrder {
		seen[i]++
	}
	for i := range tr.events {
		if seen[i] != copies {
			t.Errorf("event %d delivered %d times, want %d", i, seen[i], copies)
		}
	}
	if changes <= len(tr.events) {
		t.Errorf("store changes = %d for %d events, want more (product_request_received names several products)", changes, len(tr.events))
	}
}
