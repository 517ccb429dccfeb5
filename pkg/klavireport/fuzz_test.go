package klavireport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

// FuzzParseEnvelope holds the one-pass envelope reader to encoding/json
// (OracleParseEnvelope, json.Unmarshal into the envelope struct): the same
// inputs accepted, the same error class for the rejected ones, the same
// fields. It also checks that any input either yields an envelope from
// valid JSON with a report id, or an error of a fixed form that never
// carries input, and that the input is never modified. The seed corpus is
// in testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(klavireporttest.Synthetic(4<<10, 1, "pf_credit_card"))
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		env, err := klavireport.ParseEnvelope(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("ParseEnvelope() modified its input")
		}
		want, wantErr := klavireport.OracleParseEnvelope(body)
		if errClass(err) != errClass(wantErr) {
			t.Fatalf("ParseEnvelope() error = %v, encoding/json gives %v", err, wantErr)
		}
		if diff := cmp.Diff(want, env, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ParseEnvelope() differs from encoding/json (-json +one-pass):\n%s", diff)
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

// errClass names the outcome of a parse: accepted, malformed or without a
// report id.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, klavireport.ErrMissingReportID):
		return "missing report id"
	case errors.Is(err, klavireport.ErrMalformed):
		return "malformed"
	}
	return "other: " + err.Error()
}
