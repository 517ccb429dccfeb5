package klavisim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavievent"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// requestReports posts a report request and returns its requestId.
func (e *env) requestReports(t *testing.T, tok, path, body string) string {
	t.Helper()
	res := e.do(t, http.MethodPost, path, tok, body)
	if res.status != http.StatusOK {
		t.Fatalf("report request: status %d, want 200; body %s", res.status, res.body)
	}
	var got reportResponse
	decode(t, res.body, &got)
	return got.RequestID
}

// reportsByProduct verifies each report that arrived on path and indexes
// the bodies by productName.
func reportsByProduct(t *testing.T, e *env, p *partner, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	v := webhooksig.Verifier{Now: e.clock.Now}
	for _, r := range p.requests(path) {
		if err := v.Verify([]byte(testSecretKey), r.body, r.header.Get(webhooksig.SignatureHeader), r.header.Get(webhooksig.TimestampHeader)); err != nil {
			t.Errorf("report signature: %v", err)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("report Content-Type = %q, want application/json", ct)
		}
		env, err := klavireport.ParseEnvelope(r.body)
		if err != nil {
			t.Fatalf("ParseEnvelope: %v", err)
		}
		if _, dup := out[env.ProductName]; dup {
			t.Errorf("product %s delivered twice", env.ProductName)
		}
		out[env.ProductName] = r.body
	}
	return out
}

