package taxid_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// validIDs holds ids whose check digits were computed independently of this
// package. 12ABC34501DE35 is the Receita Federal's published example of an
// alphanumeric CNPJ.
var validIDs = []struct {
	in         string
	kind       taxid.Kind
	bare       string
	wantMasked string
}{
	{in: "529.982.247-25", kind: taxid.CPF, bare: "52998224725", wantMasked: "***.982.247-**"},
	{in: "52998224725", kind: taxid.CPF, bare: "52998224725", wantMasked: "***.982.247-**"},
	{in: "111.444.777-35", kind: taxid.CPF, bare: "11144477735", wantMasked: "***.444.777-**"},
	{in: "123.456.789-09", kind: taxid.CPF, bare: "12345678909", wantMasked: "***.456.789-**"},
	{in: "000.000.001-91", kind: taxid.CPF, bare: "00000000191", wantMasked: "***.000.001-**"},
	{in: "987 654 321 00", kind: taxid.CPF, bare: "98765432100", wantMasked: "***.654.321-**"},
	{in: " 529.982.247-25 ", kind: taxid.CPF, bare: "52998224725", wantMasked: "***.982.247-**"},
	{in: "11.222.333/0001-81", kind: taxid.CNPJ, bare: "11222333000181", wantMasked: "**.***.333/0001-**"},
	{in: "11222333000181", kind: taxid.CNPJ, bare: "11222333000181", wantMasked: "**.***.333/0001-**"},
	{in: "12.345.678/0001-95", kind: taxid.CNPJ, bare: "12345678000195", wantMasked: "**.***.678/0001-**"},
	{in: "00.000.000/0001-91", kind: taxid.CNPJ, bare: "00000000000191", wantMasked: "**.***.000/0001-**"},
	{in: "12.ABC.345/01DE-35", kind: taxid.CNPJ, bare: "12ABC34501DE35", wantMasked: "**.***.345/01DE-**"},
	{in: "12ABC34501DE35", kind: taxid.CNPJ, bare: "12ABC34501DE35", wantMasked: "**.***.345/01DE-**"},
	{in: "ZZ.ZZZ.ZZZ/ZZZZ-62", kind: taxid.CNPJ, bare: "ZZZZZZZZZZZZ62", wantMasked: "**.***.ZZZ/ZZZZ-**"},
	{in: "A0.000.000/0000-32", kind: taxid.CNPJ, bare: "A0000000000032", wantMasked: "**.***.000/0000-**"},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validIDs {
		t.Run(tc.in, func(t *testing.T) {
			id, err := taxid.Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := id.Kind(); got != tc.kind {
				t.Errorf("Kind() = %q, want %q", got, tc.kind)
			}
			if got := id.Bare(); got != tc.bare {
				t.Errorf("Bare() = %q, want %q", got, tc.bare)
			}
			if got := id.Masked(); got != tc.wantMasked {
				t.Errorf("Masked() = %q, want %q", got, tc.wantMasked)
			}
			if id.IsZero() {
				t.Error("IsZero() = true, want false")
			}
			if !taxid.Valid(tc.in) {
				t.Error("Valid = false, want true")
			}

			// The kind-specific parser agrees; the other one refuses.
			parse, other := taxid.ParseCPF, taxid.ParseCNPJ
			if tc.kind == taxid.CNPJ {
				parse, other = taxid.ParseCNPJ, taxid.ParseCPF
			}
			byKind, err := parse(tc.in)
			if err != nil || byKind != id {
				t.Errorf("parse by kind = %v, %v, want %v, nil", byKind, err, id)
			}
			if _, err := other(tc.in); !errors.Is(err, taxid.ErrLength) && !errors.Is(err, taxid.ErrCharacter) {
				t.Errorf("parse as the other kind: error = %v, want %v or %v", err, taxid.ErrLength, taxid.ErrCharacter)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{name: "empty", in: "", want: taxid.ErrEmpty},
		{name: "mask only", in: "...-/ ", want: taxid.ErrEmpty},
		{name: "too short", in: "529.982.247-2", want: taxid.ErrLength},
		{name: "between CPF and CNPJ", in: "5299822472512", want: taxid.ErrLength},
		{name: "too long", in: "11.222.333/0001-811", want: taxid.ErrLength},
		{name: "CPF with an extra digit", in: "529982247250", want: taxid.ErrLength},
		{name: "symbol", in: "529.982.247_25", want: taxid.ErrCharacter},
		{name: "comma as separator", in: "529,982,247-25", want: taxid.ErrCharacter},
		{name: "tab", in: "529982247\t25", want: taxid.ErrCharacter},
		{name: "non-ASCII digit", in: "52998224７25", want: taxid.ErrCharacter},
		{name: "non-breaking space", in: "529.982.247-25\u00a0", want: taxid.ErrCharacter},
		{name: "letter in CPF", in: "529.982.24A-25", want: taxid.ErrCharacter},
		{name: "lower-case letter in CPF", in: "529.982.24a-25", want: taxid.ErrCharacter},
		{name: "CPF wrong first check digit", in: "529.982.247-35", want: taxid.ErrCheckDigits},
		{name: "CPF wrong second check digit", in: "529.982.247-26", want: taxid.ErrCheckDigits},
		{name: "CPF transposed digits", in: "259.982.247-25", want: taxid.ErrCheckDigits},
		{name: "CPF all zeros", in: "000.000.000-00", want: taxid.ErrRepeated},
		{name: "CPF all ones", in: "11111111111", want: taxid.ErrRepeated},
		{name: "CPF all nines", in: "999.999.999-99", want: taxid.ErrRepeated},
		{name: "CNPJ wrong first check digit", in: "11.222.333/0001-91", want: taxid.ErrCheckDigits},
		{name: "CNPJ wrong second check digit", in: "11.222.333/0001-82", want: taxid.ErrCheckDigits},
		{name: "alphanumeric CNPJ wrong check digits", in: "12.ABC.345/01DE-36", want: taxid.ErrCheckDigits},
		{name: "alphanumeric CNPJ changed letter", in: "12.ABD.345/01DE-35", want: taxid.ErrCheckDigits},
		{name: "CNPJ all zeros", in: "00.000.000/0000-00", want: taxid.ErrRepeated},
		{name: "CNPJ all ones", in: "11111111111111", want: taxid.ErrRepeated},
		{name: "CNPJ lower-case letters", in: "12.abc.345/01de-35", want: taxid.ErrLowercase},
		{name: "CNPJ one lower-case letter", in: "12ABC34501De35", want: taxid.ErrLowercase},
		{name: "CNPJ letter in check digits", in: "12.ABC.345/01DE-3A", want: taxid.ErrCharacter},
		{name: "CNPJ letters as check digits", in: "12ABC34501DEAB", want: taxid.ErrCharacter},
		{name: "CNPJ lower-case check digit", in: "12ABC34501DE3a", want: taxid.ErrCharacter},
		{name: "CNPJ all letters", in: "AAAAAAAAAAAAAA", want: taxid.ErrCharacter},
		{name: "CNPJ symbol", in: "12.ABC.345/01D*-35", want: taxid.ErrCharacter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := taxid.Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse error = %v, want %v", err, tc.want)
			}
			if !id.IsZero() {
				t.Errorf("Parse returned %v with its error, want the zero ID", id)
			}
			if taxid.Valid(tc.in) {
				t.Error("Valid = true, want false")
			}
		})
	}
}

func TestKindSpecificErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func(string) (taxid.ID, error)
		in    string
		want  error
	}{
		{name: "ParseCPF empty", parse: taxid.ParseCPF, in: "", want: taxid.ErrEmpty},
		{name: "ParseCPF given a CNPJ", parse: taxid.ParseCPF, in: "11.222.333/0001-81", want: taxid.ErrLength},
		{name: "ParseCPF given an alphanumeric CNPJ", parse: taxid.ParseCPF, in: "12ABC34501DE35", want: taxid.ErrLength},
		{name: "ParseCPF symbol", parse: taxid.ParseCPF, in: "5299822472#", want: taxid.ErrCharacter},
		{name: "ParseCPF repeated", parse: taxid.ParseCPF, in: "22222222222", want: taxid.ErrRepeated},
		{name: "ParseCPF check digits", parse: taxid.ParseCPF, in: "52998224724", want: taxid.ErrCheckDigits},
		{name: "ParseCNPJ empty", parse: taxid.ParseCNPJ, in: " ", want: taxid.ErrEmpty},
		{name: "ParseCNPJ given a CPF", parse: taxid.ParseCNPJ, in: "529.982.247-25", want: taxid.ErrLength},
		{name: "ParseCNPJ lower case", parse: taxid.ParseCNPJ, in: "12abc34501de35", want: taxid.ErrLowercase},
		{name: "ParseCNPJ letter check digit", parse: taxid.ParseCNPJ, in: "12ABC34501DE3Z", want: taxid.ErrCharacter},
		{name: "ParseCNPJ repeated", parse: taxid.ParseCNPJ, in: "99999999999999", want: taxid.ErrRepeated},
		{name: "ParseCNPJ check digits", parse: taxid.ParseCNPJ, in: "12345678000194", want: taxid.ErrCheckDigits},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if !id.IsZero() {
				t.Errorf("returned %v with its error, want the zero ID", id)
			}
		})
	}
}

