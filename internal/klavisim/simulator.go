package klavisim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	defaultTokenTTL = 30 * time.Minute
	defaultLinkTTL  = 30 * time.Minute

	// maxBodyBytes bounds request bodies; larger ones get 413. Klavi's own
	// limit is unknown, and no request our backend sends comes close.
	maxBodyBytes = 1 << 20
)

// DefaultProducts returns the products contracted when Options.Products is
// empty: "all" and the pf_/pj_ catalogue of the reference (§4).
func DefaultProducts() []string {
	return []string{
		"all",
		"pf_checking_account", "pf_savings_account", "pf_credit_card", "pf_balance",
		"pf_loans", "pf_financing", "pf_unarranged_account_overdraft", "pf_invoice_financing",
		"pf_bank_fixed_incomes", "pf_credit_fixed_incomes", "pf_variable_incomes",
		"pf_treasure_titles", "pf_funds",
		"pf_categorized_checking_l2", "pf_categorized_savings_l2", "pf_categorized_creditcard_l2",
		"pf_categorized_checking_l3", "pf_categorized_savings_l3", "pf_categorized_creditcard_l3",
		"pj_checking_account", "pj_savings_account", "pj_credit_card", "pj_balance",
		"pj_loans", "pj_financing", "pj_unarranged_account_overdraft", "pj_invoice_financing",
		"pj_bank_fixed_incomes", "pj_credit_fixed_incomes", "pj_variable_incomes",
		"pj_treasure_titles", "pj_funds",
		"pj_categorized_checking_l2", "pj_categorized_savings_l2", "pj_categorized_creditcard_l2",
		"pj_categorized_checking_l3", "pj_categorized_savings_l3", "pj_categorized_creditcard_l3",
	}
}

// Options configures a Simulator. The zero value works except that /auth
// then accepts no credentials.
type Options struct {
	// AccessKey and SecretKey are the only credentials /auth accepts.
	// SecretKey also keys webhook signatures.
	AccessKey, SecretKey string

	// TokenTTL is the lifetime of the access tokens it grants (default 30m).
	TokenTTL time.Duration

	// LinkTTL is the lifetime of links and link tokens (default 30m).
	LinkTTL time.Duration

	// PublicURL is the base of linkURL, e.g. the httptest server URL. When
	// empty, linkURL is built from the request's Host. See SetPublicURL.
	PublicURL string

	// Now is the clock for token, link and consent expiry (default
	// time.Now). Delays of failure rules use real time.
	Now func() time.Time

	// Products are the products "contracted"; requesting any other one is
	// business error 4002 (default DefaultProducts).
	Products []string

	// OnEvent, when set, sees every state change. It is called
	// synchronously, after the simulator's lock is released, from the
	// goroutine that made the change (an HTTP handler, a state method, or
	// the background report generation), so it may call the Simulator but
	// should not block.
	OnEvent func(Event)

	// EventWebhookURL is the partner's event webhook, as entered in
	// Klavi's console. When set, every event is POSTed there, signed (see
	// webhooks.go). See SetEventWebhookURL.
	EventWebhookURL string

	// PartnerAppID is the partnerAppId of event bodies (default
	// "12345678", the reference's example).
	PartnerAppID string

	// GenerateReports turns accepted report requests into product reports
	// POSTed to the request's, else the link's productsCallbackURL, else
	// ReportWebhookURL, with product_generated_* events. Off by default,
	// so that a simulator used only as a data API starts no background
	// work and POSTs nothing.
	GenerateReports bool

	// ReportWebhookURL is the global report webhook of Klavi's console,
	// used when neither the request nor the link routes a product. See
	// SetReportWebhookURL.
	ReportWebhookURL string

	// ReportSize gives the approximate body size in bytes of a product's
	// report (default DefaultReportSize for every product).
	ReportSize func(product string) int

	// Seed makes report data and chaos decisions reproducible. A non-zero
	// seed also makes the ids in webhook bodies and redirects (linkId,
	// consentId, externalTrackId, requestId, eventId, productReportId)
	// reproducible, so that two simulators given the same calls in the
	// same order send the same bytes.
	Seed int64

	// SignCompactVariant sends webhook bodies pretty-printed but signs
	// their compact form, the way Klavi's Node sample computes the
	// signature, to exercise a verifier's fallback.
	SignCompactVariant bool

	// Delivery is the webhook retry policy (default Klavi's).
	Delivery DeliveryPolicy

	// WebhookTransport carries webhook POSTs (default
	// http.DefaultTransport), e.g. an httptest TLS server's client
	// transport.
	WebhookTransport http.RoundTripper

	// Chaos misbehaves on purpose; see Chaos and SetChaos.
	Chaos Chaos
}

// Request is one request the simulator received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header // a copy
	Body     []byte      // at most maxBodyBytes
	// Status is the status answered, or 0 when no answer was written: the
	// connection was closed by a rule, or the client went away during a
	// rule's Delay.
	Status int
	Time   time.Time // arrival, by Options.Now
}

