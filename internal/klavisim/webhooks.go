package klavisim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// defaultPartnerAppID is the partnerAppId of the reference's examples.
const defaultPartnerAppID = "12345678"

// Klavi's delivery policy (reference §3).
const (
	defaultDeliveryTimeout = 10 * time.Second
	defaultRetries         = 5
	defaultBackoff         = 250 * time.Millisecond
	defaultMaxRedirects    = 3

	// maxBackoff caps the doubling, which only matters for odd policies.
	maxBackoff = time.Hour
	// maxAnswerBytes is how much of a partner's answer is read before the
	// connection is reused; the answer itself is ignored.
	maxAnswerBytes = 64 << 10
)

// DeliveryPolicy is how webhooks are POSTed. Zero fields take Klavi's
// values.
type DeliveryPolicy struct {
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Retries is how many times a failed delivery is sent again (default
	// 5, so 6 attempts); negative means none.
	Retries int
	// Backoff is the wait before the first retry, doubled before each
	// further one (default 250ms).
	Backoff time.Duration
	// MaxRedirects is how many redirects one attempt follows (default 3);
	// negative means none. A redirect beyond it counts as the answer, so
	// the attempt fails with its 3xx status.
	MaxRedirects int
}

func (p DeliveryPolicy) withDefaults() DeliveryPolicy {
	if p.Timeout <= 0 {
		p.Timeout = defaultDeliveryTimeout
	}
	switch {
	case p.Retries == 0:
		p.Retries = defaultRetries
	case p.Retries < 0:
		p.Retries = 0
	}
	if p.Backoff <= 0 {
		p.Backoff = defaultBackoff
	}
	switch {
	case p.MaxRedirects == 0:
		p.MaxRedirects = defaultMaxRedirects
	case p.MaxRedirects < 0:
		p.MaxRedirects = 0
	}
	return p
}

// backoff is the wait before retry n (1-based).
func (p DeliveryPolicy) backoff(n int) time.Duration {
	d := p.Backoff
	for range n - 1 {
		if d >= maxBackoff/2 {
			return maxBackoff
		}
		d *= 2
	}
	return d
}

// DeliveryKind says what a Delivery carried.
type DeliveryKind string

// Kinds of Delivery.
const (
	DeliveryEvent  DeliveryKind = "event"
	DeliveryReport DeliveryKind = "report"
)

// Outcome is how a delivery ended.
type Outcome string

// Outcomes of a delivery. A delivery's last record carries one; earlier
// attempts have none.
const (
	OutcomeDelivered Outcome = "delivered"
	// OutcomeGaveUp: every attempt failed.
	OutcomeGaveUp Outcome = "gave_up"
	// OutcomeDropped: Chaos.DropForever; nothing was sent.
	OutcomeDropped Outcome = "dropped"
	// OutcomeCancelled: Close stopped it.
	OutcomeCancelled Outcome = "cancelled"
)

// Delivery records one attempt to POST a webhook, or a delivery that made
// no attempt (Attempt 0: dropped by chaos or cancelled by Close).
type Delivery struct {
	// Seq numbers the delivery; all its attempts share it.
	Seq int
	// Copy is 0, or 1.. for the extra copies of Chaos.Duplicate, which
	// are deliveries of their own.
	Copy   int
	Kind   DeliveryKind
	URL    string
	Name   string // eventName or productName
	ID     string // eventId or productReportId
	LinkID string
	// Attempt is 1 for the first POST, 2 for the first retry, ...
	Attempt int
	// Status is the partner's HTTP status, 0 when there was none.
	Status int
	// Err is the transport error, or why nothing was sent.
	Err string
	// Size and SHA256 (lower-case hex) describe the body sent.
	Size   int
	SHA256 string
	// Body is the body sent, for events only: reports are megabytes.
	Body []byte
	// Time is when the attempt started, by Options.Now.
	Time time.Time
	// Outcome is set on the delivery's last record only.
	Outcome Outcome
}

// job is one webhook to deliver.
type job struct {
	kind   DeliveryKind
	url    string
	name   string
	id     string
	linkID string
	body   []byte
	sum    string
}

func newJob(kind DeliveryKind, url, name, id, linkID string, body []byte) *job {
	sum := sha256.Sum256(body)
	return &job{kind: kind, url: url, name: name, id: id, linkID: linkID, body: body, sum: hex.EncodeToString(sum[:])}
}

// lane delivers the events of one link in order, one at a time, as long
// as chaos does not reorder them.
type lane struct {
	pending []*job
	held    []*job // held back by Chaos.OutOfOrder
	gen     int    // counts releases of held, to ignore stale timers
	timer   *time.Timer
	running bool
}

// hooks is the background side of the simulator: webhook deliveries and
// report generation.
type hooks struct {
	client *http.Client
	policy DeliveryPolicy
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	cond      *sync.Cond // signalled when busy drops or events are held
	eventURL  string
	reportURL string
	chaos     Chaos
	lanes     map[string]*lane
	busy      int // queued deliveries plus running report generations
	closed    bool
	seq       int
	apiSeq    int
	log       []Delivery
}

func newHooks(o Options) *hooks {
	policy := o.Delivery.withDefaults()
	transport := o.WebhookTransport
	if transport == nil {
		transport = http.DefaultTransport
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &hooks{
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(_ *http.Request, via []*http.Request) error {
				if len(via) > policy.MaxRedirects {
					return http.ErrUseLastResponse
				}
				return nil
			},
		},
		policy:    policy,
		ctx:       ctx,
		cancel:    cancel,
		eventURL:  o.EventWebhookURL,
		reportURL: o.ReportWebhookURL,
		chaos:     o.Chaos,
		lanes:     map[string]*lane{},
	}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// SetEventWebhookURL sets the partner's event webhook URL; "" stops event
// deliveries. Events already queued keep their URL.
func (s *Simulator) SetEventWebhookURL(u string) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.eventURL = u
}

// SetReportWebhookURL sets the global report webhook URL (Klavi console).
func (s *Simulator) SetReportWebhookURL(u string) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.reportURL = u
}

