package klavisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

// DefaultReportSize is the approximate body size of a product report when
// Options.ReportSize is nil: a few KB, so that tests stay fast.
const DefaultReportSize = 8 << 10

// reportTimeLayout is productReportTime's format: UTC without zone or
// milliseconds, as in the reference's example.
const reportTimeLayout = "2006-01-02T15:04:05"

// syntheticOverhead is about what klavireporttest.Synthetic spends outside
// its checkingAccounts array (its own envelope), measured; only used to aim
// at the requested size.
const syntheticOverhead = 1470

// allProducts is what "all" expands to for a person type, among the
// contracted products. Klavi expands it to everything contracted at
// onboarding; three products per type keep a sandbox run fast.
func allProducts(personType string) []string {
	prefix := "pf_"
	if personType == PersonBusiness {
		prefix = "pj_"
	}
	return []string{prefix + "checking_account", prefix + "credit_card", prefix + "categorized_checking_l3"}
}

// startReports is the observer that starts report generation for an
// accepted report request.
func (s *Simulator) startReports(ev Event) {
	if ev.Name != EventProductRequestReceived || !s.generateReports || ev.ReportRequest == nil {
		return
	}
	if !s.startWork() {
		return
	}
	rr := cloneReport(ev.ReportRequest)
	go func() {
		defer s.endWork()
		s.produceReports(&rr)
	}()
}

// expandProducts returns the products of rr with "all" expanded, without
// repeats.
func (s *Simulator) expandProducts(rr *ReportRequest) []string {
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range rr.Products {
		if p != "all" {
			add(p)
			continue
		}
		for _, q := range allProducts(rr.PersonType) {
			if s.products[q] {
				add(q)
			}
		}
	}
	return out
}

// reportContext is what the reports of one request are built from, read
// once from the state.
type reportContext struct {
	ordinal int // 1 for the first accepted request
	link    *Link
	links   []reportLink
}

type reportLink struct {
	LinkID          string          `json:"linkId"`
	InstitutionCode string          `json:"institutionCode"`
	Consents        []reportConsent `json:"consents"`
}

type reportConsent struct {
	ConsentID   string                      `json:"consentId"`
	Permissions map[string]reportPermission `json:"permissions"`
}

type reportPermission struct {
	PermissionsGranted bool     `json:"permissionsGranted"`
	AccountIDs         []string `json:"accountIds"`
}

func (s *Simulator) reportContext(rr *ReportRequest) reportContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rc reportContext
	for i, r := range s.state.reports {
		if r.ID == rr.ID {
			rc.ordinal = i + 1
			break
		}
	}
	linkID := rr.LinkID
	for _, id := range rr.MatchedConsentIDs {
		c, ok := s.state.byID[id]
		if !ok {
			continue
		}
		if linkID == "" {
			linkID = c.LinkID
		}
		perms := map[string]reportPermission{}
		for _, p := range c.PermissionsGranted {
			perms[p] = reportPermission{PermissionsGranted: true, AccountIDs: []string{}}
		}
		rc2 := reportConsent{ConsentID: c.ID, Permissions: perms}
		i := slices.IndexFunc(rc.links, func(l reportLink) bool {
			return l.LinkID == c.LinkID && l.InstitutionCode == c.InstitutionCode
		})
		if i < 0 {
			rc.links = append(rc.links, reportLink{LinkID: c.LinkID, InstitutionCode: c.InstitutionCode})
			i = len(rc.links) - 1
		}
		rc.links[i].Consents = append(rc.links[i].Consents, rc2)
	}
	if l, ok := s.state.linkByID[linkID]; ok {
		lc := cloneLink(l)
		rc.link = &lc
	}
	return rc
}

