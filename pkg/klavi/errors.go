package klavi

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinels for HTTP outcomes. An *APIError matches them with errors.Is.
var (
	ErrBadRequest   = errors.New("klavi: bad request")    // 400 or 422
	ErrUnauthorized = errors.New("klavi: unauthorized")   // 401
	ErrForbidden    = errors.New("klavi: forbidden")      // 403
	ErrNotFound     = errors.New("klavi: not found")      // 404
	ErrConflict     = errors.New("klavi: conflict")       // 409
	ErrRateLimited  = errors.New("klavi: rate limited")   // 429
	ErrServer       = errors.New("klavi: server error")   // 5xx
	ErrBusiness     = errors.New("klavi: business error") // 416, any statusCode
)

// Sentinels for Klavi's business statusCode values, sent with HTTP 416. They
// match on the code alone, whatever the HTTP status.
var (
	ErrInvalidAuthorisation = errors.New("klavi: invalid authorisation")             // 4001: consent expired or unknown
	ErrInvalidProduct       = errors.New("klavi: invalid product")                   // 4002: unknown product or wrong level
	ErrConsentLimit         = errors.New("klavi: consent limit exceeded")            // 4003
	ErrInvalidInstitution   = errors.New("klavi: invalid institution")               // 4004: outage or no permission
	ErrNoProducts           = errors.New("klavi: no products requested")             // 4005
	ErrInvalidCallbackURL   = errors.New("klavi: invalid productsCallbackURL")       // 4006
	ErrProductRequestFailed = errors.New("klavi: product request failed")            // 4007
	ErrNoOpenFinanceConsent = errors.New("klavi: no open finance consent available") // 4008
	ErrKYCRequired          = errors.New("klavi: KYC required")                      // 4009
)

var businessCodes = map[int]error{
	4001: ErrInvalidAuthorisation,
	4002: ErrInvalidProduct,
	4003: ErrConsentLimit,
	4004: ErrInvalidInstitution,
	4005: ErrNoProducts,
	4006: ErrInvalidCallbackURL,
	4007: ErrProductRequestFailed,
	4008: ErrNoOpenFinanceConsent,
	4009: ErrKYCRequired,
}

// ErrMalformedResponse is matched by the error for a 2xx answer whose body
// cannot be decoded or lacks a required field.
var ErrMalformedResponse = errors.New("klavi: malformed response")

// ErrInvalidRequest is matched by the error for a call refused before
// anything was sent: a missing required argument, an invalid TaxIDKind, or a
// client built without the TokenSource the call needs.
var ErrInvalidRequest = errors.New("klavi: invalid request")

