// Package taxid validates Brazilian tax ids: the CPF of a person and the
// CNPJ of a company.
//
// A CPF is 11 digits, the last two being mod-11 check digits. A CNPJ is 14
// characters: since July 2026 the first 12 may be digits or upper-case letters
// A-Z (new CNPJs are alphanumeric; existing numeric ones stay valid), and the
// last two are numeric mod-11 check digits, computed with every character
// valued at its ASCII code minus 48 (so '0'-'9' are 0-9 and 'A' is 17).
//
// Input may carry the usual mask (123.456.789-09, 12.345.678/0001-95,
// 12.ABC.345/01DE-35): dots, hyphens, slashes and spaces are removed before
// validation, wherever they appear. Lower-case letters are rejected rather
// than upper-cased, because the CNPJ rules define upper case only and
// guessing would accept ids that were mistyped.
//
// An ID keeps the bare form Klavi takes (Bare) but prints masked: String,
// fmt verbs and slog all show Masked, so a tax id that ends up in a log line
// by accident does not leak. Errors never contain the input.
package taxid

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// Kind tells a person's CPF from a company's CNPJ.
type Kind string

// The kinds of tax id.
const (
	CPF  Kind = "cpf"
	CNPJ Kind = "cnpj"
)

const (
	cpfLen  = 11
	cnpjLen = 14
	// cnpjBaseLen is the part of a CNPJ that may hold letters; the rest
	// is the two numeric check digits.
	cnpjBaseLen = 12
)

// Reasons a tax id is rejected. ErrLowercase wraps ErrCharacter, so callers
// that only care about "bad character" need check ErrCharacter alone.
var (
	ErrEmpty       = errors.New("taxid: empty")
	ErrLength      = errors.New("taxid: wrong length (CPF has 11 digits, CNPJ 14 characters)")
	ErrCharacter   = errors.New("taxid: invalid character")
	ErrLowercase   = fmt.Errorf("%w: lower-case letter (CNPJ letters must be upper case)", ErrCharacter)
	ErrRepeated    = errors.New("taxid: all characters are the same")
	ErrCheckDigits = errors.New("taxid: check digits do not match")
)

// ID is a validated CPF or CNPJ. The zero value is not a valid id (IsZero
// reports true). IDs are comparable with ==.
type ID struct {
	kind Kind
	bare string
}

// Parse validates s as a CPF or a CNPJ, deciding by its length once the mask
// is removed: 11 characters for a CPF, 14 for a CNPJ.
func Parse(s string) (ID, error) {
	bare := strip(s)
	if bare == "" {
		return ID{}, fmt.Errorf("parse tax id: %w", ErrEmpty)
	}
	if !alphanumeric(bare) {
		return ID{}, fmt.Errorf("parse tax id: %w", ErrCharacter)
	}
	switch len(bare) {
	case cpfLen:
		return ParseCPF(bare)
	case cnpjLen:
		return ParseCNPJ(bare)
	}
	return ID{}, fmt.Errorf("parse tax id: %w", ErrLength)
}

// ParseCPF validates s as a CPF, with or without mask.
func ParseCPF(s string) (ID, error) {
	bare := strip(s)
	if err := checkCPF(bare); err != nil {
		return ID{}, fmt.Errorf("parse cpf: %w", err)
	}
	return ID{kind: CPF, bare: bare}, nil
}

// ParseCNPJ validates s as a numeric or alphanumeric CNPJ, with or without
// mask.
func ParseCNPJ(s string) (ID, error) {
	bare := strip(s)
	if err := checkCNPJ(bare); err != nil {
		return ID{}, fmt.Errorf("parse cnpj: %w", err)
	}
	return ID{kind: CNPJ, bare: bare}, nil
}

