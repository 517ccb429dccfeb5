package klavireport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

const cpf = "52998224725" // a CPF with valid check digits

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name string
		body string
		want klavireport.Envelope
	}{
		{
			name: "documented example",
			body: `{
  "code": 200, "message": "ok", "requestId": "112334",
  "productName": "pf_categorized_checking_l3", "productVersion": "V1",
  "productReportId": "4b2c1648-231f-11eb-97c4-f45c899f4587",
  "productReportTime": "2019-12-23T06:10:43",
  "enquiryCpf": "` + cpf + `",
  "links": [ { "linkId": "L1", "institutionCode": "033", "consents": [ { "consentId": "c1",
      "permissions": { "REGISTRATION_ALL": { "permissionsGranted": true, "accountIds": ["123456"] } } } ] } ],
  "checkingAccounts": [ { "number": "94088392", "transactionDetails": [ { "transactionAmount": {"amount": "1000.0400", "currency": "BRL"} } ] } ],
  "externalInfo": { "myTraceId": "yourTraceId-1" }
}`,
			want: klavireport.Envelope{
				Code: 200, Message: "ok", RequestID: "112334",
				ProductName: "pf_categorized_checking_l3", ProductVersion: "V1",
				ProductReportID:   "4b2c1648-231f-11eb-97c4-f45c899f4587",
				ProductReportTime: "2019-12-23T06:10:43",
				LinkIDs:           []string{"L1"},
				ExternalInfo:      json.RawMessage(`{ "myTraceId": "yourTraceId-1" }`),
			},
		},
		{
			name: "code as numeric string",
			body: `{"code": "204", "productReportId": "r"}`,
			want: klavireport.Envelope{Code: 204, ProductReportID: "r"},
		},
		{
			name: "code as padded string",
			body: `{"code": " 5001 ", "productReportId": "r"}`,
			want: klavireport.Envelope{Code: 5001, ProductReportID: "r"},
		},
		{
			name: "code as integral float",
			body: `{"code": 200.0, "productReportId": "r"}`,
			want: klavireport.Envelope{Code: 200, ProductReportID: "r"},
		},
		{
			name: "code null",
			body: `{"code": null, "productReportId": "r"}`,
			want: klavireport.Envelope{ProductReportID: "r"},
		},
		{
			name: "numeric ids kept as written",
			body: `{"requestId": 112334, "productReportId": 987654321012345678901}`,
			want: klavireport.Envelope{RequestID: "112334", ProductReportID: "987654321012345678901"},
		},
		{
			name: "escaped id",
			body: `{"productReportId": "a\u002fb"}`,
			want: klavireport.Envelope{ProductReportID: "a/b"},
		},
		{
			name: "link ids deduplicated in order, empty and null skipped",
			body: `{"productReportId": "r", "links": [{"linkId": "B"}, {"linkId": ""}, {"linkId": "A"}, {"linkId": "B"}, {"institutionCode": "033"}, {"linkId": null}, {"linkID": "C"}]}`,
			want: klavireport.Envelope{ProductReportID: "r", LinkIDs: []string{"B", "A", "C"}},
		},
		{
			name: "links null",
			body: `{"productReportId": "r", "links": null}`,
			want: klavireport.Envelope{ProductReportID: "r"},
		},
		{
			name: "externalInfo null",
			body: `{"productReportId": "r", "externalInfo": null}`,
			want: klavireport.Envelope{ProductReportID: "r"},
		},
		{
			name: "externalInfo after product data",
			body: `{"productReportId": "r", "creditCards": [{"a": [1, 2, {"b": "}"}]}], "externalInfo": {"k": [1]}}`,
			want: klavireport.Envelope{ProductReportID: "r", ExternalInfo: json.RawMessage(`{"k": [1]}`)},
		},
		{
			name: "leading whitespace",
			body: "\n\t {\"productReportId\": \"r\"}\n",
			want: klavireport.Envelope{ProductReportID: "r"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := klavireport.ParseEnvelope([]byte(tc.body))
			if err != nil {
				t.Fatalf("ParseEnvelope() error = %v, want nil", err)
			}
			if diff := envelopeDiff(got, tc.want); diff != "" {
				t.Errorf("ParseEnvelope() %s", diff)
			}
		})
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", ``, klavireport.ErrMalformed},
		{"only space", "  \n", klavireport.ErrMalformed},
		{"null", `null`, klavireport.ErrMalformed},
		{"array", `[{"productReportId": "r"}]`, klavireport.ErrMalformed},
		{"one-element array", `[{"productReportId":"r"}]`, klavireport.ErrMalformed},
		{"string", `"productReportId"`, klavireport.ErrMalformed},
		{"byte order mark", "\xef\xbb\xbf{\"productReportId\": \"r\"}", klavireport.ErrMalformed},
		{"truncated", `{"productReportId": "r", "checkingAccounts": [{"number": "1"`, klavireport.ErrMalformed},
		{"trailing garbage", `{"productReportId": "r"} x`, klavireport.ErrMalformed},
		{"two objects", `{"productReportId": "r"}{"productReportId": "s"}`, klavireport.ErrMalformed},
		{"invalid JSON in product data", `{"productReportId": "r", "checkingAccounts": [01]}`, klavireport.ErrMalformed},
		{"code not numeric", `{"code": "ok", "productReportId": "r"}`, klavireport.ErrMalformed},
		{"code empty string", `{"code": "", "productReportId": "r"}`, klavireport.ErrMalformed},
		{"code fraction", `{"code": 200.5, "productReportId": "r"}`, klavireport.ErrMalformed},
		{"code bool", `{"code": true, "productReportId": "r"}`, klavireport.ErrMalformed},
		{"code object", `{"code": {"v": 200}, "productReportId": "r"}`, klavireport.ErrMalformed},
		{"message number", `{"message": 1, "productReportId": "r"}`, klavireport.ErrMalformed},
		{"links object", `{"links": {"linkId": "L"}, "productReportId": "r"}`, klavireport.ErrMalformed},
		{"linkId object", `{"links": [{"linkId": {}}], "productReportId": "r"}`, klavireport.ErrMalformed},
		{"report id object", `{"productReportId": {"id": "r"}}`, klavireport.ErrMalformed},
		{"report id bool", `{"productReportId": true}`, klavireport.ErrMalformed},
		{"report id missing", `{"code": 200, "productName": "pf_checking_account"}`, klavireport.ErrMissingReportID},
		{"report id empty", `{"productReportId": ""}`, klavireport.ErrMissingReportID},
		{"report id null", `{"productReportId": null}`, klavireport.ErrMissingReportID},
		{"empty object", `{}`, klavireport.ErrMissingReportID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := klavireport.ParseEnvelope([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseEnvelope() error = %v, want %v", err, tc.want)
			}
			checkErrorText(t, err)
		})
	}
}

