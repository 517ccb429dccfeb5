package reportstore

import (
	"errors"
	"strings"
)

// ErrInvalidKey reports a key or prefix that does not have one of the
// shapes this package builds. Nothing is sent to S3 for it.
var ErrInvalidKey = errors.New("invalid report key")

const (
	reportsRoot   = "reports"
	unmatchedRoot = "unmatched"
	keySuffix     = ".json"
	maxKeyLen     = 1024 // S3's limit, in bytes
)

// ReportKey is the key of a report delivered for a known link:
// "reports/<linkId>/<productName>/<productReportId>.json".
//
// Each id is escaped so that it stays one path segment whatever it holds:
// bytes other than ASCII letters, digits, '-', '_' and a non-leading '.'
// become %XX (uppercase hex). A leading '.' is escaped too, so no segment
// is "." or "..". Escaping is injective: two different ids never share a
// key. An empty id yields a key that Put rejects with ErrInvalidKey.
func ReportKey(linkID, productName, productReportID string) string {
	return reportsRoot + "/" + escape(linkID) + "/" + escape(productName) + "/" + escape(productReportID) + keySuffix
}

// UnmatchedKey is the key of a report whose link this backend does not
// know (yet): "unmatched/<linkId>/<productName>/<productReportId>.json",
// escaped as ReportKey, with linkId the first link the report names, so
// that the link's LGPD purge finds it too (UnmatchedPrefix). A report that
// names no link goes under NoLink.
func UnmatchedKey(linkID, productName, productReportID string) string {
	if linkID == "" {
		linkID = NoLink
	}
	return unmatchedRoot + "/" + escape(linkID) + "/" + escape(productName) + "/" + escape(productReportID) + keySuffix
}

// NoLink stands for the link of a report that names none. Klavi's link ids
// are UUIDs, so it cannot be one.
const NoLink = "_none"

// UnmatchedPrefix is the prefix of the unmatched reports that name the link:
// "unmatched/<linkId>/".
func UnmatchedPrefix(linkID string) string {
	return unmatchedRoot + "/" + escape(linkID) + "/"
}

// LinkPrefix is the prefix under which every report of a link is stored:
// "reports/<linkId>/", escaped as ReportKey. The trailing slash keeps link
// "L1" from matching the reports of link "L10".
func LinkPrefix(linkID string) string {
	return reportsRoot + "/" + escape(linkID) + "/"
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) || (c == '.' && i > 0) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// CheckKey reports ErrInvalidKey unless key has one of the shapes ReportKey
// and UnmatchedKey build. Other stores of report objects (a local disk
// store) use it to keep every key under a purgeable prefix.
func CheckKey(key string) error { return checkKey(key) }

// CheckPrefix reports ErrInvalidKey unless prefix is one DeletePrefix
// accepts: a link's (or deeper) under "reports/" or "unmatched/".
func CheckPrefix(prefix string) error { return checkPrefix(prefix) }

// checkKey accepts only the shapes ReportKey and UnmatchedKey build, so
// every stored object sits under a prefix that the retention rule and the
// LGPD purge cover.
func checkKey(key string) error {
	if len(key) > maxKeyLen {
		return ErrInvalidKey
	}
	segs := strings.Split(key, "/")
	switch {
	case len(segs) == 4 && (segs[0] == reportsRoot || segs[0] == unmatchedRoot):
	default:
		return ErrInvalidKey
	}
	last := len(segs) - 1
	id, ok := strings.CutSuffix(segs[last], keySuffix)
	if !ok {
		return ErrInvalidKey
	}
	segs[last] = id
	for _, s := range segs[1:] {
		if !validSegment(s) {
			return ErrInvalidKey
		}
	}
	return nil
}

// checkPrefix accepts "reports/<linkId>/" and deeper or
// "unmatched/<linkId>/" and deeper, never a bare root: a purge must
// not be able to empty the bucket.
func checkPrefix(prefix string) error {
	rest, ok := strings.CutSuffix(prefix, "/")
	if !ok || len(prefix) > maxKeyLen {
		return ErrInvalidKey
	}
	segs := strings.Split(rest, "/")
	if len(segs) < 2 || (segs[0] != reportsRoot && segs[0] != unmatchedRoot) {
		return ErrInvalidKey
	}
	for _, s := range segs[1:] {
		if !validSegment(s) {
			return ErrInvalidKey
		}
	}
	return nil
}

// validSegment reports whether s could be the output of escape for a
// non-empty id.
func validSegment(s string) bool {
	if s == "" || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !plain(c) && c != '.' && c != '%' {
			return false
		}
	}
	return true
}
