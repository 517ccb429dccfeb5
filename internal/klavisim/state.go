package klavisim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Event names, the eventName values of Klavi's event webhooks (§3).
const (
	EventLinkCreated             = "link_created"
	EventConsentAuthorised       = "consent_authorised"
	EventConsentError            = "consent_error"
	EventConsentRejected         = "consent_rejected"
	EventConsentExpired          = "consent_expired"
	EventConsentRevoked          = "consent_revoked"
	EventConsentDeletedByUser    = "consent_deleted_by_user"
	EventProductRequestReceived  = "product_request_received"
	EventProductGeneratedSuccess = "product_generated_success"
	EventProductGeneratedFailed  = "product_generated_failed"
)

// Report request levels and person types: the two parts of the request path.
const (
	LevelInstitution = "institution-data"
	LevelUser        = "user-data"
	PersonPersonal   = "personal"
	PersonBusiness   = "business"
)

// Errors of the state methods, for errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrLinkExpired    = errors.New("link expired")
	ErrNoTaxID        = errors.New("link has no tax id")
	ErrInstitution    = errors.New("institution code missing or not the link's")
	ErrInvalidStatus  = errors.New("invalid consent status")
	errNoConsent      = errors.New("no authorised consent matches")
	errConsentRevoked = errors.New("consent cannot be revoked")
)

// defaultPermissions are what a simulated consent asks for and gets.
func defaultPermissions() []string {
	return []string{"ACCOUNTS_ALL", "CREDIT_CARDS_ALL", "CREDIT_OPERATIONS_ALL", "REGISTRATION_ALL", "INVESTMENTS_ALL"}
}

// Link is a link created by POST /links.
type Link struct {
	ID                  string
	Token               string // linkToken
	URL                 string // linkURL
	PersonalTaxID       string
	BusinessTaxID       string
	Email               string
	Phone               string
	InstitutionCode     string
	RedirectURL         string
	ConnectionKey       string
	ApplicationLink     string
	AppLink             string
	AppRedirectURLKey   string
	ProductsCallbackURL map[string]string
	ExternalInfo        json.RawMessage // nil when not sent
	CreatedAt           time.Time
	ExpiresAt           time.Time
}

// Consent is one institution's consent given through a link.
type Consent struct {
	ID                 string
	LinkID             string
	ExternalTrackID    string
	PersonalTaxID      string // "" when unused, as Klavi sends it
	BusinessTaxID      string // "" when unused
	InstitutionCode    string
	Status             klavi.ConsentStatus
	PermissionsApply   []string
	PermissionsGranted []string
	ExpireAt           time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// ReportRequest is an accepted POST /{personal|business}/{institution|user}-data.
type ReportRequest struct {
	ID                  string // requestId
	Level               string // LevelInstitution or LevelUser
	PersonType          string // PersonPersonal or PersonBusiness
	TaxID               string
	InstitutionCode     string // "" on user-level requests
	LinkID              string
	ConsentIDs          []string // as requested
	Products            []string // as requested ("all" is not expanded)
	ProductsCallbackURL map[string]string
	ExternalInfo        json.RawMessage
	// MatchedConsentIDs are the AUTHORISED consents the reports draw from.
	MatchedConsentIDs []string
	CreatedAt         time.Time
}

// Event is a state change, named after the Klavi event webhook it will
// produce. Link is set on every event; Consent on consent_* events;
// ReportRequest on product_* events. They are copies. ProductName and
// ProductReportID are set on product_generated_* events (the report id
// only on success).
type Event struct {
	Name            string
	Time            time.Time
	Link            *Link
	Consent         *Consent
	ReportRequest   *ReportRequest
	ProductName     string
	ProductReportID string
}

// state is everything the simulator knows, guarded by Simulator.mu. Slices
// keep creation order, which the accessors and GET /consents return.
type state struct {
	links    []*Link
	linkByID map[string]*Link
	consents []*Consent
	byID     map[string]*Consent
	reports  []*ReportRequest
}

func newState() state {
	return state{linkByID: map[string]*Link{}, byID: map[string]*Consent{}}
}

// Links returns copies of every link, oldest first.
func (s *Simulator) Links() []Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Link, 0, len(s.state.links))
	for _, l := range s.state.links {
		out = append(out, cloneLink(l))
	}
	return out
}