// TestParseEnvelopeMissingIDKeepsFields lets a caller log which product
// came without an id.
func TestParseEnvelopeMissingIDKeepsFields(t *testing.T) {
	got, err := klavireport.ParseEnvelope([]byte(`{"code": 5001, "requestId": "q", "productName": "pf_loans"}`))
	if !errors.Is(err, klavireport.ErrMissingReportID) {
		t.Fatalf("ParseEnvelope() error = %v, want %v", err, klavireport.ErrMissingReportID)
	}
	want := klavireport.Envelope{Code: 5001, RequestID: "q", ProductName: "pf_loans"}
	if diff := envelopeDiff(got, want); diff != "" {
		t.Errorf("ParseEnvelope() %s", diff)
	}
}

// TestParseEnvelopeErrorsHideBody feeds bodies whose error lies right next
// to a tax id: the json package would quote input in its messages.
func TestParseEnvelopeErrorsHideBody(t *testing.T) {
	bodies := []string{
		`{"enquiryCpf": "` + cpf + `", "code": "` + cpf + `x"}`,
		`{"enquiryCpf": ` + cpf + `x}`,
		`{"enquiryCpf": "` + cpf + `" "productReportId": "r"}`,
		`{"productReportId": {"` + cpf + `": 1}}`,
		`{"code": "` + cpf + `", "productReportId": "r"}`,
		`{"links": [{"linkId": ["` + cpf + `"]}]}`,
		`{"` + cpf + `"}`,
		cpf,
		`{"enquiryCpf": "` + cpf + "\x00\"}",
		`{"enquiryCpf": "` + cpf + `\q"}`,
	}
	for _, body := range bodies {
		_, err := klavireport.ParseEnvelope([]byte(body))
		if err == nil {
			t.Fatalf("ParseEnvelope(%q) error = nil, want an error", body)
		}
		if strings.Contains(err.Error(), cpf[:5]) {
			t.Errorf("ParseEnvelope(%q) error = %q, contains body content", body, err)
		}
		checkErrorText(t, err)
	}
}