// Valid reports whether s is a valid CPF or CNPJ, with or without mask.
func Valid(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// Kind returns CPF or CNPJ, or "" for the zero ID.
func (id ID) Kind() Kind { return id.kind }

// Bare returns the id without mask (11 digits, or 14 characters with upper-
// case letters), the form Klavi takes. It returns "" for the zero ID. Never
// log it.
func (id ID) Bare() string { return id.bare }

// IsZero reports whether id is the zero ID, which no Parse function returns
// without an error.
func (id ID) IsZero() bool { return id.bare == "" }

// Masked returns the id for display with the check digits and the leading
// characters hidden:
//
//	CPF   529.982.247-25     -> ***.982.247-**      (digits 4-9 shown)
//	CNPJ  12.ABC.345/01DE-35 -> **.***.345/01DE-**  (characters 6-12 shown)
//
// The CPF form is the usual Brazilian display mask. The check digits are
// always hidden because they would let a reader confirm guesses of the hidden
// part. The CNPJ form shows the end of the company root and the branch
// number, which tell a company's branches apart. It returns "" for the zero
// ID.
func (id ID) Masked() string {
	b := id.bare
	switch id.kind {
	case CPF:
		return "***." + b[3:6] + "." + b[6:9] + "-**"
	case CNPJ:
		return "**.***." + b[5:8] + "/" + b[8:12] + "-**"
	}
	return ""
}

// String returns Masked, so that printing an ID never shows the full id.
func (id ID) String() string { return id.Masked() }

// Format prints Masked for every verb, %q quoting it. Without it, %#v or %d
// would print the struct fields, the bare id among them.
func (id ID) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, strconv.Quote(id.Masked()))
		return
	}
	io.WriteString(f, id.Masked())
}

// LogValue makes slog record the masked id.
func (id ID) LogValue() slog.Value { return slog.StringValue(id.Masked()) }

// strip removes the mask characters. It allocates only when there are some.
func strip(s string) string {
	if !strings.ContainsAny(s, ".-/ ") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := range len(s) {
		switch c := s[i]; c {
		case '.', '-', '/', ' ':
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// alphanumeric reports whether s holds only ASCII letters and digits, so
// that a stray symbol is reported as such rather than as a wrong length.
func alphanumeric(s string) bool {
	for i := range len(s) {
		if c := s[i]; !isDigit(c) && !isUpper(c) && !isLower(c) {
			return false
		}
	}
	return true
}

// repeated reports whether s is one character repeated, such as
// 00000000000: those pass the check-digit arithmetic but are not issued.
func repeated(s string) bool {
	return strings.Count(s, s[:1]) == len(s)
}

func checkCPF(bare string) error {
	if bare == "" {
		return ErrEmpty
	}
	if !alphanumeric(bare) {
		return ErrCharacter
	}
	if len(bare) != cpfLen {
		return ErrLength
	}
	for i := range len(bare) {
		if !isDigit(bare[i]) {
			return ErrCharacter
		}
	}
	if repeated(bare) {
		return ErrRepeated
	}
	if bare[9] != cpfDigit(bare[:9]) || bare[10] != cpfDigit(bare[:10]) {
		return ErrCheckDigits
	}
	return nil
}

func checkCNPJ(bare string) error {
	if bare == "" {
		return ErrEmpty
	}
	if !alphanumeric(bare) {
		return ErrCharacter
	}
	if len(bare) != cnpjLen {
		return ErrLength
	}
	for i := range cnpjBaseLen {
		if isLower(bare[i]) {
			return ErrLowercase
		}
	}
	if !isDigit(bare[12]) || !isDigit(bare[13]) {
		return ErrCharacter
	}
	if repeated(bare) {
		return ErrRepeated
	}
	if bare[12] != cnpjDigit(bare[:12]) || bare[13] != cnpjDigit(bare[:13]) {
		return ErrCheckDigits
	}
	return nil
}

// cpfDigit returns the check digit, as an ASCII digit, that follows the
// digits of s: weights 2, 3, 4, ... from the right.
func cpfDigit(s string) byte {
	sum, w := 0, 2
	for i := len(s) - 1; i >= 0; i-- {
		sum += int(s[i]-'0') * w
		w++
	}
	return mod11(sum)
}

// cnpjDigit returns the check digit, as an ASCII digit, that follows the
// characters of s: each valued at its ASCII code minus 48, weights 2 to 9
// from the right, starting again at 2 after 9.
func cnpjDigit(s string) byte {
	sum, w := 0, 2
	for i := len(s) - 1; i >= 0; i-- {
		sum += int(s[i]-'0') * w
		if w++; w > 9 {
			w = 2
		}
	}
	return mod11(sum)
}

// mod11 turns a weighted sum into a check digit: 0 when the remainder is 0
// or 1, otherwise 11 minus the remainder.
func mod11(sum int) byte {
	r := sum % 11
	if r < 2 {
		return '0'
	}
	return byte('0' + 11 - r)
}
