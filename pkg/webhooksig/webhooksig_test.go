package webhooksig_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

var (
	testSecret = []byte("klavi-test-secret")
	testNow    = time.Unix(1740716924, 0)
	// compactBody is what Klavi's Node sample would hash for prettyBody.
	compactBody = []byte(`{"eventId":"1495468585434-0e73d1719173766fe4dfe1a8","eventName":"link_created"}`)
	prettyBody  = []byte("{\n  \"eventId\": \"1495468585434-0e73d1719173766fe4dfe1a8\",\n\t\"eventName\" : \"link_created\"\r\n}\n")
)

func fixedVerifier() webhooksig.Verifier {
	return webhooksig.Verifier{Now: func() time.Time { return testNow }}
}

func TestSignKnownVector(t *testing.T) {
	// Computed independently: Python hmac.new(secret, body, sha256).hexdigest().
	const want = "8a2645249579b7af70a4a95c341cec1d2aa4ba712754c7876e94b4befc0a19cf"
	sig, ts := webhooksig.Sign(testSecret, compactBody, testNow)
	if sig != want {
		t.Errorf("Sign signature = %s, want %s", sig, want)
	}
	if ts != "1740716924" {
		t.Errorf("Sign timestamp = %s, want 1740716924", ts)
	}

	sig, ts, err := webhooksig.SignCompact(testSecret, prettyBody, testNow)
	if err != nil {
		t.Fatalf("SignCompact: %v", err)
	}
	if sig != want || ts != "1740716924" {
		t.Errorf("SignCompact = %s, %s, want %s, 1740716924", sig, ts, want)
	}
}

func TestSignCompactRejectsInvalidJSON(t *testing.T) {
	body := []byte(`{"cpf": "52998224725"`)
	_, _, err := webhooksig.SignCompact(testSecret, body, testNow)
	if err == nil {
		t.Fatal("SignCompact of invalid JSON: got nil error, want one")
	}
	if strings.Contains(err.Error(), "52998224725") {
		t.Errorf("SignCompact error %q contains the body", err)
	}
}