func TestLowercaseIsACharacterError(t *testing.T) {
	_, err := taxid.Parse("12.abc.345/01de-35")
	if !errors.Is(err, taxid.ErrCharacter) {
		t.Errorf("Parse error = %v, want it to match %v too", err, taxid.ErrCharacter)
	}
	if !strings.Contains(err.Error(), "lower-case") {
		t.Errorf("Parse error = %q, want it to say the letters are lower-case", err)
	}
}

func TestErrorsDoNotContainInput(t *testing.T) {
	inputs := []string{
		"529.982.247-35", "52998224735", "11.222.333/0001-91", "12abc34501de35", "12ABC34501DE3A",
		"529,982,247-25", "5299822472512", "00000000000", "12ABC34501DE36",
	}
	for _, in := range inputs {
		for name, parse := range map[string]func(string) (taxid.ID, error){
			"Parse": taxid.Parse, "ParseCPF": taxid.ParseCPF, "ParseCNPJ": taxid.ParseCNPJ,
		} {
			_, err := parse(in)
			if err == nil {
				t.Fatalf("%s(%q): got nil error, want one", name, in)
			}
			msg := err.Error()
			bare := strings.NewReplacer(".", "", "-", "", "/", "", " ", "").Replace(in)
			for _, leak := range []string{in, bare, bare[:6], bare[len(bare)-6:]} {
				if strings.Contains(msg, leak) {
					t.Errorf("%s error %q contains %q from the input", name, msg, leak)
				}
			}
		}
	}
}

