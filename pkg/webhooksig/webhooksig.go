// Package webhooksig verifies and produces the signatures Klavi puts on its
// event and product-report webhooks.
//
// Klavi sends two headers with every delivery:
//
//	X-Klavi-Signature: lowercase hex of HMAC-SHA256(key = secretKey, message = body)
//	X-Klavi-Timestamp: Unix seconds
//
// The HMAC covers the body only, not X-Klavi-Timestamp: anyone holding a
// captured delivery can send it again under a fresh timestamp. The
// timestamp check therefore catches stale clocks and careless resends, not
// replays; those are stopped where the body is applied (event ids, event
// times, report ids).
//
// Klavi's documentation describes the message as the request body, but its own
// Node sample recomputes the HMAC over JSON.stringify(body), that is over a
// compact re-serialisation. Verify therefore accepts a signature over the exact
// raw bytes and, only when that fails, over the body with the insignificant
// whitespace removed (what json.Compact produces). The body is never decoded
// and re-encoded: that would change key order and escaping, and the bytes
// Klavi signed would be lost.
//
// The body must be the bytes as received. With API Gateway and Lambda function
// URLs that means base64-decoding it first when the event says
// isBase64Encoded. Callers are expected to limit the body size before calling
// Verify.
package webhooksig

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names Klavi uses. Look them up with Header, not with a plain map
// index: API Gateway HTTP APIs lower-case header names, other front ends keep
// the sender's spelling.
const (
	SignatureHeader = "X-Klavi-Signature"
	TimestampHeader = "X-Klavi-Timestamp"
)

// DefaultTolerance is how far X-Klavi-Timestamp may be from the verifier's
// clock, in either direction, when Verifier.Tolerance is zero.
const DefaultTolerance = 5 * time.Minute

// Outcomes of Verify. None of them carries the secret, the signature or the
// body. ErrEmptySecret is a configuration fault of the receiver, not a fault of
// the request, so handlers usually answer it with a server error rather than
// 401.
var (
	ErrMissingSignature = errors.New("webhooksig: missing signature")
	ErrInvalidSignature = errors.New("webhooksig: invalid signature")
	ErrMissingTimestamp = errors.New("webhooksig: missing or malformed timestamp")
	ErrStaleTimestamp   = errors.New("webhooksig: timestamp outside tolerance")
	ErrEmptySecret      = errors.New("webhooksig: empty secret")
)

// signatureSize is the length of an HMAC-SHA256 in bytes.
const signatureSize = sha256.Size