func TestReportsDelivered(t *testing.T) {
	sizes := map[string]int{"pf_checking_account": 64 << 10, "pf_credit_card": 32 << 10, "pf_categorized_checking_l3": 16 << 10}
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.ReportSize = func(product string) int { return sizes[product] } })
	tok := e.token(t)
	c := e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	requestID := e.requestReports(t, tok, "/data/v1/personal/institution-data", `{"taxId":"12345678909","institutionCode":"260",
		"products":["all"],"productsCallbackURL":{"all":"`+p.url("/reports")+`"},"externalInfo":{"req":"r-1"}}`)
	e.sim.Wait()

	reports := reportsByProduct(t, e, p, "/reports")
	if got, want := slices.Sorted(maps.Keys(reports)), slices.Sorted(maps.Keys(sizes)); !reflect.DeepEqual(got, want) {
		t.Fatalf("products delivered = %v, want %v", got, want)
	}
	reportIDs := map[string]string{}
	for product, body := range reports {
		key := map[string]string{
			"pf_checking_account": "checkingAccounts", "pf_categorized_checking_l3": "checkingAccounts",
			"pf_credit_card": "creditCardAccounts",
		}[product]
		assertKeys(t, body, "code", "message", "requestId", "productName", "productVersion", "productReportId",
			"productReportTime", "enquiryCpf", "links", key, "externalInfo")
		var got struct {
			Code              json.RawMessage `json:"code"`
			Message           string          `json:"message"`
			RequestID         string          `json:"requestId"`
			ProductVersion    string          `json:"productVersion"`
			ProductReportID   string          `json:"productReportId"`
			ProductReportTime string          `json:"productReportTime"`
			EnquiryCpf        string          `json:"enquiryCpf"`
			Links             []reportLink    `json:"links"`
			ExternalInfo      json.RawMessage `json:"externalInfo"`
		}
		decode(t, body, &got)
		if string(got.Code) != "200" || got.Message != "ok" || got.RequestID != requestID || got.ProductVersion != "V1" ||
			got.ProductReportTime != "2025-03-01T12:00:00" || got.EnquiryCpf != testCPF || !uuidRE.MatchString(got.ProductReportID) {
			t.Errorf("%s envelope = %+v, want code 200, ok, request %s, V1, the clock's time, the CPF and a UUID", product, got, requestID)
		}
		wantLinks := []reportLink{{LinkID: c.LinkID, InstitutionCode: "260", Consents: []reportConsent{{
			ConsentID: c.ID, Permissions: map[string]reportPermission{},
		}}}}
		for _, perm := range defaultPermissions() {
			wantLinks[0].Consents[0].Permissions[perm] = reportPermission{PermissionsGranted: true, AccountIDs: []string{}}
		}
		if diff := cmp.Diff(wantLinks, got.Links); diff != "" {
			t.Errorf("%s links mismatch (-want +got):\n%s", product, diff)
		}
		var ext map[string]string
		decode(t, got.ExternalInfo, &ext)
		if !reflect.DeepEqual(ext, map[string]string{"req": "r-1"}) {
			t.Errorf("%s externalInfo = %s, want the request's", product, got.ExternalInfo)
		}
		if n, want := len(body), sizes[product]; n < want*85/100 || n > want*115/100 {
			t.Errorf("%s is %d bytes, want about %d", product, n, want)
		}
		reportIDs[product] = got.ProductReportID
	}
	assertAmountsAreStrings(t, reports["pf_checking_account"], "checkingAccounts")
	assertAmountsAreStrings(t, reports["pf_credit_card"], "creditCardAccounts")
	if ids := slices.Compact(slices.Sorted(maps.Values(reportIDs))); len(ids) != 3 {
		t.Errorf("productReportIds %v are not unique", reportIDs)
	}

	evs := eventsOf(t, e, p)
	wantNames := []string{EventLinkCreated, EventConsentAuthorised, EventProductRequestReceived,
		EventProductGeneratedSuccess, EventProductGeneratedSuccess, EventProductGeneratedSuccess}
	if got := eventNames(evs); !reflect.DeepEqual(got, wantNames) {
		t.Fatalf("events = %v, want %v", got, wantNames)
	}
	var generated []string
	for _, r := range p.requests("/events")[2:] {
		parsed, err := klavievent.Parse(r.body)
		if err != nil {
			t.Fatalf("klavievent.Parse: %v", err)
		}
		changes, err := parsed[0].Changes()
		if err != nil {
			t.Fatalf("Changes: %v", err)
		}
		for _, ch := range changes {
			if ch.Kind != klavievent.KindProduct || ch.RequestID != requestID || ch.LinkID != c.LinkID {
				t.Errorf("change = %+v, want a product change of request %s on link %s", ch, requestID, c.LinkID)
			}
			if parsed[0].EventName == EventProductGeneratedSuccess {
				generated = append(generated, ch.ProductName)
			}
		}
		if string(parsed[0].ExternalInfo) != `{"req":"r-1"}` {
			t.Errorf("%s externalInfo = %s, want the request's", parsed[0].EventName, parsed[0].ExternalInfo)
		}
	}
	if want := []string{"pf_checking_account", "pf_credit_card", "pf_categorized_checking_l3"}; !reflect.DeepEqual(generated, want) {
		t.Errorf("product_generated_success for %v, want %v", generated, want)
	}
	for _, ev := range evs[3:] {
		var payload productPayload
		decode(t, ev.Payload, &payload)
		if payload.ProductReportID != reportIDs[payload.ProductName] {
			t.Errorf("%s event productReportId = %s, want the report's %s", payload.ProductName, payload.ProductReportID, reportIDs[payload.ProductName])
		}
	}

	var reportDeliveries []Delivery
	for _, d := range e.sim.Deliveries() {
		if d.Kind == DeliveryReport {
			reportDeliveries = append(reportDeliveries, d)
		}
	}
	if len(reportDeliveries) != 3 {
		t.Fatalf("report deliveries = %d, want 3", len(reportDeliveries))
	}
	for _, d := range reportDeliveries {
		sum := sha256.Sum256(reports[d.Name])
		if d.Outcome != OutcomeDelivered || d.Attempt != 1 || d.Body != nil || d.ID != reportIDs[d.Name] ||
			d.Size != len(reports[d.Name]) || d.SHA256 != hex.EncodeToString(sum[:]) || d.LinkID != c.LinkID {
			t.Errorf("report delivery %+v, want delivered at once, size and digest of the body, no body kept", d)
		}
	}
}

// assertAmountsAreStrings checks that the first account's amounts are JSON
// strings, as Klavi sends them.
func assertAmountsAreStrings(t *testing.T, body []byte, key string) {
	t.Helper()
	var doc map[string][]map[string]json.RawMessage
	var raw map[string]json.RawMessage
	decode(t, body, &raw)
	decode(t, []byte(`{"x":`+string(raw[key])+`}`), &doc)
	accounts := doc["x"]
	if len(accounts) == 0 {
		t.Fatalf("%s is empty", key)
	}
	var amountField json.RawMessage
	switch key {
	case "checkingAccounts":
		var v struct {
			Balances struct {
				AvailableAmount struct {
					Amount json.RawMessage `json:"amount"`
				} `json:"availableAmount"`
			} `json:"balances"`
			TransactionDetails []json.RawMessage `json:"transactionDetails"`
		}
		b, _ := json.Marshal(accounts[0])
		decode(t, b, &v)
		amountField = v.Balances.AvailableAmount.Amount
		if len(v.TransactionDetails) == 0 {
			t.Errorf("%s has no transactions", key)
		}
	case "creditCardAccounts":
		var v struct {
			Bills []struct {
				Transactions []struct {
					Amount struct {
						Amount json.RawMessage `json:"amount"`
					} `json:"amount"`
				} `json:"transactions"`
			} `json:"bills"`
		}
		b, _ := json.Marshal(accounts[0])
		decode(t, b, &v)
		if len(v.Bills) == 0 || len(v.Bills[0].Transactions) == 0 {
			t.Fatalf("%s has no bill with transactions", key)
		}
		amountField = v.Bills[0].Transactions[0].Amount.Amount
	}
	if len(amountField) == 0 || amountField[0] != '"' {
		t.Errorf("%s amount = %s, want a JSON string", key, amountField)
	}
}