// produceReports generates and delivers the reports of one request, one
// product after the other, emitting product_generated_* for each.
func (s *Simulator) produceReports(rr *ReportRequest) {
	rc := s.reportContext(rr)
	for _, product := range s.expandProducts(rr) {
		if s.hooks.ctx.Err() != nil {
			return
		}
		ch := s.currentChaos()
		evRR := cloneReport(rr)
		ev := Event{Time: s.now(), ReportRequest: &evRR, ProductName: product}
		if rc.link != nil {
			l := cloneLink(rc.link)
			ev.Link = &l
		}
		if chance(s.seed, ch.FailReports, "fail-report", rr.ID, product) {
			ev.Name = EventProductGeneratedFailed
			s.emit(ev)
			continue
		}
		reportID := s.ids.derived("report", rr.ID, product)
		body := s.buildReport(rr, rc, product, reportID, ev.Time)
		ev.Name = EventProductGeneratedSuccess
		ev.ProductReportID = reportID
		s.emit(ev)

		u := s.reportURL(rr, rc.link, product)
		if u == "" {
			continue
		}
		var linkID string
		if rc.link != nil {
			linkID = rc.link.ID
		}
		s.deliver(newJob(DeliveryReport, u, product, reportID, linkID, body), ch)
	}
}

// reportURL routes a product (reference §5): the request's
// productsCallbackURL first, then the link's, then the console's global
// URL. Within one map a product's own key wins over "other" and "all".
func (s *Simulator) reportURL(rr *ReportRequest, l *Link, product string) string {
	route := func(m map[string]string) string {
		for _, k := range []string{product, "other", "all"} {
			if u := m[k]; u != "" {
				return u
			}
		}
		return ""
	}
	if u := route(rr.ProductsCallbackURL); u != "" {
		return u
	}
	if l != nil {
		if u := route(l.ProductsCallbackURL); u != "" {
			return u
		}
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.reportURL
}

// buildReport writes a product report in Klavi's common format,
// pretty-printed like klavireporttest.Synthetic, with the product data last
// but for externalInfo.
//
// Business reports carry the CNPJ as "enquiryCnpj": the reference only
// shows personal reports (enquiryCpf), so that name is a guess.
func (s *Simulator) buildReport(rr *ReportRequest, rc reportContext, product, reportID string, at time.Time) []byte {
	size := DefaultReportSize
	if s.reportSize != nil {
		if n := s.reportSize(product); n > 0 {
			size = n
		}
	}
	externalInfo := rr.ExternalInfo
	if len(externalInfo) == 0 && rc.link != nil {
		externalInfo = rc.link.ExternalInfo
	}
	if len(externalInfo) == 0 {
		externalInfo = json.RawMessage(`{}`)
	}
	var ext bytes.Buffer
	if err := json.Indent(&ext, externalInfo, "  ", "  "); err != nil {
		// externalInfo was compacted from a valid object when accepted.
		ext.Reset()
		ext.WriteString("{}")
	}
	enquiry := "enquiryCpf"
	if rr.PersonType == PersonBusiness {
		enquiry = "enquiryCnpj"
	}
	institution := rr.InstitutionCode
	if institution == "" && len(rc.links) > 0 {
		institution = rc.links[0].InstitutionCode
	}

	var head bytes.Buffer
	head.WriteString("{\n")
	writeMember(&head, "code", 200)
	writeMember(&head, "message", "ok")
	writeMember(&head, "requestId", rr.ID)
	writeMember(&head, "productName", product)
	writeMember(&head, "productVersion", "V1")
	writeMember(&head, "productReportId", reportID)
	writeMember(&head, "productReportTime", at.UTC().Format(reportTimeLayout))
	writeMember(&head, enquiry, rr.TaxID)
	links := rc.links
	if links == nil {
		links = []reportLink{}
	}
	writeMember(&head, "links", links)
	key, kind := productKey(product)
	head.WriteString(`  "` + key + `": `)
	tail := ",\n  \"externalInfo\": " + ext.String() + "\n}"

	budget := max(size-head.Len()-len(tail), 0)
	seed := seedFor(s.seed, "data", strconv.Itoa(rc.ordinal), product)
	var data []byte
	switch kind {
	case dataAccounts:
		data = accountData(budget, seed, product, institution)
	case dataCards:
		data = cardData(budget, seed, institution)
	default:
		data = genericData(budget, seed, product, institution)
	}

	out := make([]byte, 0, head.Len()+len(data)+len(tail))
	out = append(out, head.Bytes()...)
	out = append(out, data...)
	return append(out, tail...)
}

// writeMember writes one top-level member, indented, and a comma.
func writeMember(b *bytes.Buffer, key string, v any) {
	raw, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		// Only strings, ints and the plain report structs are written.
		panic("klavisim: encode report member: " + err.Error())
	}
	b.WriteString(`  "` + key + `": `)
	b.Write(raw)
	b.WriteString(",\n")
}