// Verifier checks webhook signatures. The zero value is ready to use: it
// checks timestamps against time.Now with DefaultTolerance.
type Verifier struct {
	// Tolerance bounds |now - X-Klavi-Timestamp|. Zero means
	// DefaultTolerance; a negative value turns the timestamp check off (the
	// timestamp header is then ignored, even when absent or malformed).
	Tolerance time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Verify checks signature and timestamp (the header values) for body, signed
// with secret. The checks run in this order, and the first failure is
// returned:
//
//  1. signature empty: ErrMissingSignature;
//  2. timestamp, unless Tolerance < 0: missing or not an integer gives
//     ErrMissingTimestamp, further than Tolerance from now (past or future)
//     gives ErrStaleTimestamp;
//  3. secret empty: ErrEmptySecret (an empty key would let anyone sign);
//  4. signature not hex of the right length, or not matching the HMAC of the
//     raw body nor of its compact JSON form: ErrInvalidSignature.
//
// The signature may carry a "sha256=" prefix and may use upper- or lower-case
// hex. Verifying the raw body does not copy it.
func (v Verifier) Verify(secret, body []byte, signature, timestamp string) error {
	signature = strings.TrimSpace(signature)
	if signature == "" {
		return ErrMissingSignature
	}
	if err := v.checkTimestamp(timestamp); err != nil {
		return err
	}
	if len(secret) == 0 {
		return ErrEmptySecret
	}
	var want [signatureSize]byte
	if !decodeSignature(want[:], signature) {
		return ErrInvalidSignature
	}

	mac := hmac.New(sha256.New, secret)
	var sum [signatureSize]byte
	mac.Write(body)
	if hmac.Equal(mac.Sum(sum[:0]), want[:]) {
		return nil
	}
	// Klavi's sample signs JSON.stringify(body). Only a body that is valid
	// JSON and contains whitespace can have a different compact form; for
	// any other body a second HMAC could only repeat the first.
	if !bytes.ContainsAny(body, jsonSpace) || !json.Valid(body) {
		return ErrInvalidSignature
	}
	mac.Reset()
	writeCompact(mac, body)
	if hmac.Equal(mac.Sum(sum[:0]), want[:]) {
		return nil
	}
	return ErrInvalidSignature
}

// VerifyHeaders is Verify with the signature and timestamp looked up in
// headers, ignoring the case of the header names.
func (v Verifier) VerifyHeaders(secret, body []byte, headers map[string]string) error {
	return v.Verify(secret, body, Header(headers, SignatureHeader), Header(headers, TimestampHeader))
}

func (v Verifier) checkTimestamp(timestamp string) error {
	if v.Tolerance < 0 {
		return nil
	}
	tolerance := v.Tolerance
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return ErrMissingTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Compare in whole seconds against bounds computed from now, so that
	// absurd timestamps cannot overflow a subtraction. Flooring both bounds
	// is lenient by under a second, which matches the header's precision.
	t := now()
	if sec < t.Add(-tolerance).Unix() || sec > t.Add(tolerance).Unix() {
		return ErrStaleTimestamp
	}
	return nil
}

// WellFormed reports whether signature is written the way Klavi writes it:
// exactly 64 lowercase hex digits, no prefix, no space. Verify accepts more;
// the webhooks use WellFormed to decide whether a failed signature is worth
// re-reading the key for, so that junk signatures cost nothing.
func WellFormed(signature string) bool {
	if len(signature) != hex.EncodedLen(signatureSize) {
		return false
	}
	for i := range len(signature) {
		if c := signature[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeSignature decodes a hex HMAC-SHA256, optionally prefixed with
// "sha256=", into dst. It reports false for anything else.
func decodeSignature(dst []byte, signature string) bool {
	const prefix = "sha256="
	if len(signature) > len(prefix) && strings.EqualFold(signature[:len(prefix)], prefix) {
		signature = signature[len(prefix):]
	}
	if len(signature) != hex.EncodedLen(signatureSize) {
		return false
	}
	// Decode byte pairs by hand: hex.DecodeString would allocate, and its
	// error would quote part of the signature.
	for i := range signatureSize {
		hi, ok1 := fromHex(signature[2*i])
		lo, ok2 := fromHex(signature[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Header returns the value of the header called name, ignoring case. An
// exact match wins; among several spellings that differ only in case, the
// lexically smallest key wins, so the result does not depend on map order. It
// returns "" when there is none.
func Header(headers map[string]string, name string) string {
	if v, ok := headers[name]; ok {
		return v
	}
	var key, value string
	found := false
	for k, v := range headers {
		if strings.EqualFold(k, name) && (!found || k < key) {
			key, value, found = k, v, true
		}
	}
	return value
}

// Sign returns the signature and timestamp headers Klavi would send for body
// at the given time, signing the raw bytes.
func Sign(secret, body []byte, at time.Time) (signature, timestamp string) {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil)), strconv.FormatInt(at.Unix(), 10)
}

// SignCompact is Sign over json.Compact(body), the way Klavi's Node sample
// computes it. It fails when body is not valid JSON.
func SignCompact(secret, body []byte, at time.Time) (signature, timestamp string, err error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		// The syntax error would quote a byte of the body.
		return "", "", errors.New("webhooksig: sign compact: body is not valid JSON")
	}
	signature, timestamp = Sign(secret, compact.Bytes(), at)
	return signature, timestamp, nil
}

// ErrorCode maps a verification error to the stable snake_case code the
// webhooks answer and log: missing_signature, missing_timestamp,
// stale_timestamp, or invalid_signature for everything else.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrMissingSignature):
		return "missing_signature"
	case errors.Is(err, ErrMissingTimestamp):
		return "missing_timestamp"
	case errors.Is(err, ErrStaleTimestamp):
		return "stale_timestamp"
	default:
		return "invalid_signature"
	}
}