// Link returns a copy of the link with the given id.
func (s *Simulator) Link(id string) (Link, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.state.linkByID[id]
	if !ok {
		return Link{}, false
	}
	return cloneLink(l), true
}

// Consents returns copies of every consent, oldest first.
func (s *Simulator) Consents() []Consent {
	s.mu.Lock()
	evs := s.expireConsentsLocked()
	out := make([]Consent, 0, len(s.state.consents))
	for _, c := range s.state.consents {
		out = append(out, cloneConsent(c))
	}
	s.mu.Unlock()
	s.emit(evs...)
	return out
}

// Consent returns a copy of the consent with the given id.
func (s *Simulator) Consent(id string) (Consent, bool) {
	s.mu.Lock()
	evs := s.expireConsentsLocked()
	c, ok := s.state.byID[id]
	var out Consent
	if ok {
		out = cloneConsent(c)
	}
	s.mu.Unlock()
	s.emit(evs...)
	return out, ok
}

// ReportRequests returns copies of every accepted report request, oldest
// first.
func (s *Simulator) ReportRequests() []ReportRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReportRequest, 0, len(s.state.reports))
	for _, r := range s.state.reports {
		out = append(out, cloneReport(r))
	}
	return out
}

// AuthoriseConsent records that the link's user authorised institutionCode
// at the bank: the link's consent for that institution is created or moved
// to AUTHORISED. institutionCode may be empty when the link pre-selected
// one. It fails with ErrNotFound, ErrLinkExpired, ErrNoTaxID (the link was
// created without a tax id) or ErrInstitution.
func (s *Simulator) AuthoriseConsent(linkID, institutionCode string) (Consent, error) {
	return s.setLinkConsent("authorise consent", linkID, institutionCode, klavi.ConsentAuthorised)
}

// RejectConsent records that the link's user refused institutionCode: the
// link's consent for that institution is created or moved to REJECTED. It
// fails like AuthoriseConsent.
func (s *Simulator) RejectConsent(linkID, institutionCode string) (Consent, error) {
	return s.setLinkConsent("reject consent", linkID, institutionCode, klavi.ConsentRejected)
}

// SetConsentStatus moves a consent to any status of the reference, e.g.
// EXPIRED or REJECTED, emitting the matching consent_* event.
func (s *Simulator) SetConsentStatus(consentID string, status klavi.ConsentStatus) (Consent, error) {
	if !status.Known() { // Klavi's own spelling only
		return Consent{}, fmt.Errorf("set consent status: %w", ErrInvalidStatus)
	}
	s.mu.Lock()
	c, ok := s.state.byID[consentID]
	if !ok {
		s.mu.Unlock()
		return Consent{}, fmt.Errorf("set consent status: consent %s: %w", consentID, ErrNotFound)
	}
	evs := s.moveConsentLocked(c, status)
	out := cloneConsent(c)
	s.mu.Unlock()
	s.emit(evs...)
	return out, nil
}

