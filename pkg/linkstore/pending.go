package linkstore

import (
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Work names what a link's pending-work mark asks to be done.
type Work string

// Kinds of pending work.
const (
	// WorkPurge: the link's data is to be purged (LGPD). Set by a deletion
	// event that names the link but no consent, and by the stream handler
	// when a purge failed. Never replaced by WorkReportRequest.
	WorkPurge Work = "purge"
	// WorkReportRequest: a consent's automatic report request failed in
	// the stream handler.
	WorkReportRequest Work = "report_request"
)

// PendingWork is a durable mark on a link: work that was to be done and
// may not have been, kept until the reconciliation sweep redoes it and
// clears the link's attention. It holds ids only, never a tax id.
type PendingWork struct {
	Work      Work
	ConsentID string // "" when the work is about the whole link
	At        time.Time
}

// PendingWorkDue is the attention kind of a link with pending work; due
// at PendingWork.At. It replaces the link's other attention entry: the
// sweep, which reads the whole link, does what that entry asked too.
const PendingWorkDue AttentionKind = "PENDING_WORK"

// DeletesLink reports whether the event deletes its whole link: the
// user's deletion (a final status) naming the link but no consent.
func (e EventChange) DeletesLink() bool {
	return klavi.ParseConsentStatus(string(e.ConsentStatus)).Final() && e.LinkID != "" && e.ConsentID == ""
}

// IsUnplacedDeletion reports whether the event is the user's deletion
// naming no link, which therefore cannot be applied to anything: its event
// record is kept for good (no TTL) so that it is never silently dropped.
func (e EventChange) IsUnplacedDeletion() bool {
	return klavi.ParseConsentStatus(string(e.ConsentStatus)).Final() && e.LinkID == ""
}

// MarkReplaces reports whether a mark for w may replace the mark held
// (held == "" when none): a purge is never replaced by other work.
func MarkReplaces(held, w Work) bool {
	return held != WorkPurge || w == WorkPurge
}
