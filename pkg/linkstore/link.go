package linkstore

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: the link (or the consent named in the call) does not exist.
	ErrNotFound = errors.New("linkstore: not found")
	// ErrDuplicate: the item already exists (link id, request id, product
	// report id), or the consent already has its automatic report request.
	ErrDuplicate = errors.New("linkstore: duplicate")
	// ErrLeaseHeld: another caller holds an unexpired claim on the consent.
	ErrLeaseHeld = errors.New("linkstore: lease held")
	// ErrNotAuthorised: the consent exists but is not AUTHORISED, so no
	// report may be requested for it.
	ErrNotAuthorised = errors.New("linkstore: consent not authorised")
	// ErrPurged: the link was purged on the user's request (LGPD); nothing
	// new may be stored for it.
	ErrPurged = errors.New("linkstore: link purged")
	// ErrAttentionChanged: the link's attention entry is no longer the one
	// the caller saw (a consent authorised since then moved its due time),
	// so it was left in place.
	ErrAttentionChanged = errors.New("linkstore: attention changed")
	// ErrRevokeRequested: the consent's revocation was already accepted
	// by Klavi (RecordRevoke).
	ErrRevokeRequested = errors.New("linkstore: revoke already requested")
	// ErrEmptyID: an id the call needs (link, event, request or product
	// report id) is empty.
	ErrEmptyID = errors.New("linkstore: empty id")
)

// TaxIDType tells which kind of tax id a link carries.
type TaxIDType string

// Tax id types.
const (
	TaxIDPersonal TaxIDType = "personal" // CPF
	TaxIDBusiness TaxIDType = "business" // CNPJ
	TaxIDUnknown  TaxIDType = "unknown"  // none known yet
)

// Origins of a link.
const (
	OriginAPI     = "api"     // created through CreateLink
	OriginWebhook = "webhook" // first seen in an event
)

// Report request triggers.
const (
	TriggerStream    = "stream"
	TriggerManual    = "manual"
	TriggerReconcile = "reconcile"
)

// Reasons a link was purged (Link.PurgeReason).
const (
	// PurgeConsentDeletedByUser: Klavi's consent_deleted_by_user event.
	PurgeConsentDeletedByUser = "consent_deleted_by_user"
	// PurgeDeletedByRequest: the fintech asked (DELETE /links/{linkId}).
	PurgeDeletedByRequest = "deleted_by_request"
)

// Link statuses, derived by Link.Status.
const (
	StatusCreated          = "CREATED"
	StatusAuthorised       = "AUTHORISED"
	StatusReportsRequested = "REPORTS_REQUESTED"
	StatusReportsReceived  = "REPORTS_RECEIVED"
	StatusError            = "ERROR"
	StatusRejected         = "REJECTED"
	StatusExpired          = "EXPIRED"
	StatusRevoked          = "REVOKED"
	StatusDeletedByUser    = "DELETED_BY_USER"
	// StatusDeleted: purged because the fintech asked
	// (PurgeDeletedByRequest).
	StatusDeleted = "DELETED"
)

// Link is everything the backend holds about one Klavi link.
type Link struct {
	LinkID    string
	TaxIDType TaxIDType
	// TaxID is the bare CPF or CNPJ. It is personal data: it is never part
	// of a key, an index, a log line or an error.
	TaxID string
	// InstitutionCode is the institution preselected at creation, if any.
	InstitutionCode string
	RedirectURL     string
	// ReportWebhookURL is the productsCallbackURL "all" value sent to Klavi.
	ReportWebhookURL string
	ExternalInfo     json.RawMessage
	Origin           string // OriginAPI or OriginWebhook
	// Owner identifies who created the link through the API (the caller's
	// identity as the HTTP API's authorizer established it); "" for a link
	// first seen in an event or created without an authorizer. It is never
	// part of a key or an index.
	Owner string

	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// PurgedAt is set once the user's data was deleted (LGPD); the link is
	// then a tombstone holding dates only.
	PurgedAt time.Time
	// PurgeReason tells why the link was purged: PurgeConsentDeletedByUser
	// or PurgeDeletedByRequest; "" on a tombstone that does not say, which
	// was purged for consent_deleted_by_user. On a link not purged yet,
	// PurgeDeletedByRequest records that the fintech asked for the
	// deletion (RequestDeletion) and it is still to be finished.
	PurgeReason string
	// Pending is the link's pending-work mark; zero when it has none.
	Pending PendingWork

	Consents       []Consent       // by ConsentID
	ReportRequests []ReportRequest // by RequestedAt, then RequestID
	Reports        []Report        // by ReceivedAt, then ProductReportID
}

// Consent is one consent (one institution) of a link.
type Consent struct {
	ConsentID       string
	InstitutionCode string
	Status          klavi.ConsentStatus
	EventTime       time.Time // of the event that set Status
	UpdatedAt       time.Time
	// RequestID is the automatic report request made for this consent, ""
	// if none was made yet.
	RequestID string
	// LeaseUntil is the end of an in-flight claim to make that request.
	LeaseUntil time.Time
	// RevokeRequestedAt is when Klavi accepted our revocation of the
	// consent (RecordRevoke); zero if it was not revoked through us.
	// Klavi's consent_revoked event then settles Status.
	RevokeRequestedAt time.Time
	// RevokeLeaseUntil is the end of an in-flight claim to revoke it
	// (ClaimRevoke).
	RevokeLeaseUntil time.Time
}