type dataKind int

const (
	dataAccounts dataKind = iota
	dataCards
	dataGeneric
)

// productKey names the product data's key. Only checkingAccounts is in the
// reference; savingsAccounts and creditCardAccounts are what third-party
// parsers read; other products get their name in lowerCamelCase.
func productKey(product string) (string, dataKind) {
	rest := strings.TrimPrefix(strings.TrimPrefix(product, "pf_"), "pj_")
	switch rest {
	case "checking_account", "categorized_checking_l2", "categorized_checking_l3":
		return "checkingAccounts", dataAccounts
	case "savings_account", "categorized_savings_l2", "categorized_savings_l3":
		return "savingsAccounts", dataAccounts
	case "credit_card", "categorized_creditcard_l2", "categorized_creditcard_l3":
		return "creditCardAccounts", dataCards
	}
	parts := strings.Split(rest, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, ""), dataGeneric
}

// accountData is the checkingAccounts array of klavireport's synthetic
// report (accounts with their transactionDetails), about budget bytes. It
// is already indented as a top-level member.
func accountData(budget int, seed int64, product, institution string) []byte {
	body := klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size:            budget + syntheticOverhead,
		Seed:            seed,
		ProductName:     product,
		InstitutionCode: institution,
	})
	var v struct {
		CheckingAccounts json.RawMessage `json:"checkingAccounts"`
	}
	if err := json.Unmarshal(body, &v); err != nil || len(v.CheckingAccounts) == 0 {
		return []byte("[]")
	}
	return v.CheckingAccounts
}

// Credit card data: Open Finance Brasil's credit card account shape.

type money struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

type cardAccount struct {
	BrandName         string              `json:"brandName"`
	CompanyCnpj       string              `json:"companyCnpj"`
	Name              string              `json:"name"`
	ProductType       string              `json:"productType"`
	CreditCardNetwork string              `json:"creditCardNetwork"`
	PaymentMethod     []cardPaymentMethod `json:"paymentMethod"`
	Limits            []cardLimit         `json:"limits"`
	Bills             []cardBill          `json:"bills"`
}

type cardPaymentMethod struct {
	IdentificationNumber string `json:"identificationNumber"`
	IsMultipleCreditCard bool   `json:"isMultipleCreditCard"`
}

type cardLimit struct {
	CreditLineLimitType string `json:"creditLineLimitType"`
	ConsolidationType   string `json:"consolidationType"`
	LineName            string `json:"lineName"`
	IsLimitFlexible     bool   `json:"isLimitFlexible"`
	LimitAmount         money  `json:"limitAmount"`
	UsedAmount          money  `json:"usedAmount"`
	AvailableAmount     money  `json:"availableAmount"`
}

type cardBill struct {
	BillID            string            `json:"billId"`
	DueDate           string            `json:"dueDate"`
	BillTotalAmount   money             `json:"billTotalAmount"`
	BillMinimumAmount money             `json:"billMinimumAmount"`
	IsInstalment      bool              `json:"isInstalment"`
	Transactions      []cardTransaction `json:"transactions"`
}

type cardTransaction struct {
	TransactionID        string `json:"transactionId"`
	IdentificationNumber string `json:"identificationNumber"`
	TransactionName      string `json:"transactionName"`
	CreditDebitType      string `json:"creditDebitType"`
	TransactionType      string `json:"transactionType"`
	PaymentType          string `json:"paymentType"`
	Amount               money  `json:"amount"`
	BrazilianAmount      money  `json:"brazilianAmount"`
	TransactionDate      string `json:"transactionDate"`
	BillPostDate         string `json:"billPostDate"`
	PayeeMCC             int    `json:"payeeMCC"`
	Category             string `json:"category"`
	Subcategory          string `json:"subcategory"`
	ThirdCategory        string `json:"thirdCategory"`
}

