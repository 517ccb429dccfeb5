package compactid

import (
	"strings"
	"testing"
)

func TestWhitespaceVariantsShareAnID(t *testing.T) {
	a := Of([]byte(`{"code":200,"links":[{"linkId":"L1"}]}`))
	b := Of([]byte("{\n  \"code\": 200,\n  \"links\": [ { \"linkId\": \"L1\" } ]\n}\n"))
	if a != b {
		t.Errorf("ids differ for the same JSON with whitespace: %s vs %s", a, b)
	}
	if !strings.HasPrefix(a, Prefix) || len(a) != len(Prefix)+32 {
		t.Errorf("id = %q, want %s and 32 hex digits", a, Prefix)
	}
	if c := Of([]byte(`{"code":201,"links":[{"linkId":"L1"}]}`)); c == a {
		t.Errorf("different bodies share id %s", c)
	}
}

func TestInvalidJSONHashedAsIs(t *testing.T) {
	if a, b := Of([]byte(`{"a":`)), Of([]byte(`{"a": `)); a == b {
		t.Errorf("invalid bodies differing in bytes share id %s", a)
	}
}
