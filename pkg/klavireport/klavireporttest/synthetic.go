package klavireporttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// SyntheticOptions describes a synthetic report. Zero fields take defaults
// derived from Seed.
type SyntheticOptions struct {
	// Size is the approximate length of the body in bytes. The body is
	// never shorter than one account with one transaction.
	Size int
	// Seed makes the body reproducible: equal options give equal bytes.
	Seed int64
	// ProductName defaults to "pf_categorized_checking_l3".
	ProductName     string
	RequestID       string
	ProductReportID string
	LinkID          string
	// InstitutionCode defaults to "033".
	InstitutionCode string
	// EnquiryCPF defaults to a CPF with valid check digits.
	EnquiryCPF string
	// Code defaults to 200.
	Code int
	// ExternalInfo must be valid JSON; it defaults to an object with two
	// trace ids.
	ExternalInfo json.RawMessage
}

// Synthetic returns a realistic pretty-printed product report of about size
// bytes: the common-format envelope, then checkingAccounts with their
// transactionDetails (amounts as strings), then externalInfo last, so a
// reader of the envelope has to get past the whole product data. The same
// arguments always give the same bytes.
func Synthetic(size int, seed int64, productName string) []byte {
	return SyntheticWith(SyntheticOptions{Size: size, Seed: seed, ProductName: productName})
}

// SyntheticWith is Synthetic with control over the envelope's identifiers,
// for a simulator that must deliver reports for links it created. It panics
// when o.ExternalInfo is not valid JSON.
func SyntheticWith(o SyntheticOptions) []byte {
	g := newGenerator(o)
	return g.report()
}

const (
	indent       = "  "
	accountInset = indent + indent                // checkingAccounts elements
	txnInset     = accountInset + indent + indent // transactionDetails elements
	txnSep       = ",\n" + txnInset               // between two transactions
	accountClose = "\n" + accountInset + indent + "]\n" + accountInset + "}"
)

type generator struct {
	o    SyntheticOptions
	rng  *rand.Rand
	ext  []byte
	base time.Time
}

func newGenerator(o SyntheticOptions) *generator {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6b6c617669))
	g := &generator{o: o, rng: rng, base: time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)}
	if g.o.ProductName == "" {
		g.o.ProductName = "pf_categorized_checking_l3"
	}
	if g.o.RequestID == "" {
		g.o.RequestID = fmt.Sprintf("req-%012x", rng.Uint64()>>16)
	}
	if g.o.ProductReportID == "" {
		g.o.ProductReportID = g.uuid()
	}
	if g.o.LinkID == "" {
		g.o.LinkID = g.uuid()
	}
	if g.o.InstitutionCode == "" {
		g.o.InstitutionCode = "033"
	}
	if g.o.EnquiryCPF == "" {
		g.o.EnquiryCPF = g.cpf()
	}
	if g.o.Code == 0 {
		g.o.Code = 200
	}
	ext := g.o.ExternalInfo
	if ext == nil {
		ext = json.RawMessage(fmt.Sprintf(`{"myTraceId":"trace-%d","myUUID":%q}`, o.Seed, g.uuid()))
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, ext, indent, indent); err != nil {
		panic("klavireporttest: SyntheticOptions.ExternalInfo is not valid JSON")
	}
	g.ext = buf.Bytes()
	return g
}

type link struct {
	LinkID          string    `json:"linkId"`
	InstitutionCode string    `json:"institutionCode"`
	Consents        []consent `json:"consents"`
}

type consent struct {
	ConsentID   string                `json:"consentId"`
	Permissions map[string]permission `json:"permissions"`
}

type permission struct {
	PermissionsGranted bool     `json:"permissionsGranted"`
	AccountIDs         []string `json:"accountIds"`
}

type amount struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

type balances struct {
	AvailableAmount             amount `json:"availableAmount"`
	BlockedAmount               amount `json:"blockedAmount"`
	AutomaticallyInvestedAmount amount `json:"automaticallyInvestedAmount"`
}

