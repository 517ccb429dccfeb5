// Package httpapi holds what every API Gateway HTTP API (payload format 2.0)
// handler of this project does the same way: reading the body within a size
// limit, case-insensitive headers, content-type checks, the source-IP allow
// list, and the one shape of every response, including errors:
//
//	{"error":{"code":"<stable_snake_case>","message":"<for a human>"}}
//
// Error messages are fixed strings chosen by the handler; the cause of a
// failure goes to the log, never to the caller.
package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/aws/aws-lambda-go/events"
)

// Request and Response are the HTTP API 2.0 event shapes.
type (
	Request  = events.APIGatewayV2HTTPRequest
	Response = events.APIGatewayV2HTTPResponse
)

// ErrBodyTooLarge reports a body over the handler's limit.
var ErrBodyTooLarge = errors.New("request body too large")

// ErrBadEncoding reports a body that API Gateway marked base64 but that does
// not decode.
var ErrBadEncoding = errors.New("request body is not valid base64")

// Body returns the raw request bytes exactly as the client sent them,
// decoding base64 when API Gateway says so, and refuses bodies over limit
// bytes. Limits are checked before decoding so a huge body costs no copy.
//
// The returned slice is READ-ONLY: for a plain body it shares memory with
// req.Body (a report can be megabytes, and the Lambda event already holds
// it once), so writing to it would corrupt an immutable string. Hashing,
// JSON decoding and uploading only read it.
func Body(req Request, limit int) ([]byte, error) {
	if !req.IsBase64Encoded {
		if len(req.Body) > limit {
			return nil, ErrBodyTooLarge
		}
		return unsafe.Slice(unsafe.StringData(req.Body), len(req.Body)), nil
	}
	if base64.StdEncoding.DecodedLen(len(req.Body)) > limit+2 {
		return nil, ErrBodyTooLarge
	}
	raw, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, ErrBadEncoding
	}
	if len(raw) > limit {
		return nil, ErrBodyTooLarge
	}
	return raw, nil
}

// Header returns the value of the named header, whatever its case. HTTP API
// lower-cases header names, but a test client or another proxy may not.
func Header(req Request, name string) string {
	if v, ok := req.Headers[strings.ToLower(name)]; ok {
		return v
	}
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// IsJSON reports whether the request declares a JSON body
// (application/json or any +json type, parameters allowed).
func IsJSON(req Request) bool {
	mt, _, err := mime.ParseMediaType(Header(req, "Content-Type"))
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// JSON builds a response with v encoded as the body.
func JSON(status int, v any) Response {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; a failure is a bug.
		return Error(http.StatusInternalServerError, "internal_error", "The request could not be completed.")
	}
	return Response{
		StatusCode: status,
		Headers: map[string]string{
			"Content-Type":           "application/json",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
		},
		Body: string(body),
	}
}

// ErrorBody is the JSON shape of every error this API returns.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code for programs and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error builds an error response. code is stable snake_case; message is a
// fixed sentence for a human and must never carry internal error text.
func Error(status int, code, message string) Response {
	return JSON(status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// Allowlist is a set of source networks allowed to call a route. The zero
// value allows everyone.
type Allowlist struct {
	prefixes []netip.Prefix
}

// ParseAllowlist reads a comma-separated list of CIDRs or bare addresses
// (KLAVI_SOURCE_IPS). An empty list allows everyone.
func ParseAllowlist(list string) (Allowlist, error) {
	var a Allowlist
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return Allowlist{}, fmt.Errorf("source allow list: %q is not an IP address or CIDR", item)
			}
			a.prefixes = append(a.prefixes, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return Allowlist{}, fmt.Errorf("source allow list: %q is not a CIDR", item)
		}
		a.prefixes = append(a.prefixes, p.Masked())
	}
	return a, nil
}

// Enabled reports whether the list restricts anything.
func (a Allowlist) Enabled() bool { return len(a.prefixes) > 0 }

// Allows reports whether the request's source IP (as API Gateway saw it) is
// allowed. An unparsable source is refused when the list is enabled.
func (a Allowlist) Allows(req Request) bool {
	if !a.Enabled() {
		return true
	}
	addr, err := netip.ParseAddr(req.RequestContext.HTTP.SourceIP)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ReportWebhookPath is the report webhook's route on the HTTP API.
const ReportWebhookPath = "/webhooks/klavi/reports"

// ReportWebhookURL is the report webhook on the API the request came in
// through (its domain and, unless $default, its stage); "" when the request
// carries no domain.
func ReportWebhookURL(req Request) string {
	if req.RequestContext.DomainName == "" {
		return ""
	}
	base := "https://" + req.RequestContext.DomainName
	if stage := req.RequestContext.Stage; stage != "" && stage != "$default" {
		base += "/" + stage
	}
	return base + ReportWebhookPath
}
