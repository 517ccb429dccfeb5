package linkstore

import (
	"errors"
	"strings"
	"time"
)

// The rules below are shared by both stores, so that the memory store
// answers exactly as the DynamoDB conditions do.

// eventWins reports whether a consent event replaces the consent's current
// state: it is newer, or as old and further along the lifecycle. The user's
// deletion is final and goes first: it replaces any other state, whatever
// its eventTime (a later REVOKED, EXPIRED or reconcile-made event must not
// keep the LGPD purge, which follows the DELETED_BY_USER status, from
// happening), and nothing replaces it.
func eventWins(e EventChange, c Consent) bool {
	switch {
	case c.Status == ConsentDeletedByUser:
		return false
	case e.ConsentStatus == ConsentDeletedByUser:
		return true
	}
	return e.EventTime.After(c.EventTime) ||
		(e.EventTime.Equal(c.EventTime) && statusRank(e.ConsentStatus) > statusRank(c.Status))
}

// claimError tells why a consent cannot be claimed for its automatic report
// request at now, or nil when it can.
func claimError(c Consent, now time.Time) error {
	switch {
	case c.RequestID != "":
		return ErrDuplicate
	case c.Status != ConsentAuthorised:
		return ErrNotAuthorised
	case c.LeaseUntil.After(stored(now)):
		return ErrLeaseHeld
	default:
		return nil
	}
}

// setsConsentRequest reports whether recording r also marks its consent as
// having had its automatic request. A manual request does not: it must not
// stop the automatic one.
func setsConsentRequest(r ReportRequest) bool {
	return r.ConsentID != "" && r.Trigger != TriggerManual
}

// adoptable reports whether CreateLink may take over an existing link: one
// first seen in an event (Klavi's link_created can beat our own write) and
// not purged.
func adoptable(existing Link) bool {
	return existing.Origin == OriginWebhook && existing.PurgedAt.IsZero()
}

// applyCreate writes the fields CreateLink sets onto dst (a new link or an
// adopted one). Empty optional fields leave what an event already stored.
func applyCreate(dst *Link, l Link) {
	dst.LinkID, dst.Origin = l.LinkID, l.Origin
	dst.CreatedAt, dst.UpdatedAt = l.CreatedAt, l.UpdatedAt
	if l.TaxIDType != TaxIDUnknown {
		dst.TaxIDType = l.TaxIDType
	}
	overwrite(&dst.TaxID, l.TaxID)
	overwrite(&dst.InstitutionCode, l.InstitutionCode)
	overwrite(&dst.RedirectURL, l.RedirectURL)
	overwrite(&dst.ReportWebhookURL, l.ReportWebhookURL)
	overwrite(&dst.Owner, l.Owner)
	if l.ExternalInfo != nil {
		dst.ExternalInfo = l.ExternalInfo
	}
	if !l.ExpiresAt.IsZero() {
		dst.ExpiresAt = l.ExpiresAt
	}
}

// applyEventToLink writes what an event tells about its link onto dst: the
// event only fills in what the link does not have yet.
func applyEventToLink(dst *Link, e EventChange) {
	if dst.Origin == "" {
		dst.Origin = OriginWebhook
	}
	if dst.CreatedAt.IsZero() {
		dst.CreatedAt = e.ReceivedAt
	}
	dst.UpdatedAt = e.ReceivedAt
	if e.TaxID != "" {
		fillIn(&dst.TaxID, e.TaxID)
		if t := normalizeTaxIDType(e.TaxIDType); t != TaxIDUnknown && dst.TaxIDType == TaxIDUnknown {
			dst.TaxIDType = t
		}
	}
	if dst.ExternalInfo == nil && hasJSON(e.ExternalInfo) {
		dst.ExternalInfo = e.ExternalInfo
	}
}

func overwrite(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func fillIn(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// orNow returns t, or the clock's time when t is zero.
func orNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t
}

func hasJSON(raw []byte) bool { return len(raw) > 0 && string(raw) != "null" }

// redactedError hides a value (a tax id) that an underlying error might
// echo, while keeping the chain for errors.Is and errors.As.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact makes sure err's message does not carry secret: the AWS SDK or an
// emulator may quote request values in validation messages.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, msg: strings.ReplaceAll(err.Error(), secret, "[redacted]")}
}

var errEmptyID = errors.New("empty id")
