package s3lite_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

// Test credentials. The verifying front checks signatures with them; the
// emulator behind it does not check signatures at all.
const (
	testAccessKey    = "AKIDS3LITETEST"
	testSecretKey    = "s3lite-secret-key-do-not-leak"
	testSessionToken = "s3lite-session-token-do-not-leak"
)

// front is an HTTP server in front of the emulator. It checks each
// request's SigV4 signature and checksums the way S3 would, against the
// bytes on the wire, and forwards it to the emulator, unless fault answers
// it first.
type front struct {
	*httptest.Server
	requests atomic.Int32
}

// faultFunc answers request n (from 1) itself and returns true, or returns
// false to let it through. It sees the request before its body is read.
type faultFunc func(n int, w http.ResponseWriter, r *http.Request) bool

func newFront(t *testing.T, fault faultFunc) *front {
	t.Helper()
	target, err := url.Parse(awstest.Endpoint(t))
	if err != nil {
		t.Fatalf("parse emulator endpoint: %v", err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Del("Expect")
	}}
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.requests.Add(1))
		if fault != nil && fault(n, w, r) {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := verifyRequest(r, body, testSecretKey); err != nil {
			t.Errorf("request %d %s %s: %v", n, r.Method, r.RequestURI, err)
			http.Error(w, "bad request", http.StatusForbidden)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// liteConfig returns a config that sends requests through f with the test
// credentials. It is built by hand: a loaded config's sources would name
// the emulator as the S3 endpoint, and that setting wins over BaseEndpoint
// for S3, in the SDK as in this package.
func liteConfig(t *testing.T, f *front) aws.Config {
	t.Helper()
	return aws.Config{
		Region:       awstest.Region,
		BaseEndpoint: aws.String(f.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, testSessionToken),
	}
}

// verifyRequest checks r as S3 does: the SigV4 signature over the request
// as received, every x-amz-* header signed, and the payload hash and any
// Content-MD5 or SHA-256 checksum against body.
func verifyRequest(r *http.Request, body []byte, secret string) error {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return errors.New("no SigV4 Authorization header")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(auth, ", ") {
		k, v, _ := strings.Cut(part, "=")
		fields[k] = v
	}
	scope := strings.SplitN(fields["Credential"], "/", 2)
	if len(scope) != 2 {
		return fmt.Errorf("bad credential %q", fields["Credential"])
	}
	scopeParts := strings.Split(scope[1], "/") // date/region/service/aws4_request
	if len(scopeParts) != 4 || scopeParts[2] != "s3" || scopeParts[3] != "aws4_request" {
		return fmt.Errorf("bad credential scope %q", scope[1])
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.IsSorted(signed) {
		return fmt.Errorf("signed headers not sorted: %q", signed)
	}
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !slices.Contains(signed, lower) {
			return fmt.Errorf("header %s not signed", lower)
		}
	}

	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	sum := sha256.Sum256(body)
	if payloadHash != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("x-amz-content-sha256 %q does not match the body", payloadHash)
	}
	if v := r.Header.Get("X-Amz-Checksum-Sha256"); v != "" && v != base64.StdEncoding.EncodeToString(sum[:]) {
		return errors.New("x-amz-checksum-sha256 does not match the body")
	}
	if v := r.Header.Get("Content-Md5"); v != "" {
		m := md5.Sum(body)
		if v != base64.StdEncoding.EncodeToString(m[:]) {
			return errors.New("Content-MD5 does not match the body")
		}
	}

	path, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	query, err := canonicalQuery(rawQuery)
	if err != nil {
		return err
	}
	var headers strings.Builder
	for _, name := range signed {
		var value string
		switch name {
		case "host":
			value = r.Host
		case "content-length":
			value = strconv.FormatInt(r.ContentLength, 10)
		default:
			value = strings.Join(r.Header.Values(name), ",")
		}
		headers.WriteString(name + ":" + strings.Join(strings.Fields(value), " ") + "\n")
	}
	canonical := strings.Join([]string{r.Method, path, query, headers.String(), fields["SignedHeaders"], payloadHash}, "\n")
	canonicalSum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + r.Header.Get("X-Amz-Date") + "\n" + scope[1] + "\n" + hex.EncodeToString(canonicalSum[:])

	key := []byte("AWS4" + secret)
	for _, part := range scopeParts {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(fields["Signature"]), []byte(want)) {
		return fmt.Errorf("signature does not match; canonical request:\n%s", canonical)
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalQuery sorts the query's parameters and encodes them as SigV4
// requires, "name=value" even for an empty value.
func canonicalQuery(raw string) (string, error) {
	var params [][2]string
	for kv := range strings.SplitSeq(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.PathUnescape(k)
		if err != nil {
			return "", fmt.Errorf("query name: %w", err)
		}
		v, err = url.PathUnescape(v)
		if err != nil {
			return "", fmt.Errorf("query value: %w", err)
		}
		params = append(params, [2]string{sigv4Escape(k), sigv4Escape(v)})
	}
	slices.SortFunc(params, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	out := make([]string, len(params))
	for i, p := range params {
		out[i] = p[0] + "=" + p[1]
	}
	return strings.Join(out, "&"), nil
}

func sigv4Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
