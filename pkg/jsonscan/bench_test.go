package jsonscan_test

import (
	"encoding/json"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/jsonscan"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

// report is a 5 MB pretty-printed report as it arrives inside a Lambda
// event: one JSON string, with an escape every ten bytes or so.
func report(b *testing.B) (body, quoted []byte) {
	body = klavireporttest.Synthetic(5<<20, 42, "")
	quoted, err := json.Marshal(string(body))
	if err != nil {
		b.Fatal(err)
	}
	return body, quoted
}

func BenchmarkUnquote5MB(b *testing.B) {
	body, quoted := report(b)
	dst := make([]byte, 0, len(quoted)+8)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, _, err := jsonscan.Unquote(dst, quoted, 0)
		if err != nil || len(out) != len(body) {
			b.Fatalf("Unquote: %d bytes, %v", len(out), err)
		}
	}
}

func BenchmarkSkipValue5MB(b *testing.B) {
	body, _ := report(b)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if end, err := jsonscan.SkipValue(body, 0, 0); err != nil || end != len(body) {
			b.Fatalf("SkipValue: %d, %v", end, err)
		}
	}
}
