package klavireport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// OracleParseEnvelope is the envelope reader as it was written on
// encoding/json alone: json.Unmarshal into a struct that names only the
// envelope keys. FuzzParseEnvelope holds ParseEnvelope to it.
var OracleParseEnvelope = oracleParseEnvelope

// oracleJSON names only the envelope keys. json.Unmarshal skips every
// other key, the product data included, by scanning it without allocating,
// and it checks that the whole body is valid JSON first, so a truncated
// report is rejected here rather than stored. A json.Decoder token walk was
// measured as the alternative and allocates far more: it copies the body
// into its buffer and allocates every skipped string token (see
// BenchmarkParseEnvelopeDecoderWalk5MB).
type oracleJSON struct {
	Code              reportCode      `json:"code"`
	Message           string          `json:"message"`
	RequestID         flexID          `json:"requestId"`
	ProductName       string          `json:"productName"`
	ProductVersion    string          `json:"productVersion"`
	ProductReportID   flexID          `json:"productReportId"`
	ProductReportTime string          `json:"productReportTime"`
	Links             []oracleLink    `json:"links"`
	ExternalInfo      json.RawMessage `json:"externalInfo"`
}

type oracleLink struct {
	LinkID flexID `json:"linkId"`
}

// ParseEnvelope reads the envelope of a product report body. body is not
// retained or modified.
//
// Errors wrap ErrMalformed or ErrMissingReportID and never contain body
// content: a syntax error reports only its byte offset, a type error only
// the envelope field name. With ErrMissingReportID the other fields that
// were read are returned too, so the caller can log which product failed.
func oracleParseEnvelope(body []byte) (Envelope, error) {
	if first := firstNonSpace(body); first != '{' {
		return Envelope{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var raw oracleJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return Envelope{}, oracleMalformed(err)
	}
	env := Envelope{
		Code:              int(raw.Code),
		Message:           raw.Message,
		RequestID:         string(raw.RequestID),
		ProductName:       raw.ProductName,
		ProductVersion:    raw.ProductVersion,
		ProductReportID:   string(raw.ProductReportID),
		ProductReportTime: raw.ProductReportTime,
		LinkIDs:           oracleLinkIDs(raw.Links),
	}
	if len(raw.ExternalInfo) > 0 && !bytes.Equal(raw.ExternalInfo, []byte("null")) {
		env.ExternalInfo = raw.ExternalInfo
	}
	if env.ProductReportID == "" {
		return env, ErrMissingReportID
	}
	return env, nil
}

// malformed turns a json error into ErrMalformed without its message: the
// json package quotes offending input characters in its messages.
func oracleMalformed(err error) error {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Errorf("%w: invalid JSON at byte %d", ErrMalformed, syntaxErr.Offset)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		// Field is built from this package's struct tags, never from input.
		return fmt.Errorf("%w: field %s has the wrong type", ErrMalformed, typeErr.Field)
	}
	return fmt.Errorf("%w: wrong JSON type", ErrMalformed)
}

func oracleLinkIDs(links []oracleLink) []string {
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
