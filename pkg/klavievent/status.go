package klavievent

import "strings"

// Klavi consent statuses, in British spelling as Klavi sends them.
const (
	StatusStarted                   = "STARTED"
	StatusAwaitingAuthorisation     = "AWAITING_AUTHORISATION"
	StatusAwaitingLGPDAuthorisation = "AWAITING_LGPD_AUTHORISATION"
	StatusAuthorised                = "AUTHORISED"
	StatusError                     = "ERROR"
	StatusRejected                  = "REJECTED"
	StatusExpired                   = "EXPIRED"
	StatusRevoked                   = "REVOKED"
	StatusDeletedByUser             = "DELETED_BY_USER"
)

// Rank orders consent statuses along the consent lifecycle, to break ties
// between two events with the same eventTime: the later stage wins.
//
//	STARTED < AWAITING_AUTHORISATION < AWAITING_LGPD_AUTHORISATION < AUTHORISED
//	< ERROR = REJECTED = EXPIRED < REVOKED < DELETED_BY_USER
//
// The terminal failures share a rank because none of them follows another.
// Matching is case-insensitive; an unknown status ranks 0.
func Rank(status string) int {
	switch strings.ToUpper(strings.TrimSpace(status)) {
	case StatusStarted:
		return 1
	case StatusAwaitingAuthorisation:
		return 2
	case StatusAwaitingLGPDAuthorisation:
		return 3
	case StatusAuthorised:
		return 4
	case StatusError, StatusRejected, StatusExpired:
		return 5
	case StatusRevoked:
		return 6
	case StatusDeletedByUser:
		return 7
	default:
		return 0
	}
}

// StatusForEvent maps a consent_* event name (any casing) to the consent
// status it reports, e.g. consent_authorised to AUTHORISED. ok is false for
// every other name.
func StatusForEvent(name string) (status string, ok bool) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "consent_authorised":
		return StatusAuthorised, true
	case "consent_error":
		return StatusError, true
	case "consent_rejected":
		return StatusRejected, true
	case "consent_expired":
		return StatusExpired, true
	case "consent_revoked":
		return StatusRevoked, true
	case "consent_deleted_by_user":
		return StatusDeletedByUser, true
	default:
		return "", false
	}
}

// statusFromValue reads an action status as sent in a link_action_status
// payload: a consent_* event name or a status name, in any casing.
func statusFromValue(v string) (string, bool) {
	if s, ok := StatusForEvent(v); ok {
		return s, true
	}
	s := strings.ToUpper(strings.TrimSpace(v))
	if Rank(s) == 0 {
		return "", false
	}
	return s, true
}