type account struct {
	BrandName   string   `json:"brandName"`
	BacenName   string   `json:"bacenName"`
	CompeCode   string   `json:"compeCode"`
	CompanyCnpj string   `json:"companyCnpj"`
	BranchCode  string   `json:"branchCode"`
	Number      string   `json:"number"`
	CheckDigit  string   `json:"checkDigit"`
	Subtype     string   `json:"subtype"`
	CivilName   string   `json:"civilName"`
	Balances    balances `json:"balances"`
}

type transaction struct {
	TransactionDate                string `json:"transactionDate"`
	TransactionDateTime            string `json:"transactionDateTime"`
	TransactionID                  string `json:"transactionId"`
	CompletedAuthorisedPaymentType string `json:"completedAuthorisedPaymentType"`
	CreditDebitType                string `json:"creditDebitType"`
	TransactionAmount              amount `json:"transactionAmount"`
	TransactionName                string `json:"transactionName"`
	PartieCnpjCpf                  string `json:"partieCnpjCpf"`
	PartiePersonType               string `json:"partiePersonType"`
	PartieCompeCode                string `json:"partieCompeCode"`
	PartieBranchCode               string `json:"partieBranchCode"`
	PartieNumber                   string `json:"partieNumber"`
	PartieCheckDigit               string `json:"partieCheckDigit"`
	PostTransactionBalance         string `json:"postTransactionBalance"`
	Type                           string `json:"type"`
	Category                       string `json:"category"`
	Subcategory                    string `json:"subcategory"`
	ThirdCategory                  string `json:"thirdCategory"`
	FAll                           int    `json:"fAll"`
	FAllMonth                      int    `json:"fAllMonth"`
	FAllCmonth                     int    `json:"fAllCmonth"`
	SettlementType                 string `json:"settlementType"`
}

var institutions = map[string][2]string{
	"001": {"Banco do Brasil", "BANCO DO BRASIL S.A."},
	"033": {"Santander", "BANCO SANTANDER (BRASIL) S.A."},
	"104": {"CAIXA", "CAIXA ECONOMICA FEDERAL"},
	"260": {"Nubank", "NU PAGAMENTOS S.A."},
	"341": {"Itaú", "ITAÚ UNIBANCO S.A."},
}

type category struct{ name, sub, third string }

var categories = []category{
	{"Alimentação", "Supermercado", "Compras de mercado"},
	{"Alimentação", "Restaurantes", "Refeições fora de casa"},
	{"Transporte", "Combustível", "Posto de gasolina"},
	{"Transporte", "Aplicativos", "Corridas por aplicativo"},
	{"Moradia", "Aluguel", "Aluguel residencial"},
	{"Moradia", "Contas de consumo", "Energia elétrica"},
	{"Saúde", "Farmácia", "Medicamentos"},
	{"Lazer", "Streaming", "Assinaturas digitais"},
	{"Transferência", "PIX", "Transferência entre pessoas"},
	{"Renda", "Salário", "Salário mensal"},
}

var names = []string{"MARIA SILVA", "JOÃO SOUZA", "ANA OLIVEIRA", "PEDRO SANTOS", "LUCIANA COSTA", "CARLOS PEREIRA"}

var merchants = []string{"SUPERMERCADO BOM PREÇO", "POSTO SHELL AV PAULISTA", "DROGARIA SÃO PAULO", "RESTAURANTE SABOR DE MINAS", "NETFLIX.COM", "ENEL DISTRIBUIÇÃO SP"}

