package linkstoretest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// MemoryStore keeps the link state in memory, with the same outcomes as
// linkstore.DynamoStore (the conformance suite in package linkstore holds
// both to them). It is safe for concurrent use; it is meant for unit tests
// and local runs.
type MemoryStore struct {
	opts options

	mu     sync.Mutex
	links  map[string]*memLink
	events map[string]time.Time // event id -> when it may be forgotten
	// changes are consent writes not yet handed to opts.consentChanges;
	// feeding is true while a goroutine is handing them over.
	changes []consentChange
	feeding bool
}

// consentChange is one consent write: old is nil for a new consent, new is
// nil for a deleted one.
type consentChange struct {
	linkID   string
	old, new *linkstore.Consent
}

// WithConsentChanges makes a MemoryStore call fn after every write to a
// consent, the way a DynamoDB table's stream reports every write to a
// consent item: a new consent (old nil), a status change, a claim's lease,
// a request id, and a purge (new nil, one call per consent). fn gets
// copies.
//
// Calls are made outside the store's lock, one at a time and in the order
// of the writes, so fn may call the store, even write to it. They are made
// by the goroutines of the store's callers: a call may come from the
// goroutine of a later write, after the write that made the change has
// returned, and that caller waits for fn, so fn should hand the change on
// rather than act on it. For DynamoStore, the table's stream plays this
// part.
func WithConsentChanges(fn func(linkID string, old, new *linkstore.Consent)) Option {
	return func(o *options) { o.consentChanges = fn }
}

// Option configures a MemoryStore.
type Option func(*options)

type options struct {
	reportGrace    time.Duration
	now            func() time.Time
	consentChanges func(linkID string, old, new *linkstore.Consent)
}

// WithReportGrace sets the AWAITING_REPORTS grace period, as
// linkstore.WithReportGrace does for DynamoStore.
func WithReportGrace(d time.Duration) Option { return func(o *options) { o.reportGrace = d } }