// dataGen holds the seeded generator of one product's data.
type dataGen struct {
	rng         *rand.Rand
	institution string
	base        time.Time
}

func newDataGen(seed int64, institution string) *dataGen {
	return &dataGen{
		rng:         rand.New(rand.NewPCG(uint64(seed), 0x7265706f7274)),
		institution: institution,
		base:        time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC),
	}
}

// money is an amount below limit reais, as a string with two or four
// decimals.
func (g *dataGen) money(limit int) money {
	return g.cents(g.rng.IntN(limit * 100))
}

// cents formats an amount in centavos with two or four decimals.
func (g *dataGen) cents(cents int) money {
	s := fmt.Sprintf("%d.%02d", cents/100, cents%100)
	if g.rng.IntN(2) == 0 {
		s += "00"
	}
	return money{Amount: s, Currency: "BRL"}
}

func (g *dataGen) id() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		hi>>32, hi>>16&0xffff, hi&0xfff, lo>>48&0x3fff|0x8000, lo&0xffffffffffff)
}

type merchant struct {
	name, category, sub, third string
	mcc                        int
}

func cardMerchants() []merchant {
	return []merchant{
		{"SUPERMERCADO BOM PREÇO", "Alimentação", "Supermercado", "Compras de mercado", 5411},
		{"IFOOD *RESTAURANTE", "Alimentação", "Restaurantes", "Delivery de comida", 5812},
		{"POSTO IPIRANGA", "Transporte", "Combustível", "Posto de gasolina", 5541},
		{"UBER *TRIP", "Transporte", "Aplicativos", "Corridas por aplicativo", 4121},
		{"DROGASIL", "Saúde", "Farmácia", "Medicamentos", 5912},
		{"SPOTIFY", "Lazer", "Streaming", "Assinaturas digitais", 5815},
		{"MERCADOLIVRE*VENDEDOR", "Compras", "Marketplace", "Compras online", 5399},
		{"CIA AEREA GOL", "Viagem", "Passagens", "Passagens aéreas", 3247},
	}
}

func (g *dataGen) cardTransaction(when time.Time, bill string, card string) cardTransaction {
	m := cardMerchants()[g.rng.IntN(len(cardMerchants()))]
	amt := g.money(2000)
	return cardTransaction{
		TransactionID:        g.id(),
		IdentificationNumber: card,
		TransactionName:      m.name,
		CreditDebitType:      "DEBITO",
		TransactionType:      "OPERACOES_CREDITO_CONTRATADAS_CARTAO",
		PaymentType:          "A_VISTA",
		Amount:               amt,
		BrazilianAmount:      amt,
		TransactionDate:      when.Format(time.DateOnly),
		BillPostDate:         bill,
		PayeeMCC:             m.mcc,
		Category:             m.category,
		Subcategory:          m.sub,
		ThirdCategory:        m.third,
	}
}