// Deliveries returns copies of the webhook delivery records, in the order
// they were made.
func (s *Simulator) Deliveries() []Delivery {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	out := make([]Delivery, len(s.hooks.log))
	for i, d := range s.hooks.log {
		d.Body = slices.Clone(d.Body)
		out[i] = d
	}
	return out
}

// Wait returns once every queued delivery and report generation has
// finished. Events held back by Chaos.OutOfOrder are released at once
// rather than at the end of their window.
func (s *Simulator) Wait() {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		for key := range h.lanes {
			s.releaseLocked(key)
		}
		if h.busy == 0 {
			return
		}
		h.cond.Wait()
	}
}

// Close cancels the deliveries in flight (their last record says
// OutcomeCancelled), starts no new background work and waits for what is
// running to stop. The API keeps answering.
func (s *Simulator) Close() {
	s.hooks.mu.Lock()
	s.hooks.closed = true
	s.hooks.mu.Unlock()
	s.hooks.cancel()
	s.Wait()
}

// startWork counts a unit of background work; it fails after Close.
func (s *Simulator) startWork() bool {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.busy++
	return true
}

func (s *Simulator) endWork() {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	h.busy--
	h.cond.Broadcast()
}

func (s *Simulator) currentChaos() Chaos {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.chaos
}

// Event bodies (reference §3): a one-element array of the envelope.

type eventEnvelope struct {
	PartnerAppID string          `json:"partnerAppId"`
	EventID      string          `json:"eventId"`
	EventType    string          `json:"eventType"`
	EventName    string          `json:"eventName"`
	EventTime    string          `json:"eventTime"`
	Payload      any             `json:"payload"`
	ExternalInfo json.RawMessage `json:"externalInfo"`
}

type linkPayload struct {
	PersonalTaxID string `json:"personalTaxId"`
	BusinessTaxID string `json:"businessTaxId"`
	LinkID        string `json:"linkId"`
}

type consentRef struct {
	ConsentID       string `json:"consentId"`
	ExternalTrackID string `json:"externalTrackId"`
	InstitutionCode string `json:"institutionCode"`
}

type consentPayload struct {
	PersonalTaxID string     `json:"personalTaxId"`
	BusinessTaxID string     `json:"businessTaxId"`
	LinkID        string     `json:"linkId"`
	Consents      consentRef `json:"consents"`
}

// productPayload's fields beyond the tax ids and linkId are not in the
// reference (its product event examples were unreadable); they are the
// ones a partner needs and the names klavievent reads.
type productPayload struct {
	PersonalTaxID   string   `json:"personalTaxId"`
	BusinessTaxID   string   `json:"businessTaxId"`
	LinkID          string   `json:"linkId"`
	RequestID       string   `json:"requestId"`
	InstitutionCode string   `json:"institutionCode,omitempty"`
	ProductNames    []string `json:"productNames,omitempty"`
	ProductName     string   `json:"productName,omitempty"`
	ProductReportID string   `json:"productReportId,omitempty"`
}