func (s *Simulator) setLinkConsent(op, linkID, institutionCode string, status klavi.ConsentStatus) (Consent, error) {
	s.mu.Lock()
	l, ok := s.state.linkByID[linkID]
	if !ok {
		s.mu.Unlock()
		return Consent{}, fmt.Errorf("%s: link %s: %w", op, linkID, ErrNotFound)
	}
	now := s.now()
	switch {
	case !now.Before(l.ExpiresAt):
		s.mu.Unlock()
		return Consent{}, fmt.Errorf("%s: link %s: %w", op, linkID, ErrLinkExpired)
	case l.PersonalTaxID == "" && l.BusinessTaxID == "":
		s.mu.Unlock()
		return Consent{}, fmt.Errorf("%s: link %s: %w", op, linkID, ErrNoTaxID)
	}
	if institutionCode == "" {
		institutionCode = l.InstitutionCode
	}
	if institutionCode == "" || !validInstitutionCode(institutionCode) ||
		(l.InstitutionCode != "" && institutionCode != l.InstitutionCode) {
		s.mu.Unlock()
		return Consent{}, fmt.Errorf("%s: link %s: %w", op, linkID, ErrInstitution)
	}

	var c *Consent
	for _, existing := range s.state.consents {
		if existing.LinkID == linkID && existing.InstitutionCode == institutionCode {
			c = existing
			break
		}
	}
	if c == nil {
		c = &Consent{
			ID:                 s.ids.uuid(),
			LinkID:             linkID,
			ExternalTrackID:    "sim-" + s.ids.text(),
			PersonalTaxID:      l.PersonalTaxID,
			BusinessTaxID:      l.BusinessTaxID,
			InstitutionCode:    institutionCode,
			Status:             klavi.ConsentStarted,
			PermissionsApply:   defaultPermissions(),
			PermissionsGranted: defaultPermissions(),
			ExpireAt:           consentExpiry(now),
			CreatedAt:          now,
			UpdatedAt:          now,
		}
		s.state.consents = append(s.state.consents, c)
		s.state.byID[c.ID] = c
	}
	evs := s.moveConsentLocked(c, status)
	out := cloneConsent(c)
	s.mu.Unlock()
	s.emit(evs...)
	return out, nil
}

// consentExpiry is twelve months later at the end of that day, as in the
// reference's example.
func consentExpiry(now time.Time) time.Time {
	d := now.UTC().AddDate(1, 0, 0)
	return time.Date(d.Year(), d.Month(), d.Day(), 23, 59, 59, int(999*time.Millisecond), time.UTC)
}

// moveConsentLocked sets the status and returns the event it causes.
func (s *Simulator) moveConsentLocked(c *Consent, status klavi.ConsentStatus) []Event {
	now := s.now()
	if status == klavi.ConsentAuthorised && c.Status != klavi.ConsentAuthorised {
		c.ExpireAt = consentExpiry(now)
	}
	if c.Status == status {
		return nil
	}
	c.Status = status
	c.UpdatedAt = now
	name, ok := status.EventName()
	if !ok {
		return nil
	}
	return []Event{s.consentEventLocked(name, c)}
}

func (s *Simulator) consentEventLocked(name string, c *Consent) Event {
	ev := Event{Name: name, Time: c.UpdatedAt}
	cc := cloneConsent(c)
	ev.Consent = &cc
	if l, ok := s.state.linkByID[c.LinkID]; ok {
		lc := cloneLink(l)
		ev.Link = &lc
	}
	return ev
}

// expireConsentsLocked moves AUTHORISED consents past their expireAt to
// EXPIRED, lazily, since nothing runs in the background.
func (s *Simulator) expireConsentsLocked() []Event {
	now := s.now()
	var evs []Event
	for _, c := range s.state.consents {
		if c.Status == klavi.ConsentAuthorised && !now.Before(c.ExpireAt) {
			evs = append(evs, s.moveConsentLocked(c, klavi.ConsentExpired)...)
		}
	}
	return evs
}

// addLink stores a link built by the API and announces it.
func (s *Simulator) addLink(l *Link) Link {
	s.mu.Lock()
	s.state.links = append(s.state.links, l)
	s.state.linkByID[l.ID] = l
	out := cloneLink(l)
	s.mu.Unlock()
	ev := out
	s.emit(Event{Name: EventLinkCreated, Time: l.CreatedAt, Link: &ev})
	return out
}