func (g *generator) report() []byte {
	var b bytes.Buffer
	b.Grow(g.o.Size + 8<<10)
	b.WriteString("{\n")
	g.field(&b, "code", g.o.Code)
	g.field(&b, "message", "ok")
	g.field(&b, "requestId", g.o.RequestID)
	g.field(&b, "productName", g.o.ProductName)
	g.field(&b, "productVersion", "V1")
	g.field(&b, "productReportId", g.o.ProductReportID)
	g.field(&b, "productReportTime", g.base.Format("2006-01-02T15:04:05"))
	g.field(&b, "enquiryCpf", g.o.EnquiryCPF)
	accounts := 1 + g.rng.IntN(3)
	accountIDs := make([]string, accounts)
	for i := range accountIDs {
		accountIDs[i] = fmt.Sprintf("%08d", g.rng.IntN(1e8))
	}
	g.field(&b, "links", []link{{
		LinkID:          g.o.LinkID,
		InstitutionCode: g.o.InstitutionCode,
		Consents: []consent{{
			ConsentID: g.uuid(),
			Permissions: map[string]permission{
				"ACCOUNTS_READ":              {PermissionsGranted: true, AccountIDs: accountIDs},
				"ACCOUNTS_BALANCES_READ":     {PermissionsGranted: true, AccountIDs: accountIDs},
				"ACCOUNTS_TRANSACTIONS_READ": {PermissionsGranted: true, AccountIDs: accountIDs},
				"REGISTRATION_ALL":           {PermissionsGranted: true, AccountIDs: []string{}},
			},
		}},
	}})
	b.WriteString(indent + `"checkingAccounts": [` + "\n")

	tail := len("\n" + indent + "],\n" + indent + `"externalInfo": ` + "\n}")
	tail += len(g.ext)
	start := b.Len()
	budget := max(g.o.Size-start-tail, 0)
	// Spread the transactions over about a year whatever the size.
	step := 365 * 24 * time.Hour / time.Duration(max(budget/1100, 1))
	when := g.base
	for a := range accounts {
		if a > 0 {
			b.WriteString(",\n")
		}
		b.WriteString(accountInset)
		b.Write(g.account(accountIDs[a]))
		b.WriteString(",\n" + accountInset + indent + `"transactionDetails": [` + "\n" + txnInset)
		target := start + budget*(a+1)/accounts
		for i := 0; ; i++ {
			when = when.Add(-time.Duration(g.rng.Int64N(int64(2*step) + 1)))
			txn := g.transaction(when)
			if i > 0 && b.Len()+len(txnSep)+len(txn)+len(accountClose) > target {
				break
			}
			if i > 0 {
				b.WriteString(txnSep)
			}
			b.Write(txn)
		}
		b.WriteString(accountClose)
	}
	b.WriteString("\n" + indent + "],\n" + indent + `"externalInfo": `)
	b.Write(g.ext)
	b.WriteString("\n}")
	return b.Bytes()
}

// field writes one top-level member followed by a comma.
func (g *generator) field(b *bytes.Buffer, key string, v any) {
	b.WriteString(indent)
	b.WriteString(fmt.Sprintf("%q: ", key))
	b.Write(g.marshal(v, indent))
	b.WriteString(",\n")
}

// account returns the account object without its closing line, ready for
// transactionDetails to be appended.
func (g *generator) account(id string) []byte {
	inst, ok := institutions[g.o.InstitutionCode]
	if !ok {
		inst = [2]string{"Banco " + g.o.InstitutionCode, "BANCO " + g.o.InstitutionCode + " S.A."}
	}
	acc := account{
		BrandName:   inst[0],
		BacenName:   inst[1],
		CompeCode:   g.o.InstitutionCode,
		CompanyCnpj: g.cnpj(),
		BranchCode:  fmt.Sprintf("%04d", g.rng.IntN(1e4)),
		Number:      id,
		CheckDigit:  fmt.Sprint(g.rng.IntN(10)),
		Subtype:     []string{"INDIVIDUAL", "CONJUNTA_SIMPLES", "CONJUNTA_SOLIDARIA"}[g.rng.IntN(3)],
		CivilName:   names[g.rng.IntN(len(names))],
		Balances: balances{
			AvailableAmount:             g.money(1e6),
			BlockedAmount:               g.money(1e3),
			AutomaticallyInvestedAmount: g.money(1e5),
		},
	}
	out := g.marshal(acc, accountInset)
	return out[:bytes.LastIndexByte(out, '\n')]
}

