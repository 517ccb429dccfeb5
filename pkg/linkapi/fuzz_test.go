package linkapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// FuzzDecodeCreate feeds arbitrary bodies to the POST /links decoder. It
// must never panic; it either rejects with a validation error that quotes
// no tax id, or returns a link whose every field obeys the rules.
func FuzzDecodeCreate(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"personalTaxId":"529.982.247-25","email":"maria@example.com","phone":"+55 11 98765-4321","redirectURL":"https://app.example.com/back","externalInfo":{"a":1}}`,
		`{"businessTaxId":"12.ABC.345/01DE-35","institutionCode":"033"}`,
		`{"personalTaxId":"52998224725","businessTaxId":"11222333000181"}`,
		`{"productsCallbackUrl":{"all":"https://x"}}`,
		`{"externalInfo":[1]}`,
		`{"phone":"0 21 2345-6789"}`,
		`{"redirectURL":"https://app.example.com@evil.com/"}`,
		`[`, `null`, `"x"`, `{"email":null}`, `{"institutionCode":260}`,
	} {
		f.Add([]byte(seed))
	}
	allowed := []string{"app.example.com", "*.example.org"}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeCreate(body, allowed, false)
		if err != nil {
			var inv *invalidError
			if !errors.As(err, &inv) || inv.code == "" || inv.message == "" {
				t.Fatalf("error %v is not a validation error with code and message", err)
			}
			for _, id := range taxIDsIn(body) {
				if strings.Contains(inv.message, id) {
					t.Fatalf("validation message %q quotes a tax id from the body", inv.message)
				}
			}
			return
		}
		if !v.taxID.IsZero() {
			if _, err := taxid.Parse(v.taxID.Bare()); err != nil {
				t.Fatalf("accepted tax id does not parse again: %v", err)
			}
		}
		if v.phone != "" && (!strings.HasPrefix(v.phone, "+55") || len(v.phone) < 13 || len(v.phone) > 14) {
			t.Fatalf("accepted phone %q is not +55 E.164", v.phone)
		}
		if v.institutionCode != "" && !isInstitutionCode(v.institutionCode) {
			t.Fatalf("accepted institutionCode %q", v.institutionCode)
		}
		if v.redirectURL != "" && !strings.HasPrefix(v.redirectURL, "https://") {
			t.Fatalf("accepted redirectURL %q", v.redirectURL)
		}
		if v.externalInfo != nil {
			var obj map[string]any
			if err := json.Unmarshal(v.externalInfo, &obj); err != nil || len(v.externalInfo) > maxExternalInfoBytes {
				t.Fatalf("accepted externalInfo %q is not a bounded JSON object", v.externalInfo)
			}
		}
	})
}

// taxIDsIn returns the valid tax ids the body's string values hold.
func taxIDsIn(body []byte) []string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out []string
	for _, v := range m {
		if s, ok := v.(string); ok {
			if id, err := taxid.Parse(s); err == nil {
				out = append(out, id.Bare(), s)
			}
		}
	}
	return out
}