// consentsFor lists the consents of a tax id, optionally of one link.
func (s *Simulator) consentsFor(personType, taxID, linkID string) []Consent {
	s.mu.Lock()
	evs := s.expireConsentsLocked()
	out := []Consent{}
	for _, c := range s.state.consents {
		if c.taxID(personType) == taxID && (linkID == "" || c.LinkID == linkID) {
			out = append(out, cloneConsent(c))
		}
	}
	s.mu.Unlock()
	s.emit(evs...)
	return out
}

// revokeConsent moves a live consent to REVOKED. Revoking twice is fine;
// revoking one that already ended otherwise is errConsentRevoked.
func (s *Simulator) revokeConsent(id string) error {
	s.mu.Lock()
	evs := s.expireConsentsLocked()
	c, ok := s.state.byID[id]
	var err error
	switch {
	case !ok:
		err = ErrNotFound
	case c.Status == klavi.ConsentRevoked:
	case c.Status == klavi.ConsentExpired || c.Status == klavi.ConsentRejected ||
		c.Status == klavi.ConsentError || c.Status == klavi.ConsentDeletedByUser:
		err = errConsentRevoked
	default:
		evs = append(evs, s.moveConsentLocked(c, klavi.ConsentRevoked)...)
	}
	s.mu.Unlock()
	s.emit(evs...)
	return err
}

// addReportRequest accepts rr when at least one AUTHORISED consent matches
// its tax id, institution, link and consent ids; every listed consent id
// must be one of them. Otherwise it returns errNoConsent.
func (s *Simulator) addReportRequest(rr *ReportRequest) (ReportRequest, error) {
	s.mu.Lock()
	evs := s.expireConsentsLocked()
	var matched []string
	var link *Link
	for _, c := range s.state.consents {
		if c.Status != klavi.ConsentAuthorised || c.taxID(rr.PersonType) != rr.TaxID ||
			(rr.InstitutionCode != "" && c.InstitutionCode != rr.InstitutionCode) ||
			(rr.LinkID != "" && c.LinkID != rr.LinkID) ||
			(len(rr.ConsentIDs) > 0 && !slices.Contains(rr.ConsentIDs, c.ID)) {
			continue
		}
		matched = append(matched, c.ID)
		link = s.state.linkByID[c.LinkID]
	}
	for _, id := range rr.ConsentIDs {
		if !slices.Contains(matched, id) {
			matched = nil
			break
		}
	}
	if len(matched) == 0 {
		s.mu.Unlock()
		s.emit(evs...)
		return ReportRequest{}, errNoConsent
	}
	rr.ID = s.ids.uuid()
	rr.MatchedConsentIDs = matched
	rr.CreatedAt = s.now()
	s.state.reports = append(s.state.reports, rr)
	out := cloneReport(rr)
	ev := Event{Name: EventProductRequestReceived, Time: rr.CreatedAt}
	evr := cloneReport(rr)
	ev.ReportRequest = &evr
	if link != nil {
		l := cloneLink(link)
		ev.Link = &l
	}
	s.mu.Unlock()
	s.emit(append(evs, ev)...)
	return out, nil
}

func (c *Consent) taxID(personType string) string {
	if personType == PersonBusiness {
		return c.BusinessTaxID
	}
	return c.PersonalTaxID
}

func cloneLink(l *Link) Link {
	out := *l
	out.ProductsCallbackURL = maps.Clone(l.ProductsCallbackURL)
	out.ExternalInfo = slices.Clone(l.ExternalInfo)
	return out
}

func cloneConsent(c *Consent) Consent {
	out := *c
	out.PermissionsApply = slices.Clone(c.PermissionsApply)
	out.PermissionsGranted = slices.Clone(c.PermissionsGranted)
	return out
}

func cloneReport(r *ReportRequest) ReportRequest {
	out := *r
	out.ConsentIDs = slices.Clone(r.ConsentIDs)
	out.Products = slices.Clone(r.Products)
	out.ProductsCallbackURL = maps.Clone(r.ProductsCallbackURL)
	out.ExternalInfo = slices.Clone(r.ExternalInfo)
	out.MatchedConsentIDs = slices.Clone(r.MatchedConsentIDs)
	return out
}
