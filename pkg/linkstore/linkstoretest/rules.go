package linkstoretest

import (
	"slices"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// What DynamoStore does with update expressions and conditions, written in
// Go for MemoryStore. The consent lifecycle itself (which event supersedes
// which status) is not repeated here: both stores take it from
// klavi.ConsentStatus and klavi.Supersedes; nor are the defaults a write
// fills in, which both take from linkstore.Link.WithDefaults and
// linkstore.EventChange.Normalized. The conformance suite in
// package linkstore runs both stores and holds them to the same outcomes.

// eventWins reports whether a consent event replaces the consent's current
// state.
func eventWins(e linkstore.EventChange, c linkstore.Consent) bool {
	return klavi.Supersedes(e.ConsentStatus, e.EventTime, c.Status, c.EventTime)
}

// claimError tells why a consent cannot be claimed for its automatic report
// request at now, or nil when it can.
func claimError(c linkstore.Consent, now time.Time) error {
	switch {
	case c.RequestID != "":
		return linkstore.ErrDuplicate
	case c.Status != klavi.ConsentAuthorised:
		return linkstore.ErrNotAuthorised
	case c.LeaseUntil.After(stored(now)):
		return linkstore.ErrLeaseHeld
	default:
		return nil
	}
}

// revokeClaimError tells why a consent cannot be claimed for its
// revocation at now, or nil when it can.
func revokeClaimError(c linkstore.Consent, now time.Time) error {
	switch {
	case !c.RevokeRequestedAt.IsZero():
		return linkstore.ErrRevokeRequested
	case c.Status != klavi.ConsentAuthorised:
		return linkstore.ErrNotAuthorised
	case c.RevokeLeaseUntil.After(stored(now)):
		return linkstore.ErrLeaseHeld
	default:
		return nil
	}
}

// purgeReason is the reason a purge of l records: the one a requested
// deletion set, else the user's deletion through Klavi.
func purgeReason(l linkstore.Link) string {
	if l.PurgeReason != "" {
		return l.PurgeReason
	}
	return linkstore.PurgeConsentDeletedByUser
}

// setsConsentRequest reports whether recording r also marks its consent as
// having had its automatic request. A manual request does not: it must not
// stop the automatic one.
func setsConsentRequest(r linkstore.ReportRequest) bool {
	return r.ConsentID != "" && r.Trigger != linkstore.TriggerManual
}

// adoptable reports whether CreateLink may take over an existing link: one
// first seen in an event (Klavi's link_created can beat our own write) and
// not purged.
func adoptable(existing linkstore.Link) bool {
	return existing.Origin == linkstore.OriginWebhook && existing.PurgedAt.IsZero()
}

// applyCreate writes the fields CreateLink sets onto dst (a new link or an
// adopted one). Empty optional fields leave what an event already stored.
func applyCreate(dst *linkstore.Link, l linkstore.Link) {
	dst.LinkID, dst.Origin = l.LinkID, l.Origin
	dst.CreatedAt, dst.UpdatedAt = l.CreatedAt, l.UpdatedAt
	if l.TaxIDType != linkstore.TaxIDUnknown {
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
func applyEventToLink(dst *linkstore.Link, e linkstore.EventChange) {
	if dst.Origin == "" {
		dst.Origin = linkstore.OriginWebhook
	}
	if dst.CreatedAt.IsZero() {
		dst.CreatedAt = e.ReceivedAt
	}
	dst.UpdatedAt = e.ReceivedAt
	if e.TaxID != "" {
		fillIn(&dst.TaxID, e.TaxID)
		if t := normalizeTaxIDType(e.TaxIDType); t != linkstore.TaxIDUnknown && dst.TaxIDType == linkstore.TaxIDUnknown {
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

// normalizeTaxIDType maps anything but the two known kinds to unknown.
func normalizeTaxIDType(t linkstore.TaxIDType) linkstore.TaxIDType {
	if t == linkstore.TaxIDPersonal || t == linkstore.TaxIDBusiness {
		return t
	}
	return linkstore.TaxIDUnknown
}

// stored returns t as the stores keep it: UTC, millisecond precision.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

// orNow returns t, or the clock's time when t is zero.
func orNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t
}

func hasJSON(raw []byte) bool { return len(raw) > 0 && string(raw) != "null" }

// sortParts puts a link's parts in the order GetLink documents.
func sortParts(l *linkstore.Link) {
	slices.SortFunc(l.Consents, func(a, b linkstore.Consent) int { return strings.Compare(a.ConsentID, b.ConsentID) })
	slices.SortFunc(l.ReportRequests, func(a, b linkstore.ReportRequest) int {
		if c := a.RequestedAt.Compare(b.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	slices.SortFunc(l.Reports, func(a, b linkstore.Report) int {
		if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ProductReportID, b.ProductReportID)
	})
}