func TestVerify(t *testing.T) {
	rawSig, ts := webhooksig.Sign(testSecret, compactBody, testNow)
	prettyRawSig, _ := webhooksig.Sign(testSecret, prettyBody, testNow)
	compactSig, _, err := webhooksig.SignCompact(testSecret, prettyBody, testNow)
	if err != nil {
		t.Fatalf("SignCompact: %v", err)
	}
	wrongKeySig, _ := webhooksig.Sign([]byte("another-secret"), compactBody, testNow)
	emptyKeySig, _ := webhooksig.Sign(nil, compactBody, testNow)

	tamperedCompact := bytes.Clone(compactBody)
	tamperedCompact[len(tamperedCompact)-3] ^= 0x01
	tamperedPretty := bytes.Clone(prettyBody)
	tamperedPretty[5] ^= 0x01

	// Whitespace stripped everywhere, including inside a string: not what
	// json.Compact produces, so it must not verify.
	spaceInString := []byte(`{"name": "Ana Maria"}`)
	overStripped, _ := webhooksig.Sign(testSecret, []byte(`{"name":"AnaMaria"}`), testNow)
	// Invalid JSON whose whitespace-free form was signed: the compact
	// fallback applies to valid JSON only.
	invalidPretty := []byte(`{"a": 1,}`)
	invalidStripped, _ := webhooksig.Sign(testSecret, []byte(`{"a":1,}`), testNow)

	at := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	tol := webhooksig.DefaultTolerance

	tests := []struct {
		name     string
		verifier webhooksig.Verifier
		secret   []byte
		body     []byte
		sig      string
		ts       string
		want     error
	}{
		{name: "valid raw", body: compactBody, sig: rawSig, ts: ts},
		{name: "valid raw of pretty body", body: prettyBody, sig: prettyRawSig, ts: ts},
		{name: "valid compact variant of pretty body", body: prettyBody, sig: compactSig, ts: ts},
		{name: "uppercase hex", body: compactBody, sig: strings.ToUpper(rawSig), ts: ts},
		{name: "mixed case hex", body: compactBody, sig: strings.ToUpper(rawSig[:10]) + rawSig[10:], ts: ts},
		{name: "sha256 prefix", body: compactBody, sig: "sha256=" + rawSig, ts: ts},
		{name: "upper-case sha256 prefix", body: compactBody, sig: "SHA256=" + rawSig, ts: ts},
		{name: "surrounding spaces", body: compactBody, sig: " " + rawSig + " ", ts: " " + ts + " "},
		{name: "empty body", body: nil, sig: func() string { s, _ := webhooksig.Sign(testSecret, nil, testNow); return s }(), ts: ts},

		{name: "tampered body", body: tamperedCompact, sig: rawSig, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "tampered pretty body, compact signature", body: tamperedPretty, sig: compactSig, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "compact body, signature over pretty bytes", body: compactBody, sig: prettyRawSig, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "whitespace inside strings is kept", body: spaceInString, sig: overStripped, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "no compact fallback for invalid JSON", body: invalidPretty, sig: invalidStripped, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "wrong key", body: compactBody, sig: wrongKeySig, ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "garbage hex", body: compactBody, sig: strings.Repeat("zz", 32), ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "one non-hex character", body: compactBody, sig: rawSig[:63] + "g", ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "too short", body: compactBody, sig: rawSig[:62], ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "too long", body: compactBody, sig: rawSig + "00", ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "prefix only", body: compactBody, sig: "sha256=", ts: ts, want: webhooksig.ErrInvalidSignature},
		{name: "other algorithm prefix", body: compactBody, sig: "sha1=" + rawSig, ts: ts, want: webhooksig.ErrInvalidSignature},

		{name: "missing signature", body: compactBody, sig: "", ts: ts, want: webhooksig.ErrMissingSignature},
		{name: "blank signature", body: compactBody, sig: "  ", ts: ts, want: webhooksig.ErrMissingSignature},
		{name: "missing signature is reported before timestamp", body: compactBody, sig: "", ts: "", want: webhooksig.ErrMissingSignature},

		{name: "missing timestamp", body: compactBody, sig: rawSig, ts: "", want: webhooksig.ErrMissingTimestamp},
		{name: "malformed timestamp", body: compactBody, sig: rawSig, ts: "2025-02-28T04:28:44Z", want: webhooksig.ErrMissingTimestamp},
		{name: "fractional timestamp", body: compactBody, sig: rawSig, ts: ts + ".5", want: webhooksig.ErrMissingTimestamp},
		{name: "timestamp in milliseconds", body: compactBody, sig: rawSig, ts: at(0) + "000", want: webhooksig.ErrStaleTimestamp},
		{name: "stale timestamp", body: compactBody, sig: rawSig, ts: at(-tol - time.Second), want: webhooksig.ErrStaleTimestamp},
		{name: "oldest accepted timestamp", body: compactBody, sig: rawSig, ts: at(-tol)},
		{name: "latest accepted timestamp", body: compactBody, sig: rawSig, ts: at(tol)},
		{name: "future timestamp", body: compactBody, sig: rawSig, ts: at(tol + time.Second), want: webhooksig.ErrStaleTimestamp},
		{name: "largest int64 timestamp", body: compactBody, sig: rawSig, ts: "9223372036854775807", want: webhooksig.ErrStaleTimestamp},
		{name: "smallest int64 timestamp", body: compactBody, sig: rawSig, ts: "-9223372036854775808", want: webhooksig.ErrStaleTimestamp},
		{name: "timestamp beyond int64", body: compactBody, sig: rawSig, ts: "99999999999999999999", want: webhooksig.ErrMissingTimestamp},
		{name: "stale timestamp is reported before a bad signature", body: compactBody, sig: wrongKeySig, ts: at(-time.Hour), want: webhooksig.ErrStaleTimestamp},
		{
			name:     "custom tolerance",
			verifier: webhooksig.Verifier{Tolerance: time.Minute, Now: func() time.Time { return testNow }},
			body:     compactBody, sig: rawSig, ts: at(-2 * time.Minute),
			want: webhooksig.ErrStaleTimestamp,
		},
		{
			name:     "negative tolerance ignores a missing timestamp",
			verifier: webhooksig.Verifier{Tolerance: -1, Now: func() time.Time { return testNow }},
			body:     compactBody, sig: rawSig, ts: "",
		},
		{
			name:     "negative tolerance ignores an old timestamp",
			verifier: webhooksig.Verifier{Tolerance: -1, Now: func() time.Time { return testNow }},
			body:     compactBody, sig: rawSig, ts: "0",
		},
		{
			name:     "negative tolerance still checks the signature",
			verifier: webhooksig.Verifier{Tolerance: -1, Now: func() time.Time { return testNow }},
			body:     tamperedCompact, sig: rawSig, ts: "",
			want: webhooksig.ErrInvalidSignature,
		},

		{name: "empty secret", secret: []byte{}, body: compactBody, sig: emptyKeySig, ts: ts, want: webhooksig.ErrEmptySecret},
		{name: "nil secret", secret: nil, body: compactBody, sig: emptyKeySig, ts: ts, want: webhooksig.ErrEmptySecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.verifier
			if v.Now == nil {
				v = fixedVerifier()
			}
			secret := tc.secret
			if secret == nil && tc.want != webhooksig.ErrEmptySecret {
				secret = testSecret
			}
			err := v.Verify(secret, tc.body, tc.sig, tc.ts)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyDefaultClock(t *testing.T) {
	sig, ts := webhooksig.Sign(testSecret, compactBody, time.Now())
	if err := (webhooksig.Verifier{}).Verify(testSecret, compactBody, sig, ts); err != nil {
		t.Errorf("zero Verifier with a fresh timestamp: Verify = %v, want nil", err)
	}
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if err := (webhooksig.Verifier{}).Verify(testSecret, compactBody, sig, old); !errors.Is(err, webhooksig.ErrStaleTimestamp) {
		t.Errorf("zero Verifier with an hour-old timestamp: Verify = %v, want %v", err, webhooksig.ErrStaleTimestamp)
	}
}

func TestVerifyHeaders(t *testing.T) {
	sig, ts := webhooksig.Sign(testSecret, compactBody, testNow)
	tests := []struct {
		name    string
		headers map[string]string
		want    error
	}{
		{name: "canonical names", headers: map[string]string{"X-Klavi-Signature": sig, "X-Klavi-Timestamp": ts}},
		{name: "lower case (API Gateway HTTP API)", headers: map[string]string{"x-klavi-signature": sig, "x-klavi-timestamp": ts}},
		{name: "upper case", headers: map[string]string{"X-KLAVI-SIGNATURE": sig, "X-KLAVI-TIMESTAMP": ts}},
		{name: "mixed case", headers: map[string]string{"x-KLAVI-Signature": sig, "X-klavi-TIMESTAMP": ts}},
		{name: "among other headers", headers: map[string]string{"content-type": "application/json", "x-klavi-signature": sig, "x-klavi-timestamp": ts, "user-agent": "klavi"}},
		{name: "missing signature header", headers: map[string]string{"x-klavi-timestamp": ts}, want: webhooksig.ErrMissingSignature},
		{name: "missing timestamp header", headers: map[string]string{"x-klavi-signature": sig}, want: webhooksig.ErrMissingTimestamp},
		{name: "no headers", headers: nil, want: webhooksig.ErrMissingSignature},
		{name: "signature under another name", headers: map[string]string{"x-signature": sig, "x-klavi-timestamp": ts}, want: webhooksig.ErrMissingSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fixedVerifier().VerifyHeaders(testSecret, compactBody, tc.headers)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("VerifyHeaders = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		lookup  string
		want    string
	}{
		{name: "exact", headers: map[string]string{"X-Klavi-Signature": "a"}, lookup: "X-Klavi-Signature", want: "a"},
		{name: "lower-case key", headers: map[string]string{"x-klavi-signature": "a"}, lookup: "X-Klavi-Signature", want: "a"},
		{name: "lower-case lookup", headers: map[string]string{"X-Klavi-Signature": "a"}, lookup: "x-klavi-signature", want: "a"},
		{name: "missing", headers: map[string]string{"x-other": "a"}, lookup: "X-Klavi-Signature", want: ""},
		{name: "nil map", headers: nil, lookup: "X-Klavi-Signature", want: ""},
		{name: "present but empty", headers: map[string]string{"x-klavi-signature": ""}, lookup: "X-Klavi-Signature", want: ""},
		{
			name:    "exact match wins over other spellings",
			headers: map[string]string{"X-Klavi-Signature": "exact", "x-klavi-signature": "lower", "X-KLAVI-SIGNATURE": "upper"},
			lookup:  "X-Klavi-Signature", want: "exact",
		},
		{
			name:    "smallest key wins without an exact match",
			headers: map[string]string{"x-klavi-signature": "lower", "X-KLAVI-SIGNATURE": "upper", "X-Klavi-SIGNATURE": "mixed"},
			lookup:  "x-Klavi-signature", want: "upper",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Map order is random: repeat so a lucky order cannot hide a bug.
			for range 20 {
				if got := webhooksig.Header(tc.headers, tc.lookup); got != tc.want {
					t.Fatalf("Header(%q) = %q, want %q", tc.lookup, got, tc.want)
				}
			}
		})
	}
}

func TestErrorsDoNotLeak(t *testing.T) {
	secret := []byte("s3cr3t-key-value-0123456789")
	body := []byte(`{"payload":{"personalTaxId":"52998224725"}}`)
	sig, ts := webhooksig.Sign(secret, body, testNow)
	otherSig, _ := webhooksig.Sign([]byte("other"), body, testNow)
	stale := strconv.FormatInt(testNow.Add(-time.Hour).Unix(), 10)

	cases := []struct {
		name   string
		secret []byte
		sig    string
		ts     string
	}{
		{name: "wrong signature", secret: secret, sig: otherSig, ts: ts},
		{name: "garbage signature", secret: secret, sig: "g" + sig[1:], ts: ts},
		{name: "stale", secret: secret, sig: sig, ts: stale},
		{name: "malformed timestamp", secret: secret, sig: sig, ts: "x" + ts},
		{name: "missing signature", secret: secret, sig: "", ts: ts},
		{name: "empty secret", secret: nil, sig: sig, ts: ts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fixedVerifier().Verify(tc.secret, body, tc.sig, tc.ts)
			if err == nil {
				t.Fatal("Verify = nil, want an error")
			}
			msg := fmt.Sprintf("%v %+v", err, err)
			for _, secretish := range []string{string(secret), string(body), "52998224725", sig, otherSig, sig[:16], otherSig[:16]} {
				if strings.Contains(msg, secretish) {
					t.Errorf("error %q contains %q", msg, secretish)
				}
			}
		})
	}
}

// reportBody returns a pretty-printed JSON report of at least size bytes,
// shaped like a product report with many transactions.
func reportBody(tb testing.TB, size int) []byte {
	tb.Helper()
	var b bytes.Buffer
	b.WriteString("{\n  \"productName\": \"checking_account\",\n  \"transactions\": [\n")
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "    {\"id\": \"tx-%08d\", \"amount\": %d.%02d, \"description\": \"PIX RECEBIDO  \\\"loja\\\" %d\", \"category\": \"transfer\"}", i, i%9000, i%100, i)
	}
	b.WriteString("\n  ]\n}\n")
	if !json.Valid(b.Bytes()) {
		tb.Fatal("reportBody produced invalid JSON")
	}
	return b.Bytes()
}

// bytesAllocated returns the heap bytes allocated on average by one call of f.
func bytesAllocated(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	f() // warm up pools and lazily built state
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func TestVerifyLargeBodyDoesNotCopy(t *testing.T) {
	const size = 5 << 20
	body := reportBody(t, size)
	rawSig, ts := webhooksig.Sign(testSecret, body, testNow)
	compactSig, _, err := webhooksig.SignCompact(testSecret, body, testNow)
	if err != nil {
		t.Fatalf("SignCompact: %v", err)
	}
	// Far below one copy of the body: hashing must stream over it.
	const limit = 64 << 10

	for _, tc := range []struct{ name, sig string }{{"raw", rawSig}, {"compact", compactSig}} {
		t.Run(tc.name, func(t *testing.T) {
			v := fixedVerifier()
			var verr error
			got := bytesAllocated(2, func() { verr = v.Verify(testSecret, body, tc.sig, ts) })
			if verr != nil {
				t.Fatalf("Verify = %v, want nil", verr)
			}
			if got > limit {
				t.Errorf("Verify of a %d-byte body allocated %d bytes per call, want at most %d", len(body), got, limit)
			}
		})
	}
}

func BenchmarkVerify5MB(b *testing.B) {
	body := reportBody(b, 5<<20)
	rawSig, ts := webhooksig.Sign(testSecret, body, testNow)
	compactSig, _, err := webhooksig.SignCompact(testSecret, body, testNow)
	if err != nil {
		b.Fatalf("SignCompact: %v", err)
	}
	for _, bc := range []struct{ name, sig string }{{"raw", rawSig}, {"compact", compactSig}} {
		b.Run(bc.name, func(b *testing.B) {
			v := fixedVerifier()
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := v.Verify(testSecret, body, bc.sig, ts); err != nil {
					b.Fatalf("Verify = %v, want nil", err)
				}
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	sig, ts := webhooksig.Sign(testSecret, compactBody, testNow)
	f.Add(testSecret, compactBody, sig, ts)
	f.Add(testSecret, prettyBody, sig, ts)
	f.Add([]byte{}, compactBody, sig, ts)
	f.Add(testSecret, []byte(`[{"a": "b\" c"}]`), "sha256="+strings.ToUpper(sig), "")
	f.Add(testSecret, []byte("\"\\\\\" "), "zz", "-1")
	f.Add(testSecret, []byte(" 1 "), sig[:63], "9223372036854775807")

	sentinels := []error{
		webhooksig.ErrMissingSignature, webhooksig.ErrInvalidSignature,
		webhooksig.ErrMissingTimestamp, webhooksig.ErrStaleTimestamp, webhooksig.ErrEmptySecret,
	}
	f.Fuzz(func(t *testing.T, secret, body []byte, signature, timestamp string) {
		v := fixedVerifier()
		if err := v.Verify(secret, body, signature, timestamp); err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Errorf("Verify = %v, want one of the package's errors", err)
			}
		}
		if len(secret) == 0 {
			return
		}
		s, ts := webhooksig.Sign(secret, body, testNow)
		if err := v.Verify(secret, body, s, ts); err != nil {
			t.Errorf("Verify of Sign's own signature = %v, want nil", err)
		}
		if !json.Valid(body) {
			return
		}
		s, ts, err := webhooksig.SignCompact(secret, body, testNow)
		if err != nil {
			t.Fatalf("SignCompact of valid JSON: %v", err)
		}
		if err := v.Verify(secret, body, s, ts); err != nil {
			t.Errorf("Verify of SignCompact's signature = %v, want nil", err)
		}
	})
}

func TestWellFormed(t *testing.T) {
	sig, _ := webhooksig.Sign([]byte("k"), []byte("{}"), time.Unix(0, 0))
	tests := map[string]bool{
		sig:                     true,
		strings.ToUpper(sig):    false,
		"sha256=" + sig:         false,
		" " + sig:               false,
		sig[:63]:                false,
		sig + "0":               false,
		strings.Repeat("g", 64): false,
		"":                      false,
		strings.Repeat("0", 64): true,
	}
	for in, want := range tests {
		if got := webhooksig.WellFormed(in); got != want {
			t.Errorf("WellFormed(%q) = %v, want %v", in, got, want)
		}
	}
}
