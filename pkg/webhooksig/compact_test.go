package webhooksig

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestWriteCompact(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "already compact", in: `{"a":1}`, want: `{"a":1}`},
		{name: "pretty object", in: "{\n\t\"a\" : 1 ,\r\n \"b\": [ 1, 2 ]\n}\n", want: `{"a":1,"b":[1,2]}`},
		{name: "space inside string kept", in: `{ "a": "x y\tz" }`, want: `{"a":"x y\tz"}`},
		{name: "escaped quote inside string", in: `[ "a\" b" , "c" ]`, want: `["a\" b","c"]`},
		{name: "escaped backslash before closing quote", in: `[ "a\\" , " b " ]`, want: `["a\\"," b "]`},
		{name: "escaped backslashes then escaped quote", in: `[ "a\\\\\" b " , "\\" ]`, want: `["a\\\\\" b ","\\"]`},
		{name: "quote right after opening quote", in: `{ "": "" }`, want: `{"":""}`},
		{name: "top-level scalar with spaces", in: "  42 \n", want: "42"},
		{name: "unicode kept as is", in: `{ "nome": "João \u00e9" }`, want: `{"nome":"João \u00e9"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			writeCompact(&got, []byte(tc.in))
			if got.String() != tc.want {
				t.Errorf("writeCompact(%q) = %q, want %q", tc.in, got.String(), tc.want)
			}
			var std bytes.Buffer
			if err := json.Compact(&std, []byte(tc.in)); err != nil {
				t.Fatalf("json.Compact: %v", err)
			}
			if got.String() != std.String() {
				t.Errorf("writeCompact(%q) = %q, json.Compact gives %q", tc.in, got.String(), std.String())
			}
		})
	}
}

// FuzzWriteCompact checks that streaming compaction and json.Compact agree
// on every valid JSON text, which is what lets Verify skip building the
// compact copy.
func FuzzWriteCompact(f *testing.F) {
	for _, s := range []string{
		`{"a": 1}`, "[ \"x\\\" y\" ,\n2 ]", " true ", `{"a":{"b":[null, false, "\\"]}}`, "\"\t\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		var got, want bytes.Buffer
		writeCompact(&got, in)
		if err := json.Compact(&want, in); err != nil {
			t.Fatalf("json.Compact of valid JSON: %v", err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("writeCompact(%q) = %q, json.Compact gives %q", in, got.Bytes(), want.Bytes())
		}
	})
}
