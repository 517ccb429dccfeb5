package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unsafe"

	"github.com/openfinance-br/klavi-link-lambda/pkg/jsonscan"
)

// ReadRequest decodes an HTTP API 2.0 event from the Lambda payload bytes,
// for a route whose bodies are megabytes (the report webhook). It gives the
// Request the Lambda runtime would decode from the same bytes, but reads the
// body once: the body's JSON string is unquoted straight into one buffer,
// which becomes req.Body without another copy, and the rest of the event (a
// few hundred bytes of headers and request context) is decoded with
// encoding/json, with the runtime's rules. Reflect-decoding the whole event
// instead validates the body, then unquotes it into a scratch buffer and
// copies that into a string: three passes and two copies.
//
// As with the runtime's decoder, bytes after the event's object are
// ignored. Errors carry no payload content.
func ReadRequest(payload []byte) (Request, error) {
	req, _, err := ReadRequestInto(payload, nil)
	return req, err
}

// ReadRequestInto is ReadRequest with the body unquoted into scratch when
// scratch has room for it (a new buffer otherwise). It returns the buffer
// req.Body is in, for the caller to use again once it is done with req: a
// function that receives megabyte bodies then neither allocates nor zeroes
// one per invocation. req.Body shares the buffer's memory, so the buffer
// must not be written while req.Body is in use.
func ReadRequestInto(payload, scratch []byte) (Request, []byte, error) {
	var req Request
	if start := jsonscan.SkipSpace(payload, 0); start >= len(payload) || payload[start] != '{' {
		// Not an object (null, or not an event at all): no body to take
		// care of, so the runtime's own decoding answers.
		if err := json.NewDecoder(bytes.NewReader(payload)).Decode(&req); err != nil {
			return Request{}, scratch, fmt.Errorf("decode HTTP API event: %w", jsonError(err))
		}
		return req, scratch, nil
	}
	var body []byte
	hasBody := false
	var cuts [][2]int // the body values, replaced by "" in the rest
	end, err := jsonscan.Members(payload, 0, 0, func(key []byte, at int) (int, error) {
		if at >= len(payload) || payload[at] != '"' || !jsonscan.KeyIs(key, "body") {
			return jsonscan.SkipValue(payload, at, 1)
		}
		// Sized from what is left of the payload, which holds the quoted
		// body: unquoting only shortens it, so the buffer never grows.
		dst := scratch[:0]
		if need := len(payload) - at + 8; cap(dst) < need {
			dst = make([]byte, 0, need)
		}
		buf, end, err := jsonscan.Unquote(dst, payload, at)
		if err != nil {
			return end, err
		}
		// A repeated "body" key is unquoted after the first: never into
		// the buffer the first one is in.
		scratch = nil
		body, hasBody = buf, true
		cuts = append(cuts, [2]int{at, end})
		return end, nil
	})
	if err != nil {
		return Request{}, body, fmt.Errorf("decode HTTP API event: %w", err)
	}
	rest := payload[:end]
	if len(cuts) > 0 {
		n := end
		for _, c := range cuts {
			n -= c[1] - c[0] - 2
		}
		rest = make([]byte, 0, n)
		from := 0
		for _, c := range cuts {
			rest = append(rest, payload[from:c[0]]...)
			rest = append(rest, `""`...)
			from = c[1]
		}
		rest = append(rest, payload[from:end]...)
	}
	if err := json.Unmarshal(rest, &req); err != nil {
		return Request{}, body, fmt.Errorf("decode HTTP API event: %w", jsonError(err))
	}
	if hasBody {
		// A later "body": null leaves the last string in place, as it
		// does for the runtime's decoder. body is not written again
		// until the caller is done with req (see ReadRequestInto).
		req.Body = unsafe.String(unsafe.SliceData(body), len(body))
	}
	return req, body, nil
}

// jsonError keeps the class of a decoding error and drops its text, which
// can quote the payload.
func jsonError(err error) error {
	switch e := err.(type) {
	case *json.SyntaxError:
		return &jsonscan.SyntaxError{Offset: int(e.Offset)}
	case *json.UnmarshalTypeError:
		return fmt.Errorf("field %s has the wrong type", e.Field)
	}
	return fmt.Errorf("not an HTTP API event")
}