// eventBody builds the webhook body of ev and returns it with its eventId
// and linkId.
func (s *Simulator) eventBody(ev Event) (body []byte, eventID, linkID string) {
	var payload any
	externalInfo := json.RawMessage(nil)
	if ev.Link != nil {
		linkID = ev.Link.ID
		externalInfo = ev.Link.ExternalInfo
	}
	rr := ev.ReportRequest
	switch {
	case ev.Consent != nil:
		c := ev.Consent
		linkID = c.LinkID
		payload = consentPayload{
			PersonalTaxID: c.PersonalTaxID,
			BusinessTaxID: c.BusinessTaxID,
			LinkID:        c.LinkID,
			Consents: consentRef{
				ConsentID:       c.ID,
				ExternalTrackID: c.ExternalTrackID,
				InstitutionCode: c.InstitutionCode,
			},
		}
	case rr != nil:
		if rr.LinkID != "" {
			linkID = rr.LinkID
		}
		if len(rr.ExternalInfo) > 0 {
			externalInfo = rr.ExternalInfo
		}
		p := productPayload{LinkID: linkID, RequestID: rr.ID, InstitutionCode: rr.InstitutionCode}
		if rr.PersonType == PersonBusiness {
			p.BusinessTaxID = rr.TaxID
		} else {
			p.PersonalTaxID = rr.TaxID
		}
		if ev.ProductName != "" {
			p.ProductName = ev.ProductName
			p.ProductReportID = ev.ProductReportID
		} else {
			p.ProductNames = rr.Products
		}
		payload = p
	default:
		p := linkPayload{LinkID: linkID}
		if ev.Link != nil {
			p.PersonalTaxID = ev.Link.PersonalTaxID
			p.BusinessTaxID = ev.Link.BusinessTaxID
		}
		payload = p
	}
	if len(externalInfo) == 0 {
		externalInfo = json.RawMessage(`{}`)
	}

	// Events of the background report generation get ids derived from
	// their content, so that they do not depend on goroutine timing.
	var random string
	if rr != nil && ev.ProductName != "" {
		sum := hashParts(s.seed, "event", ev.Name, rr.ID, ev.ProductName)
		random = hex.EncodeToString(sum[:12])
	} else {
		random = s.ids.hex(12)
	}
	eventID = strconv.FormatInt(ev.Time.UnixMilli(), 10) + "-" + random

	env := []eventEnvelope{{
		PartnerAppID: s.partnerAppID,
		EventID:      eventID,
		EventType:    "api",
		EventName:    ev.Name,
		EventTime:    ev.Time.UTC().Format(timeLayout),
		Payload:      payload,
		ExternalInfo: externalInfo,
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Like JSON.stringify, which Klavi's own sample uses: no \u003c.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		// Only plain strings and compacted objects are encoded.
		panic("klavisim: encode event body: " + err.Error())
	}
	body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if s.signCompact {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "", "  "); err == nil {
			body = pretty.Bytes()
		}
	}
	return body, eventID, linkID
}

// queueEventWebhook is the observer that turns events into deliveries.
func (s *Simulator) queueEventWebhook(ev Event) {
	s.hooks.mu.Lock()
	u := s.hooks.eventURL
	s.hooks.mu.Unlock()
	if u == "" {
		return
	}
	body, id, linkID := s.eventBody(ev)
	key := "link:" + linkID
	if linkID == "" {
		key = "event:" + id
	}
	s.enqueue(key, newJob(DeliveryEvent, u, ev.Name, id, linkID, body))
}

// enqueue adds an event delivery to its lane, or holds it back for
// reordering.
func (s *Simulator) enqueue(key string, j *job) {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.busy++
	l := h.lanes[key]
	if l == nil {
		l = &lane{}
		h.lanes[key] = l
	}
	if window := h.chaos.OutOfOrder; window > 0 {
		l.held = append(l.held, j)
		if l.timer == nil {
			gen := l.gen
			l.timer = time.AfterFunc(window, func() {
				h.mu.Lock()
				defer h.mu.Unlock()
				if h.lanes[key] == l && l.gen == gen {
					s.releaseLocked(key)
				}
			})
		}
		// Wait releases held events; wake it.
		h.cond.Broadcast()
		return
	}
	l.pending = append(l.pending, j)
	s.kickLocked(key, l)
}

// releaseLocked moves a lane's held events, reordered, to its queue.
func (s *Simulator) releaseLocked(key string) {
	l := s.hooks.lanes[key]
	if l == nil || len(l.held) == 0 {
		return
	}
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.gen++
	l.pending = append(l.pending, reorder(s.seed, l.held)...)
	l.held = nil
	s.kickLocked(key, l)
}

