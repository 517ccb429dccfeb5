package linkapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"strings"

	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// Limits on what a frontend may send.
const (
	maxBodyBytes         = 8 << 10 // a link request is a few hundred bytes
	maxExternalInfoBytes = 2 << 10
	maxEmailBytes        = 254
)

// createRequest is the body of POST /links. Unknown fields are rejected by
// name, so a frontend that sends productsCallbackUrl (or tries to set
// productsCallbackURL itself) fails loudly instead of being ignored.
type createRequest struct {
	PersonalTaxID   *string         `json:"personalTaxId"`
	BusinessTaxID   *string         `json:"businessTaxId"`
	Email           *string         `json:"email"`
	Phone           *string         `json:"phone"`
	InstitutionCode *string         `json:"institutionCode"`
	RedirectURL     *string         `json:"redirectURL"`
	ExternalInfo    json.RawMessage `json:"externalInfo"`
}

// validLink is a createRequest that passed every rule, normalised to what
// Klavi takes.
type validLink struct {
	taxID           taxid.ID // zero when none was given
	email           string
	phone           string // +55 E.164
	institutionCode string
	redirectURL     string
	externalInfo    json.RawMessage // compact JSON object, or nil
}

// invalidError is a validation failure: a stable code and a message a
// frontend developer can act on. It never quotes the rejected value, which
// may be personal data.
type invalidError struct {
	code    string
	message string
}

func (e *invalidError) Error() string { return e.code + ": " + e.message }

func invalid(code, format string, args ...any) error {
	return &invalidError{code: code, message: fmt.Sprintf(format, args...)}
}

// decodeCreate parses and validates a POST /links body.
func decodeCreate(body []byte, allowedHosts []string, allowLoopbackHTTP bool) (validLink, error) {
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return validLink{}, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return validLink{}, invalid("invalid_json", "The body must be a single JSON object.")
	}

	var v validLink
	if req.PersonalTaxID != nil && req.BusinessTaxID != nil {
		return validLink{}, invalid("conflicting_tax_ids", "Send personalTaxId or businessTaxId, not both.")
	}
	if req.PersonalTaxID != nil {
		id, err := taxid.ParseCPF(*req.PersonalTaxID)
		if err != nil {
			return validLink{}, invalid("invalid_tax_id", "personalTaxId is not a valid CPF (11 digits with valid check digits, masked or bare).")
		}
		v.taxID = id
	}
	if req.BusinessTaxID != nil {
		id, err := taxid.ParseCNPJ(*req.BusinessTaxID)
		if err != nil {
			return validLink{}, invalid("invalid_tax_id", "businessTaxId is not a valid CNPJ (14 characters, numeric or alphanumeric, with valid check digits, masked or bare).")
		}
		v.taxID = id
	}
	if req.Email != nil {
		email, err := normaliseEmail(*req.Email)
		if err != nil {
			return validLink{}, err
		}
		v.email = email
	}
	if req.Phone != nil {
		phone, err := NormalisePhone(*req.Phone)
		if err != nil {
			return validLink{}, err
		}
		v.phone = phone
	}
	if req.InstitutionCode != nil {
		if !isInstitutionCode(*req.InstitutionCode) {
			return validLink{}, invalid("invalid_institution_code", "institutionCode must be the institution's three-digit code, e.g. \"001\".")
		}
		v.institutionCode = *req.InstitutionCode
	}
	if req.RedirectURL != nil {
		u, err := checkRedirect(*req.RedirectURL, allowedHosts, allowLoopbackHTTP)
		if err != nil {
			return validLink{}, err
		}
		v.redirectURL = u
	}
	if len(req.ExternalInfo) > 0 && !bytes.Equal(req.ExternalInfo, []byte("null")) {
		info, err := checkExternalInfo(req.ExternalInfo)
		if err != nil {
			return validLink{}, err
		}
		v.externalInfo = info
	}
	return v, nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return invalid("invalid_field_type", "Field %q has the wrong type; expected %s.", typeErr.Field, typeErr.Type.String())
	case errors.As(err, &typeErr):
		return invalid("invalid_json", "The body must be a JSON object.")
	case errors.As(err, &syntaxErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("invalid_json", "The body is not valid JSON.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this; the field name comes
		// from our own struct comparison and is safe to echo.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if len(name) > 64 {
			name = name[:64]
		}
		return invalid("unknown_field", "Unknown field %q. Accepted fields: personalTaxId, businessTaxId, email, phone, institutionCode, redirectURL, externalInfo.", name)
	default:
		return invalid("invalid_json", "The body is not valid JSON.")
	}
}

func normaliseEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxEmailBytes {
		return "", invalid("invalid_email", "email must be a plain address such as name@example.com.")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", invalid("invalid_email", "email must be a plain address such as name@example.com.")
	}
	return s, nil
}

// NormalisePhone turns a Brazilian phone number, written any common way, into
// the +55 E.164 form Klavi accepts: +55, a two-digit area code (DDD) and an
// 8-digit landline or a 9-digit mobile starting with 9.
func NormalisePhone(s string) (string, error) {
	bad := invalid("invalid_phone", "phone must be a Brazilian number with area code, e.g. +55 11 98765-4321.")
	var digits strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == '+' && i == 0:
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return "", bad
		}
	}
	d := digits.String()
	hasCountry := strings.HasPrefix(strings.TrimSpace(s), "+")
	switch {
	case hasCountry:
		if !strings.HasPrefix(d, "55") {
			return "", bad
		}
		d = d[2:]
	case strings.HasPrefix(d, "0"):
		d = d[1:] // trunk prefix "0" before the area code
	case len(d) > 11 && strings.HasPrefix(d, "55"):
		d = d[2:]
	}
	if len(d) != 10 && len(d) != 11 {
		return "", bad
	}
	if d[0] == '0' || d[1] == '0' {
		return "", bad // area codes are 11..99 with no zero digit
	}
	local := d[2:]
	switch len(local) {
	case 9:
		if local[0] != '9' {
			return "", bad
		}
	case 8:
		if local[0] < '2' || local[0] > '5' {
			return "", bad // 8-digit numbers are landlines starting 2-5
		}
	}
	return "+55" + d, nil
}

func isInstitutionCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkRedirect allows only https URLs on an allowed host, so a link cannot
// be used as an open redirect. An entry "*.example.com" allows subdomains.
//
// With allowLoopbackHTTP (local development only), http on 127.0.0.1 or
// localhost is accepted too, still subject to the host list.
func checkRedirect(raw string, allowedHosts []string, allowLoopbackHTTP bool) (string, error) {
	u, err := url.Parse(raw)
	secure := err == nil && (u.Scheme == "https" || allowLoopbackHTTP && u.Scheme == "http" && isLoopback(u.Hostname()))
	if err != nil || !secure || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", invalid("invalid_redirect_url", "redirectURL must be an absolute https URL.")
	}
	host := strings.ToLower(u.Hostname())
	for _, allowed := range allowedHosts {
		allowed = strings.ToLower(allowed)
		if host == allowed {
			return u.String(), nil
		}
		if suffix, ok := strings.CutPrefix(allowed, "*."); ok && strings.HasSuffix(host, "."+suffix) {
			return u.String(), nil
		}
	}
	return "", invalid("redirect_host_not_allowed", "redirectURL's host is not in the backend's allowed redirect hosts (ALLOWED_REDIRECT_HOSTS).")
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func checkExternalInfo(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, invalid("invalid_external_info", "externalInfo must be a JSON object.")
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, invalid("invalid_external_info", "externalInfo must be a JSON object.")
	}
	if buf.Len() > maxExternalInfoBytes {
		return nil, invalid("external_info_too_large", "externalInfo must be at most %d bytes of JSON.", maxExternalInfoBytes)
	}
	return json.RawMessage(buf.Bytes()), nil
}
