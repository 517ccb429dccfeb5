package klavi

import (
	"strings"
	"time"
)

// ConsentStatus is a consent's status as Klavi spells it: upper case, in
// British spelling. It is the one vocabulary of the consent lifecycle for
// the client, the event parser and the link store. A value Klavi adds later
// is kept as it is and ranks 0.
type ConsentStatus string

// Consent statuses along the lifecycle.
const (
	ConsentStarted                   ConsentStatus = "STARTED"
	ConsentAwaitingAuthorisation     ConsentStatus = "AWAITING_AUTHORISATION"
	ConsentAwaitingLGPDAuthorisation ConsentStatus = "AWAITING_LGPD_AUTHORISATION"
	ConsentAuthorised                ConsentStatus = "AUTHORISED"
	ConsentError                     ConsentStatus = "ERROR"
	ConsentRejected                  ConsentStatus = "REJECTED"
	ConsentExpired                   ConsentStatus = "EXPIRED"
	ConsentRevoked                   ConsentStatus = "REVOKED"
	ConsentDeletedByUser             ConsentStatus = "DELETED_BY_USER"
)

// ParseConsentStatus reads a status in any casing and surrounding space, the
// way Klavi's values are compared. It does not check that the status is
// known: see Known.
func ParseConsentStatus(s string) ConsentStatus {
	return ConsentStatus(strings.ToUpper(strings.TrimSpace(s)))
}

// Rank orders consent statuses along the consent lifecycle, to break ties
// between two events with the same eventTime: the later stage wins.
//
//	STARTED < AWAITING_AUTHORISATION < AWAITING_LGPD_AUTHORISATION < AUTHORISED
//	< ERROR = REJECTED = EXPIRED < REVOKED < DELETED_BY_USER
//
// The failures share a rank because none of them follows another. Matching
// is exact (use ParseConsentStatus first); an unknown status ranks 0, so it
// never overrides a known one.
func (s ConsentStatus) Rank() int {
	switch s {
	case ConsentStarted:
		return 1
	case ConsentAwaitingAuthorisation:
		return 2
	case ConsentAwaitingLGPDAuthorisation:
		return 3
	case ConsentAuthorised:
		return 4
	case ConsentError, ConsentRejected, ConsentExpired:
		return 5
	case ConsentRevoked:
		return 6
	case ConsentDeletedByUser:
		return 7
	default:
		return 0
	}
}

// Known reports whether s is one of the statuses above, spelled exactly.
func (s ConsentStatus) Known() bool { return s.Rank() > 0 }

// Pending reports whether the consent may still become authorised: it is
// STARTED or AWAITING_* (AWAITING_LGPD_AUTHORISATION included). An unknown
// status is not pending, as it is not ended.
func (s ConsentStatus) Pending() bool { return s.Known() && s.Rank() < ConsentAuthorised.Rank() }

// Ended reports whether the consent is over: it failed (ERROR, REJECTED,
// EXPIRED), was revoked or was deleted by the user. STARTED, AWAITING_*,
// AUTHORISED and unknown statuses have not ended.
func (s ConsentStatus) Ended() bool { return s.Rank() >= ConsentError.Rank() }

// Final reports whether nothing may replace s. Only the user's deletion is
// final: the LGPD purge follows it, so no later event (a REVOKED, an
// EXPIRED, one made by reconciliation) may take it back.
func (s ConsentStatus) Final() bool { return s == ConsentDeletedByUser }

// Supersedes reports whether an event setting next with eventTime nextAt
// replaces a consent whose status cur was set by an event at curAt: a final
// status is never replaced; a final next status replaces anything else,
// whatever its eventTime; otherwise the newer event wins, and for the same
// eventTime the status further along the lifecycle (Rank).
func Supersedes(next ConsentStatus, nextAt time.Time, cur ConsentStatus, curAt time.Time) bool {
	switch {
	case cur.Final():
		return false
	case next.Final():
		return true
	}
	return nextAt.After(curAt) || (nextAt.Equal(curAt) && next.Rank() > cur.Rank())
}

// consentEvents pairs each consent_* event name with the status it reports.
// Intermediate statuses (STARTED, AWAITING_*) have no event.
var consentEvents = [...]struct {
	name   string
	status ConsentStatus
}{
	{"consent_authorised", ConsentAuthorised},
	{"consent_error", ConsentError},
	{"consent_rejected", ConsentRejected},
	{"consent_expired", ConsentExpired},
	{"consent_revoked", ConsentRevoked},
	{"consent_deleted_by_user", ConsentDeletedByUser},
}

// ConsentStatusForEvent maps a consent_* event name (any casing) to the
// consent status it reports, e.g. consent_authorised to AUTHORISED. ok is
// false for every other name.
func ConsentStatusForEvent(name string) (status ConsentStatus, ok bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	for _, e := range consentEvents {
		if name == e.name {
			return e.status, true
		}
	}
	return "", false
}

// EventName names the event Klavi sends when a consent reaches s, e.g.
// consent_authorised for AUTHORISED. ok is false for statuses without an
// event (STARTED, AWAITING_*) and unknown ones.
func (s ConsentStatus) EventName() (name string, ok bool) {
	for _, e := range consentEvents {
		if e.status == s {
			return e.name, true
		}
	}
	return "", false
}