func TestZeroID(t *testing.T) {
	var id taxid.ID
	if !id.IsZero() {
		t.Error("IsZero() = false, want true")
	}
	if id.Kind() != "" || id.Bare() != "" || id.Masked() != "" || id.String() != "" {
		t.Errorf("zero ID: Kind %q, Bare %q, Masked %q, String %q, want all empty", id.Kind(), id.Bare(), id.Masked(), id.String())
	}
	if got := fmt.Sprintf("%v|%#v|%d", id, id, id); got != "||" {
		t.Errorf("formatting the zero ID = %q, want %q", got, "||")
	}
}

func TestPrintingIsMasked(t *testing.T) {
	for _, in := range []string{"529.982.247-25", "12.ABC.345/01DE-35"} {
		id, err := taxid.Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		wrapped := struct{ TaxID taxid.ID }{id}
		outputs := map[string]string{
			"String": id.String(),
			"%v":     fmt.Sprintf("%v", id),
			"%s":     fmt.Sprintf("%s", id),
			"%+v":    fmt.Sprintf("%+v", id),
			"%#v":    fmt.Sprintf("%#v", id),
			"%d":     fmt.Sprintf("%d", id),
			"%x":     fmt.Sprintf("%x", id),
			"%q":     fmt.Sprintf("%q", id),
			"ptr %v": fmt.Sprintf("%v", &id),
			"field":  fmt.Sprintf("%+v", wrapped),
			"error":  fmt.Errorf("link for %v: %w", id, errors.New("boom")).Error(),
		}
		for name, got := range outputs {
			if !strings.Contains(got, id.Masked()) {
				t.Errorf("%s of %s = %q, want the mask %q in it", name, id.Masked(), got, id.Masked())
			}
			if strings.Contains(got, id.Bare()) || strings.Contains(got, in) {
				t.Errorf("%s = %q, contains the full id", name, got)
			}
		}
		if got, want := fmt.Sprintf("%q", id), `"`+id.Masked()+`"`; got != want {
			t.Errorf("%%q = %s, want %s", got, want)
		}
	}
}