func (s *Simulator) kickLocked(key string, l *lane) {
	if l.running || len(l.pending) == 0 {
		return
	}
	l.running = true
	go s.runLane(key, l)
}

// runLane delivers a lane's queue in order and exits when it is empty.
func (s *Simulator) runLane(key string, l *lane) {
	h := s.hooks
	for {
		h.mu.Lock()
		if len(l.pending) == 0 {
			l.running = false
			if len(l.held) == 0 && h.lanes[key] == l {
				delete(h.lanes, key)
			}
			h.mu.Unlock()
			return
		}
		j := l.pending[0]
		l.pending[0] = nil
		l.pending = l.pending[1:]
		ch := h.chaos
		h.mu.Unlock()

		s.deliver(j, ch)
		s.endWork()
	}
}

// deliver sends j and its chaos copies, concurrently, and returns when all
// have ended.
func (s *Simulator) deliver(j *job, ch Chaos) {
	copies := 1 + max(ch.Duplicate, 0)
	if copies == 1 {
		s.deliverCopy(j, 0, ch)
		return
	}
	var wg sync.WaitGroup
	for c := range copies {
		wg.Go(func() { s.deliverCopy(j, c, ch) })
	}
	wg.Wait()
}

// deliverCopy runs one delivery to its outcome under the retry policy.
func (s *Simulator) deliverCopy(j *job, copyN int, ch Chaos) {
	h := s.hooks
	base := Delivery{
		Copy: copyN, Kind: j.kind, URL: j.url, Name: j.name, ID: j.id, LinkID: j.linkID,
		Size: len(j.body), SHA256: j.sum,
	}
	if j.kind == DeliveryEvent {
		base.Body = j.body
	}
	h.mu.Lock()
	h.seq++
	base.Seq = h.seq
	h.mu.Unlock()

	key := string(j.kind) + "/" + j.id + "/" + strconv.Itoa(copyN)
	if chance(s.seed, ch.DropForever, "drop-forever", key) {
		d := base
		d.Time, d.Err, d.Outcome = s.now(), "not sent: dropped by chaos", OutcomeDropped
		s.recordDelivery(d)
		return
	}
	dropFirst := chance(s.seed, ch.DropFirstAttempt, "drop-first", key)
	attempts := 1 + h.policy.Retries
	last := -1
	for a := 1; a <= attempts; a++ {
		if a > 1 && !sleepCtx(h.ctx, h.policy.backoff(a-1)) {
			s.setOutcome(last, OutcomeCancelled)
			return
		}
		if h.ctx.Err() != nil {
			d := base
			d.Time, d.Err, d.Outcome = s.now(), "not sent: simulator closed", OutcomeCancelled
			s.recordDelivery(d)
			return
		}
		d := base
		d.Attempt, d.Time = a, s.now()
		if a == 1 && dropFirst {
			d.Err = "not sent: first attempt dropped by chaos"
		} else {
			status, err := s.post(j)
			d.Status = status
			if err != nil {
				d.Err = err.Error()
			}
		}
		ok := d.Status >= 200 && d.Status < 300
		switch {
		case ok:
			d.Outcome = OutcomeDelivered
		case a == attempts:
			d.Outcome = OutcomeGaveUp
		}
		last = s.recordDelivery(d)
		if ok {
			return
		}
	}
}

func (s *Simulator) recordDelivery(d Delivery) int {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.log = append(s.hooks.log, d)
	return len(s.hooks.log) - 1
}

func (s *Simulator) setOutcome(i int, o Outcome) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if i >= 0 && i < len(s.hooks.log) {
		s.hooks.log[i].Outcome = o
	}
}

// post makes one attempt: the body, signed now, within the policy's
// timeout. It returns the partner's status.
func (s *Simulator) post(j *job) (int, error) {
	h := s.hooks
	ctx, cancel := context.WithTimeout(h.ctx, h.policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(j.body))
	if err != nil {
		return 0, err
	}
	secret := []byte(s.secretKey)
	at := s.now()
	sig, ts := webhooksig.Sign(secret, j.body, at)
	if s.signCompact {
		if csig, cts, err := webhooksig.SignCompact(secret, j.body, at); err == nil {
			sig, ts = csig, cts
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "klavisim")
	req.Header.Set(webhooksig.SignatureHeader, sig)
	req.Header.Set(webhooksig.TimestampHeader, ts)
	res, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxAnswerBytes))
	return res.StatusCode, nil
}

// sleepCtx waits d, or reports false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
