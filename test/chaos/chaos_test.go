package chaos_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reconcile"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

const (
	// seed fixes the simulator's ids and chaos decisions and the test's
	// own choices. The simulator's clock stands still (klaviNow), the
	// links are driven one after the other, and the feed and the sweep
	// call Klavi one at a time, so equal seeds make equal runs: the same
	// trouble at the same places. This one meets every kind of trouble
	// (checkChaosHappened).
	seed = 9

	numLinks = 20
	// Every rejectEvery-th link is rejected at the consent page.
	rejectEvery = 5

	// sweepStep is how far the backend's clock moves before each
	// reconciliation run: past the report-request lease (2m), the
	// reconcile delay (15m) and a link's life (30m), so that every link
	// still waiting for something is due.
	sweepStep = 31 * time.Minute
	maxSweeps = 6

	// createAttempts bounds how often the frontend tries to create a
	// link while Klavi answers 503.
	createAttempts = 10
)

// allProducts is what the simulator expands "all" (the backend's default
// REPORT_PRODUCTS) to for a CPF; sorted.
var allProducts = []string{"pf_categorized_checking_l3", "pf_checking_account", "pf_credit_card"}

// chaos is every switch on: webhooks delivered twice at once, a link's
// events held back and shuffled, first attempts dropped, deliveries never
// sent, product reports failing at Klavi, slow data API answers and a share
// of 503s before routing.
var chaos = klavisim.Chaos{
	Duplicate:        1,
	OutOfOrder:       150 * time.Millisecond,
	DropFirstAttempt: 0.3,
	DropForever:      0.3,
	FailReports:      0.1,
	SlowAnswer:       5 * time.Millisecond,
	FailAPI:          0.2,
}

type linkCase struct {
	cpf         string
	institution string
	authorise   bool
	id          string
	linkURL     string
	// createFailures counts the attempts the backend answered with Klavi
	// unavailable.
	createFailures int
}

