package klavireport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
)

// FuzzParseEnvelope checks that any input either yields an envelope from
// valid JSON with a report id, or an error of a fixed form that never
// carries input, and that the input is never modified. The seed corpus is
// in testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(klavireport.Synthetic(4<<10, 1, "pf_credit_card"))
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		env, err := klavireport.ParseEnvelope(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("ParseEnvelope() modified its input")
		}
		if !json.Valid(body) && !errors.Is(err, klavireport.ErrMalformed) {
			t.Fatalf("ParseEnvelope(invalid JSON) error = %v, want %v", err, klavireport.ErrMalformed)
		}
		if err != nil {
			if !errors.Is(err, klavireport.ErrMalformed) && !errors.Is(err, klavireport.ErrMissingReportID) {
				t.Fatalf("ParseEnvelope() error = %v, want ErrMalformed or ErrMissingReportID", err)
			}
			checkErrorText(t, err)
			return
		}
		if env.ProductReportID == "" {
			t.Fatalf("ParseEnvelope() succeeded with an empty ProductReportID")
		}
		if env.ExternalInfo != nil && !json.Valid(env.ExternalInfo) {
			t.Fatalf("ExternalInfo %q is not valid JSON", env.ExternalInfo)
		}
		seen := map[string]bool{}
		for _, id := range env.LinkIDs {
			if id == "" || seen[id] {
				t.Fatalf("LinkIDs = %q, want non-empty ids without repeats", env.LinkIDs)
			}
			seen[id] = true
		}
		if slices.Contains(env.LinkIDs, "") {
			t.Fatalf("LinkIDs holds an empty id")
		}
	})
}