// ReportRequest is one report request sent to Klavi.
type ReportRequest struct {
	RequestID       string
	ConsentID       string
	InstitutionCode string
	Products        []string
	RequestedAt     time.Time
	Trigger         string // TriggerStream, TriggerManual or TriggerReconcile
}

// Report is one product report received from Klavi and stored elsewhere
// (ObjectKey) byte for byte.
type Report struct {
	ProductReportID string
	ProductName     string
	RequestID       string
	ObjectKey       string
	Code            int
	Bytes           int64
	SHA256          string
	ReceivedAt      time.Time
}

// AttentionKind names why a link is due for reconciliation.
type AttentionKind string

// Attention kinds.
const (
	// AwaitingConsent: created, no consent authorised yet; due at ExpiresAt.
	AwaitingConsent AttentionKind = "AWAITING_CONSENT"
	// AwaitingReports: a consent was authorised; due a grace period later.
	AwaitingReports AttentionKind = "AWAITING_REPORTS"
	// DeletionRequested: the fintech asked for the link's deletion and it
	// is not finished (a revocation at Klavi failed, or the purge did);
	// due when asked, so that the next sweep finishes it.
	DeletionRequested AttentionKind = "DELETION_REQUESTED"
)

// Attention is one link due for reconciliation.
type Attention struct {
	LinkID string
	Kind   AttentionKind
	Due    time.Time
}

// DeletionRequested reports whether the fintech asked for the link's
// deletion (RequestDeletion) and the purge has not happened yet. Such a
// link is no longer live: nothing may be requested for it, and only the
// deletion's own revocations and purge may still act on it. It reads as it
// did until the purge, so that a deletion left half done never reads as
// done.
func (l *Link) DeletionRequested() bool {
	return l.PurgedAt.IsZero() && l.PurgeReason == PurgeDeletedByRequest
}

// Erasing reports whether the link's data is on its way out and not purged
// yet: the fintech asked for its deletion, or the user deleted it at Klavi
// and the purge is pending work. Nothing may be requested for such a link.
func (l *Link) Erasing() bool {
	return l.DeletionRequested() || (l.PurgedAt.IsZero() && l.Pending.Work == WorkPurge)
}

// Status derives the link status from its parts; see the package doc for
// the rule.
func (l *Link) Status(now time.Time) string {
	if !l.PurgedAt.IsZero() {
		if l.PurgeReason == PurgeDeletedByRequest {
			return StatusDeleted
		}
		return StatusDeletedByUser
	}
	if len(l.Reports) > 0 {
		return StatusReportsReceived
	}
	authorised, requested := false, len(l.ReportRequests) > 0
	for _, c := range l.Consents {
		authorised = authorised || c.Status == klavi.ConsentAuthorised
		requested = requested || c.RequestID != ""
	}
	switch {
	case authorised && requested:
		return StatusReportsRequested
	case authorised:
		return StatusAuthorised
	case len(l.Consents) > 0:
		return linkStatusOfConsent(latestConsent(l.Consents).Status)
	case !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt):
		return StatusExpired
	default:
		return StatusCreated
	}
}

// latestConsent is the consent set by the most recent event; ties go to
// the later state, then to the consent id, so the answer is stable.
func latestConsent(cs []Consent) Consent {
	best := cs[0]
	for _, c := range cs[1:] {
		switch {
		case c.EventTime.After(best.EventTime):
			best = c
		case c.EventTime.Equal(best.EventTime):
			if r, br := c.Status.Rank(), best.Status.Rank(); r > br || (r == br && c.ConsentID > best.ConsentID) {
				best = c
			}
		}
	}
	return best
}

// linkStatusOfConsent is the link status a consent gives when none is
// authorised: an ended consent's own status (ERROR, REJECTED, EXPIRED,
// REVOKED, DELETED_BY_USER), else CREATED (STARTED, AWAITING_* and anything
// Klavi adds later).
func linkStatusOfConsent(status klavi.ConsentStatus) string {
	if status.Ended() {
		return string(status)
	}
	return StatusCreated
}

// normalizeTaxIDType maps anything but the two known kinds to unknown.
func normalizeTaxIDType(t TaxIDType) TaxIDType {
	if t == TaxIDPersonal || t == TaxIDBusiness {
		return t
	}
	return TaxIDUnknown
}

// timeLayout is fixed width in UTC, so that comparing two stored strings
// compares the times they stand for (DynamoDB condition expressions and
// index ranges rely on it).
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// stored returns t as both stores keep it: UTC, millisecond precision.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

// sortParts puts a link's parts in the documented order.
func sortParts(l *Link) {
	slices.SortFunc(l.Consents, func(a, b Consent) int { return strings.Compare(a.ConsentID, b.ConsentID) })
	slices.SortFunc(l.ReportRequests, func(a, b ReportRequest) int {
		if c := a.RequestedAt.Compare(b.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	slices.SortFunc(l.Reports, func(a, b Report) int {
		if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ProductReportID, b.ProductReportID)
	})
}

// ValidLinkID reports whether id could be a Klavi link id (UUID-like:
// letters, digits, '-' and '_', at most 64 characters). Handlers check ids
// from requests with it before they reach the store.
func ValidLinkID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
