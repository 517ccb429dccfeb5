package klavisim

import "testing"

func TestValidCPF(t *testing.T) {
	tests := []struct {
		cpf  string
		want bool
	}{
		{"12345678909", true},
		{"25872252137", true},
		{"00000000191", true}, // leading zeros are part of the number
		{"12345678900", false},
		{"12345678919", false},
		{"11111111111", false},
		{"1234567890", false},
		{"123456789090", false},
		{"123.456.789-09", false},
		{"1234567890a", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := validCPF(tc.cpf); got != tc.want {
			t.Errorf("validCPF(%q) = %v, want %v", tc.cpf, got, tc.want)
		}
	}
}

func TestValidCNPJ(t *testing.T) {
	tests := []struct {
		cnpj string
		want bool
	}{
		{"11222333000181", true},
		{"12ABC34501DE35", true}, // Receita Federal's alphanumeric example
		{"11444777000161", true},
		{"11222333000182", false},
		{"12ABC34501DE36", false},
		{"12abc34501de35", false},
		{"12ABC34501DE3A", false}, // check digits stay numeric
		{"00000000000000", false},
		{"1122233300018", false},
		{"11.222.333/0001-81", false},
		{"12AB-34501DE35", false},
	}
	for _, tc := range tests {
		if got := validCNPJ(tc.cnpj); got != tc.want {
			t.Errorf("validCNPJ(%q) = %v, want %v", tc.cnpj, got, tc.want)
		}
	}
}

func TestQuoteNameNeverEchoesTaxIDs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pf_checking_account", `"pf_checking_account"`},
		{"productsCallbackUrl", `"productsCallbackUrl"`},
		{"12345678909", "(redacted)"},
		{"123.456.789-09", "(redacted)"},
		{"a b", "(redacted)"},
	}
	for _, tc := range tests {
		if got := quoteName(tc.in); got != tc.want {
			t.Errorf("quoteName(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestValidPhoneAndEmail(t *testing.T) {
	for _, tc := range []struct {
		phone string
		want  bool
	}{
		{"+5511987654321", true},
		{"+551133334444", true},
		{"11987654321", false},
		{"+55 11 98765-4321", false},
		{"+1415555012", false},
	} {
		if got := validPhone(tc.phone); got != tc.want {
			t.Errorf("validPhone(%q) = %v, want %v", tc.phone, got, tc.want)
		}
	}
	for _, tc := range []struct {
		email string
		want  bool
	}{
		{"ana@example.com", true},
		{"Ana <ana@example.com>", false},
		{"ana", false},
	} {
		if got := validEmail(tc.email); got != tc.want {
			t.Errorf("validEmail(%q) = %v, want %v", tc.email, got, tc.want)
		}
	}
}