func (g *generator) transaction(when time.Time) []byte {
	c := categories[g.rng.IntN(len(categories))]
	credit := c.name == "Renda" || g.rng.IntN(5) == 0
	kind := []string{"PIX", "TED", "BOLETO", "CARTAO", "TARIFA_SERVICOS_AVULSOS"}[g.rng.IntN(5)]
	txn := transaction{
		TransactionDate:                when.Format(time.DateOnly),
		TransactionDateTime:            when.Format("2006-01-02T15:04:05.000Z"),
		TransactionID:                  g.uuid(),
		CompletedAuthorisedPaymentType: "TRANSACAO_EFETIVADA",
		CreditDebitType:                "DEBITO",
		TransactionAmount:              g.money(5e3),
		TransactionName:                merchants[g.rng.IntN(len(merchants))],
		PartieCnpjCpf:                  g.cnpj(),
		PartiePersonType:               "PESSOA_JURIDICA",
		PartieCompeCode:                fmt.Sprintf("%03d", g.rng.IntN(1000)),
		PartieBranchCode:               fmt.Sprintf("%04d", g.rng.IntN(1e4)),
		PartieNumber:                   fmt.Sprintf("%011d", g.rng.Int64N(1e11)),
		PartieCheckDigit:               fmt.Sprint(g.rng.IntN(10)),
		PostTransactionBalance:         g.money(1e5).Amount,
		Type:                           kind,
		Category:                       c.name,
		Subcategory:                    c.sub,
		ThirdCategory:                  c.third,
		FAll:                           g.rng.IntN(2),
		FAllMonth:                      g.rng.IntN(2),
		FAllCmonth:                     g.rng.IntN(2),
		SettlementType:                 kind,
	}
	if credit {
		txn.CreditDebitType = "CREDITO"
	}
	if c.name == "Transferência" || c.name == "Renda" {
		txn.TransactionName = "PIX RECEBIDO " + names[g.rng.IntN(len(names))]
		txn.PartieCnpjCpf = g.cpf()
		txn.PartiePersonType = "PESSOA_NATURAL"
	}
	return g.marshal(txn, txnInset)
}

func (g *generator) marshal(v any, prefix string) []byte {
	out, err := json.MarshalIndent(v, prefix, indent)
	if err != nil {
		// The generator only marshals its own plain structs.
		panic("klavireporttest: marshal synthetic report: " + err.Error())
	}
	return out
}

// money returns an amount below limit reais, with two or four decimals as
// Klavi sends them.
func (g *generator) money(limit int) amount {
	cents := g.rng.IntN(limit * 100)
	s := fmt.Sprintf("%d.%02d", cents/100, cents%100)
	if g.rng.IntN(2) == 0 {
		s += "00"
	}
	return amount{Amount: s, Currency: "BRL"}
}

func (g *generator) uuid() string {
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		hi>>32, hi>>16&0xffff, hi&0xfff, lo>>48&0x3fff|0x8000, lo&0xffffffffffff)
}

// cpf returns an 11-digit CPF with valid check digits.
func (g *generator) cpf() string {
	d := make([]int, 11)
	for {
		same := true
		for i := range 9 {
			d[i] = g.rng.IntN(10)
			same = same && d[i] == d[0]
		}
		if !same {
			break
		}
	}
	d[9] = checkDigit(d[:9], 10)
	d[10] = checkDigit(d[:10], 11)
	return digits(d)
}

// cnpj returns a 14-digit CNPJ with valid check digits.
func (g *generator) cnpj() string {
	d := make([]int, 14)
	for i := range 8 {
		d[i] = g.rng.IntN(10)
	}
	d[11] = 1 // branch 0001, the head office
	d[12] = cnpjDigit(d[:12])
	d[13] = cnpjDigit(d[:13])
	return digits(d)
}

func checkDigit(d []int, weight int) int {
	sum := 0
	for i, v := range d {
		sum += v * (weight - i)
	}
	r := sum * 10 % 11
	if r == 10 {
		return 0
	}
	return r
}

func cnpjDigit(d []int) int {
	sum := 0
	w := len(d) - 7
	for _, v := range d {
		sum += v * w
		w--
		if w < 2 {
			w = 9
		}
	}
	r := sum % 11
	if r < 2 {
		return 0
	}
	return 11 - r
}

func digits(d []int) string {
	b := make([]byte, len(d))
	for i, v := range d {
		b[i] = byte('0' + v)
	}
	return string(b)
}