func TestReportRouting(t *testing.T) {
	tests := []struct {
		name      string
		linkCB    string // productsCallbackURL of the link, paths of the partner
		requestCB string // productsCallbackURL of the request
		global    string
		want      map[string]string // product -> path
	}{
		{
			name:   "link product key and other",
			linkCB: `{"pf_credit_card":"/link-cc","other":"/link-other"}`,
			want: map[string]string{"pf_credit_card": "/link-cc", "pf_checking_account": "/link-other",
				"pf_categorized_checking_l3": "/link-other"},
		},
		{
			name:      "request wins over link, per product",
			linkCB:    `{"all":"/link-all"}`,
			requestCB: `{"pf_checking_account":"/req-checking"}`,
			want: map[string]string{"pf_checking_account": "/req-checking", "pf_credit_card": "/link-all",
				"pf_categorized_checking_l3": "/link-all"},
		},
		{
			name:   "console URL last",
			global: "/global",
			want: map[string]string{"pf_checking_account": "/global", "pf_credit_card": "/global",
				"pf_categorized_checking_l3": "/global"},
		},
		{name: "nowhere to send", want: map[string]string{}},
	}
	withHost := func(p *partner, cb string) string {
		var m map[string]string
		if err := json.Unmarshal([]byte(cb), &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			m[k] = p.url(v)
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPartner(t, nil)
			e := newHookEnv(t, p, nil)
			if tc.global != "" {
				e.sim.SetReportWebhookURL(p.url(tc.global))
			}
			tok := e.token(t)
			linkBody := `{"personalTaxId":"12345678909"}`
			if tc.linkCB != "" {
				linkBody = `{"personalTaxId":"12345678909","productsCallbackURL":` + withHost(p, tc.linkCB) + `}`
			}
			linkID := e.createLink(t, tok, linkBody)
			if _, err := e.sim.AuthoriseConsent(linkID, "001"); err != nil {
				t.Fatal(err)
			}
			reqBody := `{"taxId":"12345678909","products":["all"]}`
			if tc.requestCB != "" {
				reqBody = `{"taxId":"12345678909","products":["all"],"productsCallbackURL":` + withHost(p, tc.requestCB) + `}`
			}
			e.requestReports(t, tok, "/data/v1/personal/user-data", reqBody)
			e.sim.Wait()

			got := map[string]string{}
			for _, d := range e.sim.Deliveries() {
				if d.Kind == DeliveryReport {
					got[d.Name] = d.URL[len(p.srv.URL):]
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("routes mismatch (-want +got):\n%s", diff)
			}
			var generated int
			for _, name := range eventNames(eventsOf(t, e, p)) {
				if name == EventProductGeneratedSuccess {
					generated++
				}
			}
			if generated != 3 {
				t.Errorf("product_generated_success events = %d, want 3 whatever the routing", generated)
			}
		})
	}
}

func TestBusinessReports(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, nil)
	tok := e.token(t)
	e.authorisedConsent(t, tok, "businessTaxId", testCNPJ2, "341")
	e.requestReports(t, tok, "/data/v1/business/institution-data", `{"taxId":"12ABC34501DE35","institutionCode":"341",
		"products":["all","pj_loans"],"productsCallbackURL":{"all":"`+p.url("/reports")+`"}}`)
	e.sim.Wait()
	reports := reportsByProduct(t, e, p, "/reports")
	want := []string{"pj_categorized_checking_l3", "pj_checking_account", "pj_credit_card", "pj_loans"}
	if got := slices.Sorted(maps.Keys(reports)); !reflect.DeepEqual(got, want) {
		t.Fatalf("products = %v, want %v", got, want)
	}
	for product, body := range reports {
		var got map[string]json.RawMessage
		decode(t, body, &got)
		if string(got["enquiryCnpj"]) != `"`+testCNPJ2+`"` {
			t.Errorf("%s enquiryCnpj = %s, want the CNPJ", product, got["enquiryCnpj"])
		}
		if _, ok := got["enquiryCpf"]; ok {
			t.Errorf("%s has enquiryCpf on a business report", product)
		}
	}
	var loans map[string]json.RawMessage
	decode(t, reports["pj_loans"], &loans)
	if len(loans["loans"]) < 2 || loans["loans"][0] != '[' {
		t.Errorf("pj_loans data = %.80s, want a loans array", loans["loans"])
	}
}