// Simulator is an in-memory Klavi data API. Create it with New; it is safe
// for concurrent use.
type Simulator struct {
	tokenTTL  time.Duration
	linkTTL   time.Duration
	accessKey string
	secretKey string
	now       func() time.Time
	products  map[string]bool
	routes    []route
	observers []func(Event)
	ids       *idSource
	seed      int64
	pages     *pageTemplates
	hooks     *hooks

	generateReports bool
	reportSize      func(product string) int
	partnerAppID    string
	signCompact     bool

	mu        sync.Mutex
	publicURL string
	tokens    map[string]time.Time // access token -> expiry
	state     state
	rules     []armedRule
	requests  []Request
}

// The simulator is served by httptest.NewServer and, later, a local server.
var _ http.Handler = (*Simulator)(nil)

// New returns a Simulator configured by o.
func New(o Options) *Simulator {
	s := &Simulator{
		tokenTTL:  o.TokenTTL,
		linkTTL:   o.LinkTTL,
		accessKey: o.AccessKey,
		secretKey: o.SecretKey,
		now:       o.Now,
		products:  map[string]bool{},
		publicURL: strings.TrimRight(o.PublicURL, "/"),
		tokens:    map[string]time.Time{},
		state:     newState(),
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = defaultTokenTTL
	}
	if s.linkTTL <= 0 {
		s.linkTTL = defaultLinkTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	products := o.Products
	if len(products) == 0 {
		products = DefaultProducts()
	}
	for _, p := range products {
		s.products[p] = true
	}
	s.ids = newIDSource(o.Seed)
	s.seed = o.Seed
	s.pages = newPageTemplates()
	s.generateReports = o.GenerateReports
	s.reportSize = o.ReportSize
	s.partnerAppID = o.PartnerAppID
	if s.partnerAppID == "" {
		s.partnerAppID = defaultPartnerAppID
	}
	s.signCompact = o.SignCompactVariant
	s.hooks = newHooks(o)
	s.routes = append(s.apiRoutes(), s.pageRoutes()...)
	// Webhook delivery first, so that product_request_received is queued
	// before report generation can queue product_generated_*.
	s.observers = append(s.observers, s.queueEventWebhook, s.startReports)
	if o.OnEvent != nil {
		s.observers = append(s.observers, o.OnEvent)
	}
	return s
}

// SetPublicURL sets the base of future linkURLs, for when the server URL is
// only known after the handler was built (httptest.NewServer(sim)).
func (s *Simulator) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publicURL = strings.TrimRight(u, "/")
}

// ServeHTTP records the request, applies an armed failure rule if one
// matches, and otherwise answers as Klavi would.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Time:     s.now(),
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	rec.Body = body

	if rule, ok := s.takeRule(r.Method, r.URL.Path); ok {
		handled := applyRule(w, r, rule, func(status int) {
			// Recorded before a hijacked connection is closed, so that a
			// client seeing the failure also sees the record.
			rec.Status = status
			s.record(rec)
		})
		if handled {
			return
		}
	}

	if status, handled := s.applyAPIChaos(w, r); handled {
		rec.Status = status
		s.record(rec)
		return
	}

	sw := &statusWriter{ResponseWriter: w}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(readErr, &tooLarge):
		writeError(sw, errStatus(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes)))
	case readErr != nil:
		writeError(sw, errStatus(http.StatusBadRequest, "request body could not be read"))
	default:
		s.serveAPI(sw, r, body)
	}
	rec.Status = sw.status
	s.record(rec)
}

// Requests returns a copy of the requests received since New or Reset, in
// arrival order.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// Reset clears the recorded requests and the armed failure rules. Links,
// consents, report requests and tokens stay.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.rules = nil
}

// ExpireTokens makes every access token granted so far invalid: the next call
// with one gets 401, as after Klavi's 30 minutes.
func (s *Simulator) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

func (s *Simulator) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// mintToken returns a new opaque access token. Earlier tokens stay valid
// until their own expiry: whether Klavi revokes them is unknown (§10.10).
func (s *Simulator) mintToken() string {
	tok := "simtok_" + rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = s.now().Add(s.tokenTTL)
	return tok
}

func (s *Simulator) tokenValid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	if !ok {
		return false
	}
	if !s.now().Before(exp) {
		delete(s.tokens, tok)
		return false
	}
	return true
}

// linkBaseURL is PublicURL, or the URL the request came in on.
func (s *Simulator) linkBaseURL(r *http.Request) string {
	s.mu.Lock()
	base := s.publicURL
	s.mu.Unlock()
	if base != "" {
		return base
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// emit hands events to the observers. Callers must not hold s.mu.
func (s *Simulator) emit(evs ...Event) {
	for _, ev := range evs {
		for _, o := range s.observers {
			o(ev)
		}
	}
}

// statusWriter remembers the status written, for the request record.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
