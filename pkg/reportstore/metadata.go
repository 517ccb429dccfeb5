package reportstore

import (
	"strings"

	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// Metadata keys stored with every report (S3 sends them as x-amz-meta-*).
const (
	MetaRequestID       = "request-id"
	MetaProduct         = "product"
	MetaProductReportID = "product-report-id"
	MetaCode            = "code"
	MetaSHA256          = "sha256"
)

// maxMetaValue bounds each value so that the five together stay far below
// S3's 2 KB limit on user metadata.
const maxMetaValue = 256

func metadata(o Object, sha256Hex string) map[string]string {
	m := map[string]string{MetaSHA256: sha256Hex}
	for _, kv := range [...][2]string{
		{MetaRequestID, o.RequestID},
		{MetaProduct, o.ProductName},
		{MetaProductReportID, o.ProductReportID},
		{MetaCode, o.Code},
	} {
		if v := metaValue(kv[1]); v != "" {
			m[kv[0]] = v
		}
	}
	return m
}

// metaValue makes v safe to store as metadata, which anyone allowed to
// HEAD the object can read and which lands in inventories and logs. Values
// come from Klavi's envelope, not from us, so a value that holds something
// shaped like a CPF or CNPJ is dropped rather than stored. Bytes outside
// printable ASCII are %XX-escaped because S3 sends metadata as HTTP headers.
func metaValue(v string) string {
	if v == "" || containsTaxID(v) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(v) && b.Len() < maxMetaValue; i++ {
		c := v[i]
		if c >= 0x20 && c < 0x7f && c != '%' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	s := b.String()
	if len(s) > maxMetaValue {
		s = s[:maxMetaValue]
	}
	return s
}

// containsTaxID reports whether v, with mask characters removed, holds an
// 11-digit run that is a valid CPF or a 14-character run of digits and
// capital letters (the alphanumeric CNPJ of 2026 included) that is a valid
// CNPJ. Runs of other lengths are ids, not tax ids.
func containsTaxID(v string) bool {
	unmasked := strings.Map(func(r rune) rune {
		switch r {
		case '.', '-', '/', ' ':
			return -1
		}
		return r
	}, v)
	for _, run := range runs(unmasked, isDigit) {
		if _, err := taxid.ParseCPF(run); len(run) == 11 && err == nil {
			return true
		}
	}
	for _, run := range runs(unmasked, isCNPJChar) {
		if _, err := taxid.ParseCNPJ(run); len(run) == 14 && err == nil {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isCNPJChar(c byte) bool { return isDigit(c) || 'A' <= c && c <= 'Z' }

// runs returns the maximal substrings of s whose bytes satisfy in.
func runs(s string, in func(byte) bool) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && in(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, s[start:i])
			start = -1
		}
	}
	return out
}