func TestLargeReport(t *testing.T) {
	const size = 3 << 20
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.ReportSize = func(string) int { return size } })
	tok := e.token(t)
	e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	e.requestReports(t, tok, "/data/v1/personal/user-data", `{"taxId":"12345678909","products":["pf_checking_account"],
		"productsCallbackURL":{"all":"`+p.url("/reports")+`"}}`)
	e.sim.Wait()
	body := reportsByProduct(t, e, p, "/reports")["pf_checking_account"]
	if n := len(body); n < size*95/100 || n > size*105/100 {
		t.Errorf("report is %d bytes, want about %d", n, size)
	}
}

func TestProductKey(t *testing.T) {
	tests := []struct {
		product, key string
		kind         dataKind
	}{
		{"pf_checking_account", "checkingAccounts", dataAccounts},
		{"pj_categorized_checking_l2", "checkingAccounts", dataAccounts},
		{"pf_savings_account", "savingsAccounts", dataAccounts},
		{"pf_categorized_creditcard_l3", "creditCardAccounts", dataCards},
		{"pj_credit_card", "creditCardAccounts", dataCards},
		{"pf_unarranged_account_overdraft", "unarrangedAccountOverdraft", dataGeneric},
		{"pj_bank_fixed_incomes", "bankFixedIncomes", dataGeneric},
		{"pf_loans", "loans", dataGeneric},
	}
	for _, tc := range tests {
		if key, kind := productKey(tc.product); key != tc.key || kind != tc.kind {
			t.Errorf("productKey(%s) = %s, %d; want %s, %d", tc.product, key, kind, tc.key, tc.kind)
		}
	}
}

func TestReportsOffByDefault(t *testing.T) {
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.GenerateReports = false })
	tok := e.token(t)
	e.authorisedConsent(t, tok, "personalTaxId", testCPF, "260")
	e.requestReports(t, tok, "/data/v1/personal/user-data", `{"taxId":"12345678909","products":["all"],
		"productsCallbackURL":{"all":"`+p.url("/reports")+`"}}`)
	e.sim.Wait()
	if n := len(p.requests("/reports")); n != 0 {
		t.Errorf("reports = %d, want 0 without GenerateReports", n)
	}
	want := []string{EventLinkCreated, EventConsentAuthorised, EventProductRequestReceived}
	if got := eventNames(eventsOf(t, e, p)); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

// runScenario drives a fresh simulator with seed through a link, a consent
// and a report request, and returns every body the partner received, by
// path, in order.
func runScenario(t *testing.T, seed int64) map[string][][]byte {
	t.Helper()
	p := newPartner(t, nil)
	e := newHookEnv(t, p, func(o *Options) { o.Seed = seed })
	tok := e.token(t)
	linkID := e.createLink(t, tok, `{"personalTaxId":"12345678909","externalInfo":{"k":"v"}}`)
	if _, err := e.sim.AuthoriseConsent(linkID, "260"); err != nil {
		t.Fatal(err)
	}
	e.requestReports(t, tok, "/data/v1/personal/institution-data", `{"taxId":"12345678909","institutionCode":"260",
		"products":["all"],"productsCallbackURL":{"all":"`+p.url("/reports")+`"}}`)
	e.sim.Wait()
	out := map[string][][]byte{}
	for _, path := range []string{"/events", "/reports"} {
		for _, r := range p.requests(path) {
			out[path] = append(out[path], r.body)
		}
	}
	return out
}

func TestDeterministicForASeed(t *testing.T) {
	first := runScenario(t, 42)
	second := runScenario(t, 42)
	if len(first["/events"]) != 6 || len(first["/reports"]) != 3 {
		t.Fatalf("scenario delivered %d events and %d reports, want 6 and 3", len(first["/events"]), len(first["/reports"]))
	}
	if !reflect.DeepEqual(first, second) {
		t.Error("two runs with seed 42 sent different bytes")
	}
	other := runScenario(t, 43)
	for i := range first["/reports"] {
		if reflect.DeepEqual(first["/reports"][i], other["/reports"][i]) {
			t.Errorf("report %d is the same for seeds 42 and 43", i)
		}
	}
}