// cardData is a creditCardAccounts array of about budget bytes: one card
// with twelve monthly bills sharing the transactions.
func cardData(budget int, seed int64, institution string) []byte {
	g := newDataGen(seed, institution)
	card := fmt.Sprintf("%04d", g.rng.IntN(1e4))
	limit := (1000 + g.rng.IntN(49000)) * 100
	used := g.rng.IntN(limit)
	acc := cardAccount{
		BrandName:         institutionName(institution),
		CompanyCnpj:       "00000000000191",
		Name:              "CARTÃO " + strings.ToUpper(institutionName(institution)),
		ProductType:       []string{"CLASSIC_NACIONAL", "GOLD", "PLATINUM", "BLACK"}[g.rng.IntN(4)],
		CreditCardNetwork: []string{"VISA", "MASTERCARD", "ELO"}[g.rng.IntN(3)],
		PaymentMethod:     []cardPaymentMethod{{IdentificationNumber: card}},
		Limits: []cardLimit{{
			CreditLineLimitType: "LIMITE_CREDITO_TOTAL",
			ConsolidationType:   "CONSOLIDADO",
			LineName:            "CREDITO_A_VISTA",
			LimitAmount:         g.cents(limit),
			UsedAmount:          g.cents(used),
			AvailableAmount:     g.cents(limit - used),
		}},
	}
	const months = 12
	for m := range months {
		due := g.base.AddDate(0, -m, 0)
		acc.Bills = append(acc.Bills, cardBill{
			BillID:            g.id(),
			DueDate:           due.Format(time.DateOnly),
			BillTotalAmount:   g.money(10000),
			BillMinimumAmount: g.money(1000),
			Transactions:      []cardTransaction{},
		})
	}
	empty := marshalData([]cardAccount{acc})
	// A transaction sits 12 spaces deep; measure one to know how many fit.
	sample := g.cardTransaction(g.base, acc.Bills[0].DueDate, card)
	per := len(marshalIndented(sample, strings.Repeat(" ", 12))) + 2
	n := max((budget-len(empty))/per, 1)
	step := 365 * 24 * time.Hour / time.Duration(n)
	when := g.base
	for i := range n {
		when = when.Add(-time.Duration(g.rng.Int64N(int64(2*step) + 1)))
		b := &acc.Bills[min(i*months/n, months-1)]
		b.Transactions = append(b.Transactions, g.cardTransaction(when, b.DueDate, card))
	}
	return marshalData([]cardAccount{acc})
}

// genericItem stands for the contracts or positions of the products whose
// shape the reference does not show (loans, investments, ...).
type genericItem struct {
	ID              string `json:"id"`
	InstitutionCode string `json:"institutionCode"`
	Type            string `json:"type"`
	Status          string `json:"status"`
	ReferenceDate   string `json:"referenceDate"`
	ContractAmount  money  `json:"contractAmount"`
	Balance         money  `json:"balance"`
	Rate            string `json:"rate"`
}

// genericType names the kind of contract or position of a product.
func genericType(product string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(product, "pf_"), "pj_")
	switch rest {
	case "loans":
		return "EMPRESTIMO"
	case "financing":
		return "FINANCIAMENTO"
	case "unarranged_account_overdraft":
		return "CHEQUE_ESPECIAL"
	case "invoice_financing":
		return "DESCONTO_DUPLICATAS"
	case "bank_fixed_incomes":
		return "CDB"
	case "credit_fixed_incomes":
		return "DEBENTURE"
	case "variable_incomes":
		return "ACOES"
	case "treasure_titles":
		return "TESOURO_DIRETO"
	case "funds":
		return "FUNDO"
	case "balance":
		return "SALDO"
	}
	return "OUTROS"
}

// genericData is an array of about budget bytes of genericItem.
func genericData(budget int, seed int64, product, institution string) []byte {
	g := newDataGen(seed, institution)
	kind := genericType(product)
	item := func(i int) genericItem {
		return genericItem{
			ID:              g.id(),
			InstitutionCode: institution,
			Type:            kind,
			Status:          "ATIVO",
			ReferenceDate:   g.base.AddDate(0, 0, -i).Format(time.DateOnly),
			ContractAmount:  g.money(100000),
			Balance:         g.money(100000),
			Rate:            fmt.Sprintf("0.%06d", g.rng.IntN(1e6)),
		}
	}
	per := len(marshalIndented(item(0), "    ")) + 2
	n := max((budget-8)/per, 1)
	items := make([]genericItem, n)
	for i := range items {
		items[i] = item(i)
	}
	return marshalData(items)
}

// marshalData indents v as the value of a top-level member.
func marshalData(v any) []byte {
	return marshalIndented(v, "  ")
}

func marshalIndented(v any, prefix string) []byte {
	out, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		// Only the plain report structs are marshalled.
		panic("klavisim: encode report data: " + err.Error())
	}
	return out
}
