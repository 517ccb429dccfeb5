// Package compactid derives a stable id for a signed Klavi body that
// carries none (an event without eventId, a report without
// productReportId), so that it can be kept and deduplicated rather than
// refused and lost after Klavi's few retries.
//
// The id hashes the body's compact JSON (json.Compact), not its bytes as
// received: the signature check accepts a signature over the compact form
// (Klavi's Node sample signs JSON.stringify(body)), so anyone holding a
// captured delivery can add whitespace and keep the signature valid, and
// each such variant must still be the same body, a duplicate.
package compactid

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Prefix starts every derived id: the prefix, then the first 16 bytes of
// the SHA-256 of the compact JSON, in hex.
const Prefix = "sha256:"

// Of returns the derived id of raw, which should be valid JSON; bytes that
// are not are hashed as they are.
func Of(raw []byte) string {
	var compact bytes.Buffer
	compact.Grow(len(raw))
	if json.Compact(&compact, raw) != nil {
		compact.Reset()
		compact.Write(raw)
	}
	sum := sha256.Sum256(compact.Bytes())
	return Prefix + hex.EncodeToString(sum[:16])
}