// WithClock sets the clock used for timestamps the caller did not give, as
// linkstore.WithClock does for DynamoStore.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func newOptions(opts []Option) options {
	o := options{reportGrace: linkstore.DefaultReportGrace, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// changed queues a consent write for opts.consentChanges. The caller holds
// m.mu.
func (m *MemoryStore) changed(linkID string, old *linkstore.Consent, new *linkstore.Consent) {
	if m.opts.consentChanges == nil {
		return
	}
	m.changes = append(m.changes, consentChange{linkID: linkID, old: old, new: new})
}

// feedChanges hands queued consent writes to opts.consentChanges. Every
// write method defers it, so it runs after m.mu is released. A goroutine
// that finds another one feeding leaves its changes to it, which keeps
// the calls in write order and lets fn write to the store.
func (m *MemoryStore) feedChanges() {
	fn := m.opts.consentChanges
	if fn == nil {
		return
	}
	m.mu.Lock()
	if m.feeding {
		m.mu.Unlock()
		return
	}
	m.feeding = true
	finished := false
	defer func() {
		if !finished { // fn panicked: let later writes be fed
			m.mu.Lock()
			m.feeding = false
			m.mu.Unlock()
		}
	}()
	for len(m.changes) > 0 {
		batch := m.changes
		m.changes = nil
		m.mu.Unlock()
		for _, c := range batch {
			fn(c.linkID, c.old, c.new)
		}
		m.mu.Lock()
	}
	// Under the same lock as the last check, so that a change queued
	// after it finds feeding false and feeds itself.
	m.feeding = false
	finished = true
	m.mu.Unlock()
}

type memLink struct {
	link     linkstore.Link // without parts
	consents map[string]linkstore.Consent
	requests map[string]linkstore.ReportRequest
	reports  map[string]linkstore.Report
	attn     linkstore.AttentionKind
	attnDue  time.Time
	// manual holds the manual requests' cool-downs: ManualRequestKey ->
	// until.
	manual map[string]time.Time
}

// NewMemory returns an empty MemoryStore.
func NewMemory(opts ...Option) *MemoryStore {
	return &MemoryStore{
		opts:   newOptions(opts),
		links:  make(map[string]*memLink),
		events: make(map[string]time.Time),
	}
}

func newMemLink(id string) *memLink {
	return &memLink{
		link:     linkstore.Link{LinkID: id, TaxIDType: linkstore.TaxIDUnknown},
		consents: make(map[string]linkstore.Consent),
		requests: make(map[string]linkstore.ReportRequest),
		reports:  make(map[string]linkstore.Report),
		manual:   make(map[string]time.Time),
	}
}

// CreateLink stores a new link. It fails with ErrDuplicate when the id
// exists, unless that link was only seen in an event so far: then it takes
// it over.
func (m *MemoryStore) CreateLink(_ context.Context, l linkstore.Link) error {
	if l.LinkID == "" {
		return fmt.Errorf("create link: %w", linkstore.ErrEmptyID)
	}
	l = cloneLink(l.WithDefaults(m.opts.now()))
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[l.LinkID]
	if ok && !adoptable(ml.link) {
		return fmt.Errorf("create link %s: %w", l.LinkID, linkstore.ErrDuplicate)
	}
	if !ok {
		ml = newMemLink(l.LinkID)
		m.links[l.LinkID] = ml
	}
	applyCreate(&ml.link, l)
	if ml.attn == "" && !l.ExpiresAt.IsZero() {
		ml.attn, ml.attnDue = linkstore.AwaitingConsent, l.ExpiresAt
	}
	return nil
}

// GetLink returns the link with all its parts.
func (m *MemoryStore) GetLink(_ context.Context, linkID string) (*linkstore.Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	if !ok {
		return nil, fmt.Errorf("get link %s: %w", linkID, linkstore.ErrNotFound)
	}
	l := ml.full()
	return &l, nil
}

// full returns a deep copy of the link with its parts in order.
func (ml *memLink) full() linkstore.Link {
	l := cloneLink(ml.link)
	for _, c := range ml.consents {
		l.Consents = append(l.Consents, c)
	}
	for _, r := range ml.requests {
		l.ReportRequests = append(l.ReportRequests, cloneRequest(r))
	}
	for _, r := range ml.reports {
		l.Reports = append(l.Reports, r)
	}
	sortParts(&l)
	return l
}

// ApplyEvent records an event and applies what it changes.
func (m *MemoryStore) ApplyEvent(_ context.Context, e linkstore.EventChange) (linkstore.Outcome, error) {
	defer m.feedChanges()
	e = e.Normalized(m.opts.now)
	if e.EventID == "" {
		return "", fmt.Errorf("apply event: %w", linkstore.ErrEmptyID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if forgetAt, ok := m.events[e.EventID]; ok && e.ReceivedAt.Before(forgetAt) {
		return linkstore.Duplicate, nil
	}
	m.events[e.EventID] = e.ReceivedAt.Add(e.EventTTL)
	if e.IsUnplacedDeletion() {
		m.events[e.EventID] = time.Time{}.AddDate(9999, 0, 0) // kept for good
	}

	if e.LinkID == "" {
		return linkstore.Recorded, nil
	}
	ml, ok := m.links[e.LinkID]
	if ok && !ml.link.PurgedAt.IsZero() {
		return linkstore.Recorded, nil
	}
	consentChange := e.IsConsentChange()
	if consentChange && ok {
		if c, seen := ml.consents[e.ConsentID]; seen && !eventWins(e, c) {
			return linkstore.Stale, nil
		}
	}
	if !ok {
		ml = newMemLink(e.LinkID)
		m.links[e.LinkID] = ml
	}
	applyEventToLink(&ml.link, cloneEvent(e))
	if e.DeletesLink() {
		ml.link.Pending = linkstore.PendingWork{Work: linkstore.WorkPurge, At: e.ReceivedAt}
		ml.attn, ml.attnDue = linkstore.PendingWorkDue, e.ReceivedAt
		return linkstore.Applied, nil
	}
	if !consentChange {
		return linkstore.Recorded, nil
	}
	c, seen := ml.consents[e.ConsentID]
	old := ptrIf(c, seen)
	c.ConsentID, c.Status, c.EventTime, c.UpdatedAt = e.ConsentID, e.ConsentStatus, e.EventTime, e.ReceivedAt
	if e.InstitutionCode != "" {
		c.InstitutionCode = e.InstitutionCode
	}
	ml.consents[e.ConsentID] = c
	m.changed(e.LinkID, old, &c)
	if c.Status == klavi.ConsentAuthorised {
		ml.attn, ml.attnDue = linkstore.AwaitingReports, e.ReceivedAt.Add(m.opts.reportGrace)
	}
	return linkstore.Applied, nil
}

// ClaimAutoRequest claims the consent's automatic report request until
// now+lease.
func (m *MemoryStore) ClaimAutoRequest(_ context.Context, linkID, consentID string, lease time.Duration, now time.Time) error {
	defer m.feedChanges()
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	if !ok {
		return fmt.Errorf("claim consent %s/%s: %w", linkID, consentID, linkstore.ErrNotFound)
	}
	c, ok := ml.consents[consentID]
	if !ok {
		return fmt.Errorf("claim consent %s/%s: %w", linkID, consentID, linkstore.ErrNotFound)
	}
	if err := claimError(c, now); err != nil {
		return fmt.Errorf("claim consent %s/%s: %w", linkID, consentID, err)
	}
	old := c
	c.LeaseUntil = stored(now.Add(lease))
	ml.consents[consentID] = c
	m.changed(linkID, &old, &c)
	return nil
}

// RecordReportRequest stores a report request and, for an automatic one,
// marks its consent as done.
func (m *MemoryStore) RecordReportRequest(_ context.Context, linkID string, r linkstore.ReportRequest) error {
	defer m.feedChanges()
	if r.RequestID == "" {
		return fmt.Errorf("record report request for link %s: %w", linkID, linkstore.ErrEmptyID)
	}
	r = cloneRequest(r)
	r.RequestedAt = stored(orNow(r.RequestedAt, m.opts.now))
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, err := m.writableLink(linkID)
	if err == nil && ml.requests[r.RequestID].RequestID != "" {
		err = linkstore.ErrDuplicate
	}
	var c linkstore.Consent
	if err == nil && setsConsentRequest(r) {
		var ok bool
		if c, ok = ml.consents[r.ConsentID]; !ok {
			err = linkstore.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("record report request %s for link %s: %w", r.RequestID, linkID, err)
	}
	ml.requests[r.RequestID] = r
	ml.link.UpdatedAt = r.RequestedAt
	if setsConsentRequest(r) {
		old := c
		c.RequestID, c.LeaseUntil = r.RequestID, time.Time{}
		ml.consents[r.ConsentID] = c
		m.changed(linkID, &old, &c)
	}
	return nil
}

// RecordReport stores a received report's metadata once. Like
// DynamoStore's, it leaves the link's attention entry alone.
func (m *MemoryStore) RecordReport(_ context.Context, linkID string, r linkstore.Report) error {
	if r.ProductReportID == "" {
		return fmt.Errorf("record report for link %s: %w", linkID, linkstore.ErrEmptyID)
	}
	r.ReceivedAt = stored(orNow(r.ReceivedAt, m.opts.now))
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, err := m.writableLink(linkID)
	if err == nil && ml.reports[r.ProductReportID].ProductReportID != "" {
		err = linkstore.ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("record report %s for link %s: %w", r.ProductReportID, linkID, err)
	}
	ml.reports[r.ProductReportID] = r
	ml.link.UpdatedAt = r.ReceivedAt
	return nil
}

// writableLink returns the link if new parts may be stored for it. The
// caller holds m.mu.
func (m *MemoryStore) writableLink(linkID string) (*memLink, error) {
	ml, ok := m.links[linkID]
	switch {
	case !ok:
		return nil, linkstore.ErrNotFound
	case !ml.link.PurgedAt.IsZero():
		return nil, linkstore.ErrPurged
	default:
		return ml, nil
	}
}

// Purge deletes what the store holds about the link's user and keeps a
// tombstone (dates, reason, owner). It returns the link as it was.
func (m *MemoryStore) Purge(_ context.Context, linkID string, now time.Time) (*linkstore.Link, error) {
	defer m.feedChanges()
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	if !ok {
		return nil, fmt.Errorf("purge link %s: %w", linkID, linkstore.ErrNotFound)
	}
	was := ml.full()
	tomb := newMemLink(linkID)
	tomb.link.CreatedAt, tomb.link.ExpiresAt = was.CreatedAt, was.ExpiresAt
	tomb.link.Owner = was.Owner
	tomb.link.UpdatedAt = stored(now)
	tomb.link.PurgedAt = was.PurgedAt
	if tomb.link.PurgedAt.IsZero() {
		tomb.link.PurgedAt = stored(now)
	}
	tomb.link.PurgeReason = purgeReason(was)
	m.links[linkID] = tomb
	for _, c := range was.Consents { // in ConsentID order
		m.changed(linkID, &c, nil)
	}
	return &was, nil
}

// RequestDeletion records that the fintech asked for the link's deletion,
// as DynamoStore's does.
func (m *MemoryStore) RequestDeletion(_ context.Context, linkID string, now time.Time) error {
	if linkID == "" {
		return fmt.Errorf("request deletion: %w", linkstore.ErrEmptyID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, err := m.writableLink(linkID)
	if err != nil {
		return fmt.Errorf("request deletion of link %s: %w", linkID, err)
	}
	ml.link.PurgeReason = linkstore.PurgeDeletedByRequest
	ml.attn, ml.attnDue = linkstore.DeletionRequested, stored(now)
	return nil
}

// ClaimRevoke claims the consent's revocation until now+lease, as
// DynamoStore's does.
func (m *MemoryStore) ClaimRevoke(_ context.Context, linkID, consentID string, lease time.Duration, now time.Time) error {
	defer m.feedChanges()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ml, err := m.consent(linkID, consentID)
	if err == nil {
		err = revokeClaimError(c, now)
	}
	if err != nil {
		return fmt.Errorf("claim revoke of consent %s/%s: %w", linkID, consentID, err)
	}
	old := c
	c.RevokeLeaseUntil = stored(now.Add(lease))
	ml.consents[consentID] = c
	m.changed(linkID, &old, &c)
	return nil
}

// RecordRevoke records that Klavi accepted the consent's revocation and
// ends the claim, as DynamoStore's does.
func (m *MemoryStore) RecordRevoke(_ context.Context, linkID, consentID string, at time.Time) error {
	defer m.feedChanges()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ml, err := m.consent(linkID, consentID)
	if err != nil {
		return fmt.Errorf("record revoke of consent %s/%s: %w", linkID, consentID, err)
	}
	old := c
	if c.RevokeRequestedAt.IsZero() {
		c.RevokeRequestedAt = stored(at)
	}
	c.RevokeLeaseUntil = time.Time{}
	ml.consents[consentID] = c
	m.changed(linkID, &old, &c)
	return nil
}

// consent returns a consent and its link, or ErrNotFound. The caller holds
// m.mu.
func (m *MemoryStore) consent(linkID, consentID string) (linkstore.Consent, *memLink, error) {
	ml, ok := m.links[linkID]
	if !ok {
		return linkstore.Consent{}, nil, linkstore.ErrNotFound
	}
	c, ok := ml.consents[consentID]
	if !ok {
		return linkstore.Consent{}, nil, linkstore.ErrNotFound
	}
	return c, ml, nil
}

// ListAttention returns up to limit links of the kind due before before,
// earliest first; limit <= 0 means all.
func (m *MemoryStore) ListAttention(_ context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error) {
	before = stored(before)
	m.mu.Lock()
	var out []linkstore.Attention
	for id, ml := range m.links {
		if ml.attn == kind && ml.attnDue.Before(before) {
			out = append(out, linkstore.Attention{LinkID: id, Kind: kind, Due: ml.attnDue})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b linkstore.Attention) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.LinkID, b.LinkID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ClearAttention takes the link off the reconciliation list if its entry
// is still due at seenDue, as DynamoStore's does.
func (m *MemoryStore) ClearAttention(_ context.Context, linkID string, seenDue time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	var err error
	switch {
	case !ok:
		err = linkstore.ErrNotFound
	case ml.attn == "": // already off the list
	case !ml.attnDue.Equal(stored(seenDue)):
		err = linkstore.ErrAttentionChanged
	default:
		ml.attn, ml.attnDue = "", time.Time{}
		ml.link.Pending = linkstore.PendingWork{}
	}
	if err != nil {
		return fmt.Errorf("clear attention of link %s: %w", linkID, err)
	}
	return nil
}

// MarkPending leaves a durable mark of work to be done on the link, as
// DynamoStore's does.
func (m *MemoryStore) MarkPending(_ context.Context, linkID string, w linkstore.PendingWork) error {
	w.At = stored(w.At)
	if w.At.IsZero() {
		w.At = stored(m.opts.now())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	switch {
	case !ok:
		return fmt.Errorf("mark %s pending on link %s: %w", w.Work, linkID, linkstore.ErrNotFound)
	case w.Work != linkstore.WorkPurge && !ml.link.PurgedAt.IsZero():
		return nil
	case !linkstore.MarkReplaces(ml.link.Pending.Work, w.Work):
		return nil
	}
	ml.link.Pending = w
	ml.attn, ml.attnDue = linkstore.PendingWorkDue, w.At
	return nil
}

// ptrIf returns a pointer to a copy of c when ok, else nil.
func ptrIf(c linkstore.Consent, ok bool) *linkstore.Consent {
	if !ok {
		return nil
	}
	return &c
}

func cloneLink(l linkstore.Link) linkstore.Link {
	l.ExternalInfo = slices.Clone(l.ExternalInfo)
	l.Consents = slices.Clone(l.Consents)
	l.ReportRequests = slices.Clone(l.ReportRequests)
	for i, r := range l.ReportRequests {
		l.ReportRequests[i] = cloneRequest(r)
	}
	l.Reports = slices.Clone(l.Reports)
	return l
}

// cloneRequest copies r; no products is always nil, as DynamoStore reads it.
func cloneRequest(r linkstore.ReportRequest) linkstore.ReportRequest {
	if len(r.Products) == 0 {
		r.Products = nil
	}
	r.Products = slices.Clone(r.Products)
	return r
}

func cloneEvent(e linkstore.EventChange) linkstore.EventChange {
	e.ExternalInfo = slices.Clone(e.ExternalInfo)
	return e
}

// CheckLink tells whether the link exists and may still receive data: nil,
// ErrNotFound, or ErrPurged.
func (m *MemoryStore) CheckLink(_ context.Context, linkID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ml, ok := m.links[linkID]
	switch {
	case !ok:
		return fmt.Errorf("check link %s: %w", linkID, linkstore.ErrNotFound)
	case !ml.link.PurgedAt.IsZero():
		return fmt.Errorf("check link %s: %w", linkID, linkstore.ErrPurged)
	}
	return nil
}

// ClaimManualRequest claims the manual report request of the consent for
// products until now+cooldown; see linkstore.DynamoStore.
func (m *MemoryStore) ClaimManualRequest(_ context.Context, linkID, consentID string, products []string, cooldown time.Duration, now time.Time) error {
	if linkID == "" || consentID == "" {
		return fmt.Errorf("claim manual request for link %s: %w", linkID, linkstore.ErrEmptyID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := linkstore.ManualRequestKey(consentID, products)
	ml, err := m.writableLink(linkID)
	if err != nil {
		return fmt.Errorf("claim manual request %s of link %s: %w", key, linkID, err)
	}
	now = stored(now)
	if until, ok := ml.manual[key]; ok && until.After(now) {
		return fmt.Errorf("claim manual request %s of link %s: %w", key, linkID, &linkstore.CooldownError{Until: until})
	}
	ml.manual[key] = stored(now.Add(cooldown))
	return nil
}

// ReleaseManualRequest ends the claim taken until until; see
// linkstore.DynamoStore.
func (m *MemoryStore) ReleaseManualRequest(_ context.Context, linkID, consentID string, products []string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := linkstore.ManualRequestKey(consentID, products)
	if ml, ok := m.links[linkID]; ok && ml.manual[key].Equal(stored(until)) {
		delete(ml.manual, key)
	}
	return nil
}