func TestLogValueIsMasked(t *testing.T) {
	id, err := taxid.Parse("529.982.247-25")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(newHandler(&buf))
			logger.InfoContext(t.Context(), "link created", "taxId", id, slog.Any("taxIdAny", id), slog.Group("link", "taxId", id))
			got := buf.String()
			if strings.Contains(got, "52998224725") {
				t.Errorf("log line %q contains the full CPF", got)
			}
			if n := strings.Count(got, "***.982.247-**"); n != 3 {
				t.Errorf("log line %q has the mask %d times, want 3", got, n)
			}
		})
	}
}

// TestCheckDigitExamples pins the arithmetic on the examples the rules are
// usually explained with, so that a change in weights or letter values fails
// here and not only in the round trip.
func TestCheckDigitExamples(t *testing.T) {
	tests := []struct {
		base string
		kind taxid.Kind
		want string // the only check digits that make base valid
	}{
		{base: "529982247", kind: taxid.CPF, want: "25"},
		{base: "111444777", kind: taxid.CPF, want: "35"},
		{base: "112223330001", kind: taxid.CNPJ, want: "81"},
		{base: "12ABC34501DE", kind: taxid.CNPJ, want: "35"},
	}
	for _, tc := range tests {
		t.Run(tc.base, func(t *testing.T) {
			var valid []string
			for d := range 100 {
				dv := fmt.Sprintf("%02d", d)
				if taxid.Valid(tc.base + dv) {
					valid = append(valid, dv)
				}
			}
			if len(valid) != 1 || valid[0] != tc.want {
				t.Errorf("check digits accepted for %s = %v, want [%s]", tc.kind, valid, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range validIDs {
		f.Add(tc.in)
	}
	for _, s := range []string{"", "12.abc.345/01de-35", "000.000.000-00", "12ABC34501DE3A", "é", "../--  ", "1234567890123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := taxid.Parse(s)
		if err != nil {
			if !id.IsZero() {
				t.Errorf("Parse(%q) returned %v with error %v, want the zero ID", s, id, err)
			}
			return
		}
		if id.IsZero() {
			t.Fatalf("Parse(%q) returned the zero ID without an error", s)
		}
		switch {
		case id.Kind() == taxid.CPF && len(id.Bare()) == 11:
		case id.Kind() == taxid.CNPJ && len(id.Bare()) == 14:
		default:
			t.Fatalf("Parse(%q) = kind %q with %d characters", s, id.Kind(), len(id.Bare()))
		}
		again, err := taxid.Parse(id.Bare())
		if err != nil || again != id {
			t.Errorf("Parse(Bare()) = %v, %v, want %v, nil", again, err, id)
		}
		if again.Bare() != id.Bare() {
			t.Errorf("Parse(Bare()).Bare() = %q, want %q", again.Bare(), id.Bare())
		}
		if strings.Contains(id.Masked(), id.Bare()) {
			t.Errorf("Masked() %q contains Bare()", id.Masked())
		}
		if _, err := taxid.Parse(id.Masked()); !errors.Is(err, taxid.ErrCharacter) {
			t.Errorf("Parse(Masked()) error = %v, want %v", err, taxid.ErrCharacter)
		}
	})
}