// APIError is a non-2xx answer from Klavi. Its fields are safe to log:
// Message and ErrorText have had anything resembling a CPF, CNPJ, phone
// number or token removed and are length-capped.
type APIError struct {
	HTTPStatus int
	// StatusCode is Klavi's business code: the body's "statusCode" or, when
	// absent, its numeric "code". On HTTP 416 it is one of 4001..4009; on
	// other answers it usually repeats HTTPStatus. Zero when the body has
	// neither.
	StatusCode int
	ErrorText  string // the body's "error"
	Message    string // the body's "message"
	RequestID  string // from a request-id response header, when present
	Endpoint   string // route template, e.g. "POST /data/v1/links"
	// RetryAfter is the wait asked for by a Retry-After header, zero when
	// there was none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("klavi ")
	b.WriteString(e.Endpoint)
	b.WriteString(": http ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if e.StatusCode != 0 && e.StatusCode != e.HTTPStatus {
		b.WriteString(", code ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	text := e.ErrorText
	if text == "" {
		text = http.StatusText(e.HTTPStatus)
	}
	if text != "" {
		b.WriteString(": ")
		b.WriteString(text)
	}
	if e.Message != "" && e.Message != text {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is match the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.HTTPStatus == http.StatusBadRequest || e.HTTPStatus == http.StatusUnprocessableEntity
	case ErrUnauthorized:
		return e.HTTPStatus == http.StatusUnauthorized
	case ErrForbidden:
		return e.HTTPStatus == http.StatusForbidden
	case ErrNotFound:
		return e.HTTPStatus == http.StatusNotFound
	case ErrConflict:
		return e.HTTPStatus == http.StatusConflict
	case ErrRateLimited:
		return e.HTTPStatus == http.StatusTooManyRequests
	case ErrServer:
		return e.HTTPStatus >= 500 && e.HTTPStatus <= 599
	case ErrBusiness:
		return e.HTTPStatus == http.StatusRequestedRangeNotSatisfiable
	}
	if sentinel, ok := businessCodes[e.StatusCode]; ok {
		return target == sentinel
	}
	return false
}

// Retryable reports whether the failure is likely temporary (408, 429 or
// 5xx), so that trying again later may succeed. The client's own retries are
// narrower (see the package documentation): a 500 may mean the request took
// effect, so repeating a non-idempotent call stays the caller's decision.
func (e *APIError) Retryable() bool {
	return e.HTTPStatus == http.StatusRequestTimeout ||
		e.HTTPStatus == http.StatusTooManyRequests ||
		(e.HTTPStatus >= 500 && e.HTTPStatus <= 599)
}

// requestIDHeaders are the headers that may carry an id Klavi support can
// trace, in order of preference.
var requestIDHeaders = []string{
	"X-Request-Id",
	"X-Amzn-Requestid",
	"X-Amz-Request-Id",
	"X-Amz-Apigw-Id",
	"X-Correlation-Id",
}

func newAPIError(r *request, res attemptResult, token string, now time.Time) *APIError {
	e := &APIError{HTTPStatus: res.status, Endpoint: r.endpoint}
	secrets := append([]string{token}, r.sensitive...)
	var body struct {
		StatusCode json.RawMessage `json:"statusCode"`
		Code       json.RawMessage `json:"code"`
		Error      json.RawMessage `json:"error"`
		Message    json.RawMessage `json:"message"`
	}
	// A body that is not a JSON object (a gateway's HTML page, say) leaves
	// the fields empty; the status alone then describes the failure.
	if json.Unmarshal(res.body, &body) == nil {
		e.StatusCode = lenientInt(body.StatusCode)
		if e.StatusCode == 0 {
			e.StatusCode = lenientInt(body.Code)
		}
		e.ErrorText = sanitizeText(lenientText(body.Error), secrets, maxErrorTextLen)
		e.Message = sanitizeText(lenientText(body.Message), secrets, maxMessageLen)
	}
	for _, h := range requestIDHeaders {
		if v := res.header.Get(h); v != "" {
			e.RequestID = sanitizeText(v, secrets, 128)
			break
		}
	}
	if d, ok := parseRetryAfter(res.header, now); ok {
		e.RetryAfter = d
	}
	return e
}

// lenientInt reads a JSON number or numeric string; anything else is 0.
func lenientInt(raw json.RawMessage) int {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		n = json.Number(strings.TrimSpace(s))
	}
	i, err := strconv.Atoi(string(n))
	if err != nil {
		return 0
	}
	return i
}

// lenientText reads a JSON string, or an array of strings (the shape some
// frameworks use for validation messages) joined with "; ".
func lenientText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, "; ")
	}
	return ""
}

const (
	maxMessageLen   = 300
	maxErrorTextLen = 100
	redacted        = "[REDACTED]"
)

var (
	// tokenLike matches long runs of token alphabet characters: JWTs, keys,
	// URLs with embedded tokens.
	tokenLike = regexp.MustCompile(`[A-Za-z0-9._~+/=-]{32,}`)
	// cnpjLike matches an alphanumeric CNPJ (12 characters 0-9A-Z then two
	// check digits), masked or not.
	cnpjLike = regexp.MustCompile(`\b[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?[0-9]{2}\b`)
	// digitRun matches runs of digits with mask punctuation; those holding
	// 11 or more digits (CPF, CNPJ, phone numbers) are removed.
	digitRun = regexp.MustCompile(`[0-9][0-9. /()-]*[0-9]`)
	// emailLike matches anything shaped like an e-mail address.
	emailLike = regexp.MustCompile(`[^\s@"'<>,;:]+@[^\s@"'<>,;:]+`)
)

// replaceFold replaces every occurrence of old in s, compared without
// regard to case (Klavi echoes values back normalised: an e-mail in lower
// case, a key in upper case), with new.
func replaceFold(s, old, new string) string {
	if len(old) == 0 || len(s) < len(old) {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i+len(old) <= len(s); {
		if strings.EqualFold(s[i:i+len(old)], old) {
			b.WriteString(s[last:i])
			b.WriteString(new)
			i += len(old)
			last = i
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// sanitizeText makes text from a response safe for errors and logs: known
// secrets and anything that looks like a tax id, phone number or token are
// replaced, control characters become spaces and the result is capped at
// max bytes.
func sanitizeText(s string, secrets []string, max int) string {
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s = replaceFold(s, secret, redacted)
		}
	}
	// An e-mail address comes back from Klavi in any case it likes, and
	// may be one we never sent: every address-shaped run goes.
	s = emailLike.ReplaceAllString(s, redacted)
	s = tokenLike.ReplaceAllString(s, redacted)
	s = cnpjLike.ReplaceAllString(s, redacted)
	s = digitRun.ReplaceAllStringFunc(s, func(m string) string {
		digits := 0
		for i := 0; i < len(m); i++ {
			if m[i] >= '0' && m[i] <= '9' {
				digits++
			}
		}
		if digits >= 11 {
			return redacted
		}
		return m
	})
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
