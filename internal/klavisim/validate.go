package klavisim

import (
	"encoding/json"
	"maps"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// validCPF reports whether s is a bare CPF: 11 digits whose last two are
// the check digits of the first nine. Repeated digits (111.111.111-11) pass
// the arithmetic but are never assigned, so they are refused as well.
func validCPF(s string) bool {
	if len(s) != 11 || !allDigits(s) || allSame(s) {
		return false
	}
	return s[9]-'0' == cpfDigit(s[:9]) && s[10]-'0' == cpfDigit(s[:10])
}

// cpfDigit is the modulo-11 check digit over digits weighted n+1 .. 2.
func cpfDigit(digits string) byte {
	sum := 0
	w := len(digits) + 1
	for i := range len(digits) {
		sum += int(digits[i]-'0') * (w - i)
	}
	r := sum * 10 % 11
	if r == 10 {
		r = 0
	}
	return byte(r)
}

// validCNPJ reports whether s is a bare CNPJ: 12 characters 0-9 or A-Z
// (alphanumeric CNPJs are assigned from July 2026) followed by two check
// digits. Each character is valued by its ASCII code minus 48, so digits
// keep their value and 'A' is 17.
func validCNPJ(s string) bool {
	if len(s) != 14 || !allDigits(s[12:]) || allSame(s) {
		return false
	}
	for i := range 12 {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return s[12]-'0' == cnpjDigit(s[:12]) && s[13]-'0' == cnpjDigit(s[:13])
}

// cnpjDigit is the modulo-11 check digit with weights 2..9 repeating from
// the right.
func cnpjDigit(chars string) byte {
	sum := 0
	w := 2
	for i := len(chars) - 1; i >= 0; i-- {
		sum += int(chars[i]-'0') * w
		w++
		if w > 9 {
			w = 2
		}
	}
	r := sum % 11
	if r < 2 {
		return 0
	}
	return byte(11 - r)
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func allSame(s string) bool {
	return strings.Count(s, s[:1]) == len(s)
}

// looksMasked spots the punctuation of 123.456.789-09 and 12.345.678/0001-95.
func looksMasked(s string) bool {
	return strings.ContainsAny(s, ".-/ ")
}

// checkCPF validates a tax id field that must hold a CPF. Messages name the
// field, never the value.
func checkCPF(field, v string) *apiError {
	switch {
	case looksMasked(v):
		return errBadRequest(field + " must be digits only, without mask")
	case !validCPF(v):
		return errBadRequest(field + " is not a valid CPF")
	}
	return nil
}

// checkCNPJ validates a tax id field that must hold a CNPJ.
func checkCNPJ(field, v string) *apiError {
	switch {
	case looksMasked(v):
		return errBadRequest(field + " must be sent without mask")
	case strings.ToUpper(v) != v:
		return errBadRequest(field + " must use upper-case letters")
	case !validCNPJ(v):
		return errBadRequest(field + " is not a valid CNPJ")
	}
	return nil
}

// checkTaxID validates a CPF for personal and a CNPJ for business.
func checkTaxID(personType, field, v string) *apiError {
	if personType == PersonBusiness {
		return checkCNPJ(field, v)
	}
	return checkCPF(field, v)
}

// validInstitutionCode accepts the 3-digit COMPE-style codes of every
// example ("001", "260"); a code that lost its leading zeros is refused.
func validInstitutionCode(s string) bool {
	return len(s) == 3 && allDigits(s)
}

// absoluteHTTPURL reports whether s is an absolute http or https URL.
func absoluteHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

// validPhone accepts the E.164 Brazilian shape a client settled on after
// Klavi's 400 "Invalid phone": +55, a two-digit area code, 8 or 9 digits.
func validPhone(s string) bool {
	rest, ok := strings.CutPrefix(s, "+55")
	return ok && (len(rest) == 10 || len(rest) == 11) && allDigits(rest)
}

// validEmail accepts a bare address (no display name).
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// checkCallbacks validates productsCallbackURL: an object whose keys are
// contracted products, "other" or "all" ("all" alone), and whose values are
// absolute http(s) URLs. Every failure is business error 4006.
func (s *Simulator) checkCallbacks(raw json.RawMessage) (map[string]string, *apiError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errBusiness(codeInvalidCallback, "productsCallbackURL must be an object of product name to URL")
	}
	if len(m) == 0 {
		return nil, errBusiness(codeInvalidCallback, "productsCallbackURL must not be empty")
	}
	if _, ok := m["all"]; ok && len(m) > 1 {
		return nil, errBusiness(codeInvalidCallback, `productsCallbackURL key "all" cannot be combined with other keys`)
	}
	out := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "all" && k != "other" && !s.products[k] {
			return nil, errBusiness(codeInvalidCallback, "productsCallbackURL key "+quoteName(k)+" is not a product")
		}
		var u string
		if err := json.Unmarshal(m[k], &u); err != nil || !absoluteHTTPURL(u) {
			return nil, errBusiness(codeInvalidCallback, "productsCallbackURL["+quoteName(k)+"] must be an absolute http(s) URL")
		}
		out[k] = u
	}
	return out, nil
}

// checkProducts validates the products of a report request: at least one
// (4005), each contracted and of the endpoint's person type (4002).
func (s *Simulator) checkProducts(personType string, products []string) *apiError {
	if len(products) == 0 {
		return errBusiness(codeInvalidProducts, "products must have at least 1 item")
	}
	wrong := "pj_"
	if personType == PersonBusiness {
		wrong = "pf_"
	}
	for _, p := range products {
		if !s.products[p] {
			return errBusiness(codeInvalidProduct, "product "+quoteName(p)+" does not exist or is not contracted")
		}
		if strings.HasPrefix(p, wrong) {
			return errBusiness(codeInvalidProduct, "product "+quoteName(p)+" is not a "+personType+" product")
		}
	}
	return nil
}

// quoteName quotes a client-sent name (a field or product) for an error
// message only when it looks like an identifier, so that a tax id or a
// token sent in the wrong place is never echoed back.
func quoteName(name string) string {
	letter := false
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9', c == '_':
		default:
			return "(redacted)"
		}
	}
	if !letter || len(name) > 64 {
		return "(redacted)"
	}
	return strconv.Quote(name)
}