// allowedError matches every error text ParseEnvelope may produce: fixed
// words, byte offsets and this package's own field names.
var allowedError = regexp.MustCompile(`^(report envelope has no productReportId|malformed report envelope: (not a JSON object|invalid JSON at byte \d+|wrong JSON type|field (code|message|requestId|productName|productVersion|productReportId|productReportTime|links|links\.linkId|externalInfo) has the wrong type))$`)

func checkErrorText(t *testing.T, err error) {
	t.Helper()
	if !allowedError.MatchString(err.Error()) {
		t.Errorf("error text %q is not one of the fixed forms", err)
	}
}

func TestParseEnvelopeSynthetic(t *testing.T) {
	body := klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size: 200 << 10, Seed: 3, ProductName: "pf_checking_account",
		RequestID: "req-1", ProductReportID: "rep-1", LinkID: "link-1",
		EnquiryCPF: cpf, Code: 204, ExternalInfo: json.RawMessage(`{"a":"b"}`),
	})
	orig := bytes.Clone(body)
	got, err := klavireport.ParseEnvelope(body)
	if err != nil {
		t.Fatalf("ParseEnvelope() error = %v", err)
	}
	if !bytes.Equal(body, orig) {
		t.Errorf("ParseEnvelope() modified its input")
	}
	want := klavireport.Envelope{
		Code: 204, Message: "ok", RequestID: "req-1", ProductName: "pf_checking_account",
		ProductVersion: "V1", ProductReportID: "rep-1", ProductReportTime: "2025-06-30T12:00:00",
		LinkIDs: []string{"link-1"}, ExternalInfo: json.RawMessage("{\n    \"a\": \"b\"\n  }"),
	}
	if diff := envelopeDiff(got, want); diff != "" {
		t.Errorf("ParseEnvelope() %s", diff)
	}
	if s := fmt.Sprintf("%+v", got); strings.Contains(s, cpf) {
		t.Errorf("envelope %s holds the enquiryCpf", s)
	}
}

// TestParseEnvelopeAllocation guards the memory bar: reading the envelope
// of a report must not copy or decode it. 1 MB keeps the test fast under
// -race and is still far above the limit a copy would break;
// BenchmarkParseEnvelope5MB measures the 5 MB case.
func TestParseEnvelopeAllocation(t *testing.T) {
	body := klavireporttest.Synthetic(1<<20, 1, "")
	if _, err := klavireport.ParseEnvelope(body); err != nil {
		t.Fatalf("ParseEnvelope() error = %v", err)
	}
	const runs = 2
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := klavireport.ParseEnvelope(body); err != nil {
			t.Fatalf("ParseEnvelope() error = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	if limit := uint64(64 << 10); perCall > limit {
		t.Errorf("ParseEnvelope(1 MB) allocated %d bytes per call, want <= %d", perCall, limit)
	}
}

// envelopeDiff returns "" when the envelopes are equal, else a got/want
// description of the first differences.
func envelopeDiff(got, want klavireport.Envelope) string {
	var diffs []string
	add := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %#v, want %#v", field, g, w))
	}
	if got.Code != want.Code {
		add("Code", got.Code, want.Code)
	}
	for _, f := range []struct{ name, got, want string }{
		{"Message", got.Message, want.Message},
		{"RequestID", got.RequestID, want.RequestID},
		{"ProductName", got.ProductName, want.ProductName},
		{"ProductVersion", got.ProductVersion, want.ProductVersion},
		{"ProductReportID", got.ProductReportID, want.ProductReportID},
		{"ProductReportTime", got.ProductReportTime, want.ProductReportTime},
		{"ExternalInfo", string(got.ExternalInfo), string(want.ExternalInfo)},
	} {
		if f.got != f.want {
			add(f.name, f.got, f.want)
		}
	}
	if !slices.Equal(got.LinkIDs, want.LinkIDs) {
		add("LinkIDs", got.LinkIDs, want.LinkIDs)
	}
	if (got.ExternalInfo == nil) != (want.ExternalInfo == nil) {
		add("ExternalInfo is nil", got.ExternalInfo == nil, want.ExternalInfo == nil)
	}
	return strings.Join(diffs, "; ")
}
