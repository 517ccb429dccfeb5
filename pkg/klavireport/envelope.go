// Package klavireport reads the envelope of a Klavi product report (Klavi's
// "Common Format"): the top-level fields that say which report a body is,
// which request and links it belongs to and whether Klavi produced it
// successfully.
//
// Reports are megabytes of transactions. The product data is never decoded
// into Go values and the body is never copied: the caller stores the bytes
// exactly as received and decodes product data later, per productName, if
// it needs to.
package klavireport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/openfinance-br/klavi-link-lambda/pkg/jsonscan"
)

var (
	// ErrMalformed reports a body that is not a JSON object or whose
	// envelope fields have the wrong types.
	ErrMalformed = errors.New("malformed report envelope")
	// ErrMissingReportID reports a well-formed envelope without a
	// productReportId, the key a report is stored and deduplicated under.
	ErrMissingReportID = errors.New("report envelope has no productReportId")
)

// Envelope holds the envelope fields of a product report. The customer's
// tax id (enquiryCpf) is deliberately absent: it is never read out of the
// body.
type Envelope struct {
	// Code is Klavi's report return code: 200 OK, 204 partial data,
	// 5000-5299 errors. Zero when the body has no code.
	Code              int
	Message           string
	RequestID         string
	ProductName       string
	ProductVersion    string
	ProductReportID   string
	ProductReportTime string
	// LinkIDs are the non-empty links[].linkId values, without repeats, in
	// body order.
	LinkIDs []string
	// ExternalInfo is the externalInfo value as sent, nil when absent or
	// null.
	ExternalInfo json.RawMessage
}

// envelopeJSON holds the envelope fields with the types that give them
// their rules (numbers or strings for ids and the code). ParseEnvelope
// decodes into it one field at a time, with encoding/json, only the values
// of envelope keys: those are a few bytes, and decoding each with the
// standard library keeps its rules for nulls, repeated keys and types.
type envelopeJSON struct {
	Code              reportCode
	Message           string
	RequestID         flexID
	ProductName       string
	ProductVersion    string
	ProductReportID   flexID
	ProductReportTime string
	Links             []linkJSON
	ExternalInfo      json.RawMessage
}

// field returns the field a top-level key names, matched as encoding/json
// matches keys to struct tags (case-insensitively), and its name; nil for a
// key that is not part of the envelope.
func (e *envelopeJSON) field(key []byte) (any, string) {
	for _, f := range [...]struct {
		name string
		ptr  any
	}{
		{"productReportId", &e.ProductReportID},
		{"productName", &e.ProductName},
		{"requestId", &e.RequestID},
		{"code", &e.Code},
		{"links", &e.Links},
		{"message", &e.Message},
		{"productVersion", &e.ProductVersion},
		{"productReportTime", &e.ProductReportTime},
		{"externalInfo", &e.ExternalInfo},
	} {
		if jsonscan.KeyIs(key, f.name) {
			return f.ptr, f.name
		}
	}
	return nil, ""
}

type linkJSON struct {
	LinkID flexID `json:"linkId"`
}

// ParseEnvelope reads the envelope of a product report body. body is not
// retained or modified.
//
// Errors wrap ErrMalformed or ErrMissingReportID and never contain body
// content: a syntax error reports only its byte offset, a type error only
// the envelope field name. With ErrMissingReportID the other fields that
// were read are returned too, so the caller can log which product failed.
func ParseEnvelope(body []byte) (Envelope, error) {
	if first := firstNonSpace(body); first != '{' {
		return Envelope{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	// One pass over the body: jsonscan checks the syntax of every value and
	// skips those outside the envelope without decoding them, so a
	// truncated report is rejected here rather than stored.
	var raw envelopeJSON
	var typeErr error
	end, err := jsonscan.Members(body, 0, 0, func(key []byte, at int) (int, error) {
		end, err := jsonscan.SkipValue(body, at, 1)
		if err != nil {
			return end, err
		}
		if ptr, name := raw.field(key); ptr != nil && typeErr == nil {
			if err := json.Unmarshal(body[at:end], ptr); err != nil {
				// Only the field name, which is ours: a type error's
				// text can quote input.
				typeErr = fmt.Errorf("%w: field %s has the wrong type", ErrMalformed, name)
			}
		}
		return end, nil
	})
	if err == nil {
		if end = jsonscan.SkipSpace(body, end); end < len(body) {
			err = &jsonscan.SyntaxError{Offset: end}
		}
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if typeErr != nil {
		return Envelope{}, typeErr
	}
	env := Envelope{
		Code:              int(raw.Code),
		Message:           raw.Message,
		RequestID:         string(raw.RequestID),
		ProductName:       raw.ProductName,
		ProductVersion:    raw.ProductVersion,
		ProductReportID:   string(raw.ProductReportID),
		ProductReportTime: raw.ProductReportTime,
		LinkIDs:           linkIDs(raw.Links),
	}
	if len(raw.ExternalInfo) > 0 && !bytes.Equal(raw.ExternalInfo, []byte("null")) {
		env.ExternalInfo = raw.ExternalInfo
	}
	if env.ProductReportID == "" {
		return env, ErrMissingReportID
	}
	return env, nil
}

func linkIDs(links []linkJSON) []string {
	var ids []string
	for _, l := range links {
		id := string(l.LinkID)
		if id == "" || contains(ids, id) {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, have := range ids {
		if have == id {
			return true
		}
	}
	return false
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// reportCode accepts the report code as a JSON number or as a string
// holding one ("200"): Klavi documents a number, but several of its fields
// typed number arrive as strings.
type reportCode int

func (c *reportCode) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	text := b
	if len(text) >= 2 && text[0] == '"' {
		text = bytes.TrimSpace(text[1 : len(text)-1])
	}
	n, ok := parseInt(text)
	if !ok {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[int]()}
	}
	*c = reportCode(n)
	return nil
}

// parseInt accepts integers written as JSON numbers, including integral
// forms such as 200.0 or 2e2, within the int32 range: report codes have
// four digits, so anything longer is not a code.
func parseInt(text []byte) (int, bool) {
	s := string(text)
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return int(n), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}

// flexID accepts an identifier sent as a JSON string or number; a number
// is kept as written.
type flexID string

func (id *flexID) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*id = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = flexID(s)
		return nil
	case b[0] == '-' || ('0' <= b[0] && b[0] <= '9'):
		*id = flexID(b)
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[string]()}
}

// jsonKind names the JSON type of a valid value for a type error.
func jsonKind(b []byte) string {
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	}
	return "number"
}
