package linkstore

import (
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// The rules below are the parts of DynamoStore's conditions that are
// easier to state in Go: they explain a failed condition without another
// read, or decide which condition to write.

// claimError tells why a consent cannot be claimed for its automatic report
// request at now, or nil when it can.
func claimError(c Consent, now time.Time) error {
	switch {
	case c.RequestID != "":
		return ErrDuplicate
	case c.Status != klavi.ConsentAuthorised:
		return ErrNotAuthorised
	case c.LeaseUntil.After(stored(now)):
		return ErrLeaseHeld
	default:
		return nil
	}
}

// revokeClaimError tells why a consent cannot be claimed for its
// revocation at now, or nil when it can.
func revokeClaimError(c Consent, now time.Time) error {
	switch {
	case !c.RevokeRequestedAt.IsZero():
		return ErrRevokeRequested
	case c.Status != klavi.ConsentAuthorised:
		return ErrNotAuthorised
	case c.RevokeLeaseUntil.After(stored(now)):
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