// TestNothingLost drives links through consent with every chaos switch on
// and checks that each authorised consent ends with its reports stored
// exactly once, and each rejected one REJECTED.
//
//  1. While consents are given, events may be dropped for good, and the
//     stream lags behind (the feed is paused): no report is requested yet.
//  2. The stream catches up; from here on every delivery is eventually
//     sent, but still twice, late, shuffled, after a dropped first attempt,
//     with 503s and failed products at Klavi.
//  3. The reconciliation sweep runs, on a clock moved past leases and
//     grace periods, until no link is due: it repairs what the dropped
//     events and the 503s left behind.
func TestNothingLost(t *testing.T) {
	s := newStack(t, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	institutions := klavisim.Institutions()

	s.sim.SetChaos(chaos)
	s.feed.pause()
	links := make([]*linkCase, numLinks)
	for i := range links {
		lc := &linkCase{
			cpf:         randomCPF(rng),
			institution: institutions[rng.IntN(len(institutions))].Code,
			authorise:   i%rejectEvery != rejectEvery-1,
		}
		s.createLink(t, lc, i)
		s.decide(t, lc)
		links[i] = lc
	}
	s.quiesce(t)

	calm := chaos
	calm.DropForever = 0 // reports cannot be recovered once lost: Klavi is asked once
	s.sim.SetChaos(calm)
	s.feed.resume()
	s.quiesce(t)

	swept := map[reconcile.Action]int{}
	for sweep := 1; ; sweep++ {
		s.clock.Advance(sweepStep)
		sum, err := s.reconciler.Run(t.Context())
		t.Logf("sweep %d: due %d, reconciled %d, failed %d, actions %v (err %v)", sweep, sum.Due, sum.Reconciled, sum.Failed, sum.Actions, err)
		for a, n := range sum.Actions {
			swept[a] += n
		}
		s.quiesce(t)
		if sum.Due == 0 {
			break
		}
		if sweep == maxSweeps {
			t.Fatalf("links still due after %d sweeps", maxSweeps)
		}
	}

	s.checkChaosHappened(t, links, swept)
	deliveries := reportDeliveries(t, s.sim.Deliveries())
	requests := map[string][]klavisim.ReportRequest{}
	for _, rr := range s.sim.ReportRequests() {
		requests[rr.LinkID] = append(requests[rr.LinkID], rr)
	}
	consents := map[string][]klavisim.Consent{}
	for _, c := range s.sim.Consents() {
		consents[c.LinkID] = append(consents[c.LinkID], c)
	}
	for i, lc := range links {
		t.Run(strconv.Itoa(i)+"_"+map[bool]string{true: "authorised", false: "rejected"}[lc.authorise], func(t *testing.T) {
			if len(consents[lc.id]) != 1 {
				t.Fatalf("simulator has %d consents for link %s, want 1", len(consents[lc.id]), lc.id)
			}
			consent := consents[lc.id][0]
			v := s.view(t, lc.id)
			if lc.authorise {
				s.checkAuthorised(t, lc, consent, v, requests[lc.id], deliveries)
			} else {
				s.checkRejected(t, lc, v, requests[lc.id])
			}
		})
	}
	s.checkNoStrayFiles(t, links)
	if n := s.feed.droppedRecords(); n > 0 {
		t.Logf("%d stream records were dropped after their retries (the sweep caught up)", n)
	}
	logs := s.logs.String()
	for _, lc := range links {
		bare := strings.NewReplacer(".", "", "-", "").Replace(lc.cpf)
		if strings.Contains(logs, lc.cpf) || strings.Contains(logs, bare) {
			t.Errorf("backend log holds the CPF of link %s", lc.id)
		}
	}
}

// checkAuthorised: the link received every product Klavi generated, each
// stored once under its key with the bytes Klavi sent, after one report
// request for its one consent.
func (s *stack) checkAuthorised(t *testing.T, lc *linkCase, consent klavisim.Consent, v linkapi.View, requests []klavisim.ReportRequest, deliveries map[string]delivered) {
	t.Helper()
	if len(requests) != 1 {
		t.Fatalf("Klavi got %d report requests for the link, want 1: %+v", len(requests), requests)
	}
	if diff := cmp.Diff([]string{consent.ID}, requests[0].ConsentIDs); diff != "" {
		t.Errorf("report request consents (-want +got):\n%s", diff)
	}
	if len(v.ReportRequests) != 1 || v.ReportRequests[0].RequestID != requests[0].ID {
		t.Errorf("link records report requests %+v, want the one Klavi got (%s)", v.ReportRequests, requests[0].ID)
	}
	if len(v.Consents) != 1 || v.Consents[0].ConsentID != consent.ID || v.Consents[0].Status != "AUTHORISED" || v.Consents[0].InstitutionCode != lc.institution {
		t.Errorf("link consents = %+v, want %s AUTHORISED at %s", v.Consents, consent.ID, lc.institution)
	}

	generated, failed := s.products.of(lc.id)
	var tried []string
	for p := range generated {
		tried = append(tried, p)
	}
	tried = append(tried, failed...)
	slices.Sort(tried)
	if diff := cmp.Diff(allProducts, tried); diff != "" {
		t.Errorf("products Klavi generated or failed (-want +got):\n%s", diff)
	}
	wantStatus := "REPORTS_RECEIVED"
	if len(generated) == 0 {
		wantStatus = "REPORTS_REQUESTED" // every product failed at Klavi
	}
	if v.Status != wantStatus {
		t.Errorf("link status = %s, want %s", v.Status, wantStatus)
	}

	want := map[string]string{} // object key -> sha256 Klavi sent
	var wantReports, gotReports []string
	for product, reportID := range generated {
		d, ok := deliveries[reportID]
		if !ok {
			t.Errorf("Klavi never delivered report %s (%s)", reportID, product)
			continue
		}
		want[reportstore.ReportKey(lc.id, product, reportID)] = d.sha256
		wantReports = append(wantReports, product+" "+reportID)
	}
	for _, r := range v.Reports {
		gotReports = append(gotReports, r.ProductName+" "+r.ProductReportID)
	}
	slices.Sort(wantReports)
	slices.Sort(gotReports)
	if diff := cmp.Diff(wantReports, gotReports); diff != "" {
		t.Errorf("reports recorded for the link (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, s.storedFiles(t, lc.id)); diff != "" {
		t.Errorf("report files on disk, by key and sha256 (-Klavi sent +stored):\n%s", diff)
	}
}

// checkRejected: nothing requested, nothing stored, REJECTED.
func (s *stack) checkRejected(t *testing.T, lc *linkCase, v linkapi.View, requests []klavisim.ReportRequest) {
	t.Helper()
	if v.Status != "REJECTED" {
		t.Errorf("link status = %s, want REJECTED", v.Status)
	}
	if len(v.Consents) != 1 || v.Consents[0].Status != "REJECTED" {
		t.Errorf("link consents = %+v, want one REJECTED", v.Consents)
	}
	if len(requests) != 0 || len(v.ReportRequests) != 0 || len(v.Reports) != 0 {
		t.Errorf("rejected link: %d requests at Klavi, %d recorded, %d reports; want none", len(requests), len(v.ReportRequests), len(v.Reports))
	}
	if files := s.storedFiles(t, lc.id); len(files) != 0 {
		t.Errorf("rejected link has report files %v", files)
	}
}

// storedFiles returns every file under the link's prefix in the report
// store, by object key, with the sha256 of its bytes.
func (s *stack) storedFiles(t *testing.T, linkID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	dir := filepath.Join(s.reportsDir, filepath.FromSlash(reportstore.LinkPrefix(linkID)))
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(s.reportsDir, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// checkNoStrayFiles: every file in the report store belongs to one of the
// links (none unmatched, no temporary file left behind).
func (s *stack) checkNoStrayFiles(t *testing.T, links []*linkCase) {
	t.Helper()
	prefixes := make([]string, len(links))
	for i, lc := range links {
		prefixes[i] = reportstore.LinkPrefix(lc.id)
	}
	err := filepath.WalkDir(s.reportsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.reportsDir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) || !strings.HasSuffix(key, ".json") {
			t.Errorf("stray file in the report store: %s", key)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walk %s: %v", s.reportsDir, err)
	}
}

// checkChaosHappened makes sure the run met every kind of trouble it is
// meant to survive, and that the sweep had to repair some of it. The run is
// the same for the same seed; a seed or simulator change that avoids one
// kind would make the test pass for nothing.
func (s *stack) checkChaosHappened(t *testing.T, links []*linkCase, swept map[reconcile.Action]int) {
	t.Helper()
	seen := map[string]int{}
	arrived := map[string]bool{}       // event or report id -> some copy delivered
	names := map[string]string{}       // event id -> event name
	firstSeen := map[string][]string{} // link id -> event names in the order first tried
	for _, d := range s.sim.Deliveries() {
		names[d.ID] = d.Name
		arrived[d.ID] = arrived[d.ID] || d.Outcome == klavisim.OutcomeDelivered
		if d.Copy > 0 && d.Attempt == 1 {
			seen["duplicate deliveries"]++
		}
		if d.Attempt == 1 && strings.Contains(d.Err, "first attempt dropped") {
			seen["first attempts dropped"]++
		}
		if d.Kind == klavisim.DeliveryEvent && d.Copy == 0 && d.Attempt <= 1 {
			firstSeen[d.LinkID] = append(firstSeen[d.LinkID], d.Name)
		}
	}
	for id, ok := range arrived {
		switch {
		case ok:
		case names[id] == klavisim.EventConsentAuthorised:
			seen["authorisations lost for good"]++
		case names[id] == klavisim.EventConsentRejected:
			seen["rejections lost for good"]++
		default:
			seen["other deliveries lost for good"]++
		}
	}
	for _, order := range firstSeen {
		if i := slices.Index(order, klavisim.EventLinkCreated); i > 0 {
			seen["links whose link_created came after a later event"]++
		}
	}
	for _, r := range s.sim.Requests() {
		if r.Status == http.StatusServiceUnavailable && strings.HasSuffix(r.Path, "/institution-data") {
			seen["report requests answered 503"]++
		}
	}
	for _, lc := range links {
		if lc.createFailures > 0 {
			seen["link creations answered 503"]++
		}
		_, failed := s.products.of(lc.id)
		seen["products failed at Klavi"] += len(failed)
	}
	seen["consents repaired by the sweep"] = swept[reconcile.ActionConsentFixed]
	seen["report requests made by the sweep"] = swept[reconcile.ActionReportRequested]
	t.Logf("chaos met: %v", seen)
	for _, kind := range []string{
		"duplicate deliveries", "first attempts dropped", "authorisations lost for good", "rejections lost for good",
		"other deliveries lost for good", "links whose link_created came after a later event",
		"report requests answered 503", "link creations answered 503", "products failed at Klavi",
		"consents repaired by the sweep", "report requests made by the sweep",
	} {
		if seen[kind] == 0 {
			t.Errorf("the run met no %s; choose another seed", kind)
		}
	}
}

type delivered struct {
	sha256 string
	linkID string
}

// reportDeliveries returns the report bodies the simulator sent, by
// productReportId. Every copy and attempt of one report carries the same
// bytes.
func reportDeliveries(t *testing.T, ds []klavisim.Delivery) map[string]delivered {
	t.Helper()
	out := map[string]delivered{}
	for _, d := range ds {
		if d.Kind != klavisim.DeliveryReport {
			continue
		}
		if prev, ok := out[d.ID]; ok && prev.sha256 != d.SHA256 {
			t.Errorf("report %s sent with different bodies", d.ID)
		}
		out[d.ID] = delivered{sha256: d.SHA256, linkID: d.LinkID}
	}
	return out
}

// createLink asks the backend for a link, as the frontend does, trying
// again while Klavi is unavailable.
func (s *stack) createLink(t *testing.T, lc *linkCase, n int) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"personalTaxId": lc.cpf,
		"redirectURL":   s.url + "/?returned=1",
		"externalInfo":  map[string]int{"case": n},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range createAttempts {
		status, _, answer := s.do(t, http.MethodPost, s.url+"/links", "application/json", body)
		switch status {
		case http.StatusCreated:
			var created struct {
				LinkID  string `json:"linkId"`
				LinkURL string `json:"linkURL"`
			}
			if err := json.Unmarshal(answer, &created); err != nil {
				t.Fatalf("decode created link: %v", err)
			}
			lc.id, lc.linkURL = created.LinkID, created.LinkURL
			return
		case http.StatusServiceUnavailable, http.StatusBadGateway:
			lc.createFailures++
		default:
			t.Fatalf("POST /links = %d %s", status, answer)
		}
	}
	t.Fatalf("POST /links failed %d times", createAttempts)
}

var (
	formAction   = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	hiddenToken  = regexp.MustCompile(`name="v" value="([^"]*)"`)
	institutions = regexp.MustCompile(`name="institutionCode" value="([^"]*)"`)
)

// decide opens the consent page and submits its form as a browser does,
// choosing the link's institution and authorising or rejecting.
func (s *stack) decide(t *testing.T, lc *linkCase) {
	t.Helper()
	status, _, page := s.do(t, http.MethodGet, lc.linkURL, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET consent page = %d %s", status, page)
	}
	action := formAction.FindSubmatch(page)
	token := hiddenToken.FindSubmatch(page)
	if action == nil || token == nil {
		t.Fatalf("consent page has no decision form:\n%s", page)
	}
	var offered []string
	for _, m := range institutions.FindAllSubmatch(page, -1) {
		offered = append(offered, html.UnescapeString(string(m[1])))
	}
	if !slices.Contains(offered, lc.institution) {
		t.Fatalf("consent page offers %v, not %s", offered, lc.institution)
	}
	decision := "reject"
	if lc.authorise {
		decision = "authorise"
	}
	form := url.Values{
		"v":               {html.UnescapeString(string(token[1]))},
		"institutionCode": {lc.institution},
		"decision":        {decision},
	}
	base, err := url.Parse(lc.linkURL)
	if err != nil {
		t.Fatal(err)
	}
	target, err := base.Parse(html.UnescapeString(string(action[1])))
	if err != nil {
		t.Fatal(err)
	}
	status, hdr, answer := s.do(t, http.MethodPost, target.String(), "application/x-www-form-urlencoded", []byte(form.Encode()))
	if status != http.StatusSeeOther {
		t.Fatalf("POST decision = %d %s, want 303", status, answer)
	}
	loc, err := url.Parse(hdr.Get("Location"))
	if err != nil || loc.Query().Get("link_id") != lc.id {
		t.Fatalf("decision redirects to %q, want the redirectURL with link_id=%s", hdr.Get("Location"), lc.id)
	}
}

// view is GET /links/{linkId}.
func (s *stack) view(t *testing.T, id string) linkapi.View {
	t.Helper()
	status, _, body := s.do(t, http.MethodGet, s.url+"/links/"+id, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /links/%s = %d %s", id, status, body)
	}
	var v linkapi.View
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode link view: %v", err)
	}
	return v
}

func (s *stack) do(t *testing.T, method, target, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return res.StatusCode, res.Header, b
}

// randomCPF returns a valid CPF, masked: nine random digits (not all the
// same) and their two check digits.
func randomCPF(rng *rand.Rand) string {
	for {
		d := make([]int, 11)
		for i := range 9 {
			d[i] = rng.IntN(10)
		}
		if slices.Max(d[:9]) == slices.Min(d[:9]) {
			continue
		}
		for n := 9; n <= 10; n++ {
			sum := 0
			for i := range n {
				sum += d[i] * (n + 1 - i)
			}
			d[n] = sum * 10 % 11 % 10
		}
		var b strings.Builder
		for i, v := range d {
			switch i {
			case 3, 6:
				b.WriteByte('.')
			case 9:
				b.WriteByte('-')
			}
			b.WriteByte(byte('0' + v))
		}
		return b.String()
	}
}
