package s3lite_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/s3lite"
)

// stub is a fake S3 that checks each signed request and answers with its
// handler. It needs no emulator.
type stub struct {
	cfg      aws.Config
	requests atomic.Int32
}

func newStub(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *stub {
	t.Helper()
	s := &stub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
			return
		}
		if r.Header.Get("Authorization") != "" {
			if err := verifyRequest(r, body, testSecretKey); err != nil {
				t.Errorf("%s %s: %v", r.Method, r.RequestURI, err)
			}
		}
		handler(w, r, body)
	}))
	t.Cleanup(srv.Close)
	s.cfg = aws.Config{
		Region:       "sa-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, testSessionToken),
	}
	return s
}

func (s *stub) client(opts ...s3lite.Option) *s3lite.Client {
	return s3lite.New(s.cfg, append([]s3lite.Option{fastRetries}, opts...)...)
}

// TestVerifyRequestCanFail shows that the verifier the other tests rely on
// rejects a wrong key and any change to what was signed.
func TestVerifyRequestCanFail(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	var gotBody []byte
	s := newStub(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		got, gotBody = r.Clone(r.Context()), body
	})
	_, err := s.client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String("b"), Key: aws.String("a b/ç+%.json"), Body: strings.NewReader("payload"),
		Metadata: map[string]string{"k": "v"},
	})
	if err != nil {
		t.Fatalf("PutObject() error = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if err := verifyRequest(got, gotBody, testSecretKey); err != nil {
		t.Fatalf("verifyRequest(as sent) = %v, want nil", err)
	}
	tests := []struct {
		name   string
		change func(r *http.Request) (body []byte, secret string)
	}{
		{"wrong secret", func(*http.Request) ([]byte, string) { return gotBody, "other" }},
		{"other body", func(*http.Request) ([]byte, string) { return []byte("payloaD"), testSecretKey }},
		{"changed metadata", func(r *http.Request) ([]byte, string) {
			r.Header.Set("X-Amz-Meta-K", "w")
			return gotBody, testSecretKey
		}},
		{"unsigned x-amz header", func(r *http.Request) ([]byte, string) {
			r.Header.Set("X-Amz-Acl", "public-read")
			return gotBody, testSecretKey
		}},
		{"other path", func(r *http.Request) ([]byte, string) { r.RequestURI = "/b/a%20b/other"; return gotBody, testSecretKey }},
		{"other host", func(r *http.Request) ([]byte, string) { r.Host = "evil.example"; return gotBody, testSecretKey }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := got.Clone(t.Context())
			body, secret := tc.change(r)
			if err := verifyRequest(r, body, secret); err == nil {
				t.Errorf("verifyRequest() = nil, want an error")
			}
		})
	}
}

func TestPutHeaders(t *testing.T) {
	small := []byte(`{"productReportId":"r"}`)
	large := bytes.Repeat([]byte("x"), 2<<20)
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	tests := []struct {
		name string
		in   s3.PutObjectInput
		body []byte
		want map[string]string // "" means the header must be absent
	}{
		{
			name: "report store put",
			body: small,
			in: s3.PutObjectInput{
				ContentType: aws.String("application/json"), IfNoneMatch: aws.String("*"),
				ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(sha256Base64(small)),
				Metadata:             map[string]string{"request-id": "req-1", "sha256": sum(small)},
				ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("alias/k"), BucketKeyEnabled: aws.Bool(true),
			},
			want: map[string]string{
				"Content-Type": "application/json", "If-None-Match": "*", "Content-Length": "23",
				"X-Amz-Content-Sha256": sum(small), "X-Amz-Checksum-Sha256": sha256Base64(small),
				"X-Amz-Sdk-Checksum-Algorithm": "SHA256", "X-Amz-Meta-Request-Id": "req-1", "X-Amz-Meta-Sha256": sum(small),
				"X-Amz-Server-Side-Encryption": "aws:kms", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "alias/k",
				"X-Amz-Server-Side-Encryption-Bucket-Key-Enabled": "true", "X-Amz-Security-Token": testSessionToken,
				"Accept-Encoding": "identity", "Expect": "",
			},
		},
		{
			name: "no checksum asked",
			body: small,
			in:   s3.PutObjectInput{ServerSideEncryption: types.ServerSideEncryptionAes256},
			want: map[string]string{
				"X-Amz-Content-Sha256": sum(small), "X-Amz-Checksum-Sha256": "", "X-Amz-Sdk-Checksum-Algorithm": "",
				"X-Amz-Server-Side-Encryption": "AES256", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "",
				"Content-Type": "", "If-None-Match": "",
			},
		},
		{
			name: "large body waits for 100-continue",
			body: large,
			in:   s3.PutObjectInput{ChecksumAlgorithm: types.ChecksumAlgorithmSha256},
			want: map[string]string{
				"Expect": "100-continue", "Content-Length": "2097152", "X-Amz-Content-Sha256": sum(large),
				"X-Amz-Checksum-Sha256": sha256Base64(large),
			},
		},
		{
			name: "empty body",
			in:   s3.PutObjectInput{},
			want: map[string]string{"Content-Length": "0", "X-Amz-Content-Sha256": sum(nil)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got http.Header
			var gotBody []byte
			s := newStub(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
				mu.Lock()
				defer mu.Unlock()
				got, gotBody = r.Header.Clone(), body
				got.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
				w.Header().Set("ETag", `"etag"`)
			})
			in := tc.in
			in.Bucket, in.Key = aws.String("b"), aws.String("k")
			if tc.body != nil {
				in.Body = bytes.NewReader(tc.body)
			}
			out, err := s.client().PutObject(t.Context(), &in)
			if err != nil {
				t.Fatalf("PutObject() error = %v", err)
			}
			if aws.ToString(out.ETag) != `"etag"` {
				t.Errorf("ETag = %q, want %q", aws.ToString(out.ETag), `"etag"`)
			}
			mu.Lock()
			defer mu.Unlock()
			for name, want := range tc.want {
				if v := got.Get(name); v != want {
					t.Errorf("header %s = %q, want %q", name, v, want)
				}
			}
			if !bytes.Equal(gotBody, tc.body) {
				t.Errorf("server got %d body bytes, want %d", len(gotBody), len(tc.body))
			}
		})
	}
}

func TestPutRejectsBeforeSending(t *testing.T) {
	tests := []struct {
		name string
		in   s3.PutObjectInput
		want string
	}{
		{name: "body that cannot seek", in: s3.PutObjectInput{Body: io.MultiReader(strings.NewReader("x"))}, want: "io.ReadSeeker"},
		{name: "length mismatch", in: s3.PutObjectInput{Body: strings.NewReader("abc"), ContentLength: aws.Int64(2)}, want: "ContentLength"},
		{name: "other checksum algorithm", in: s3.PutObjectInput{Body: strings.NewReader("abc"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}, want: "CRC32"},
		{name: "bad checksum value", in: s3.PutObjectInput{Body: strings.NewReader("abc"), ChecksumSHA256: aws.String("not base64!")}, want: "ChecksumSHA256"},
		{name: "missing key", in: s3.PutObjectInput{Body: strings.NewReader("abc"), Key: aws.String("")}, want: "Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStub(t, func(http.ResponseWriter, *http.Request, []byte) {})
			in := tc.in
			in.Bucket = aws.String("b")
			if in.Key == nil {
				in.Key = aws.String("k")
			}
			_, err := s.client().PutObject(t.Context(), &in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PutObject() error = %v, want one mentioning %q", err, tc.want)
			}
			if n := s.requests.Load(); n != 0 {
				t.Errorf("server saw %d requests, want 0", n)
			}
		})
	}
}

// TestPutResumesFromReaderPosition sends what is left of a body that was
// partly read, as the SDK does.
func TestPutResumesFromReaderPosition(t *testing.T) {
	var mu sync.Mutex
	var got []byte
	s := newStub(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		if got != nil {
			return
		}
		got = body
		writeError(w, http.StatusServiceUnavailable, "SlowDown") // and once more
	})
	r := strings.NewReader("skip:keep")
	r.Seek(5, io.SeekStart)
	if _, err := s.client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: r}); err != nil {
		t.Fatalf("PutObject() error = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(got) != "keep" || s.requests.Load() != 2 {
		t.Errorf("server got %q in %d requests, want %q in 2", got, s.requests.Load(), "keep")
	}
}

func TestDeleteObjectsRequest(t *testing.T) {
	type object struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	}
	type deleteDoc struct {
		XMLName xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ Delete"`
		Objects []object `xml:"Object"`
		Quiet   bool     `xml:"Quiet"`
	}
	var mu sync.Mutex
	var got deleteDoc
	var gotQuery string
	s := newStub(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		gotQuery = r.URL.RawQuery
		if r.Header.Get("Content-Md5") == "" {
			t.Errorf("DeleteObjects sent no Content-MD5")
		}
		if err := xml.Unmarshal(body, &got); err != nil {
			t.Errorf("request body: %v", err)
		}
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>a &amp; b</Key></Deleted>
  <Deleted><Key>v</Key><VersionId>3</VersionId><DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>4</DeleteMarkerVersionId></Deleted>
  <Error><Key>locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>`)
	})
	keys := []object{{Key: "a & b"}, {Key: "v", VersionID: "3"}, {Key: "locked"}, {Key: " <x>\t\r\n'\"ü "}}
	var ids []types.ObjectIdentifier
	for _, k := range keys {
		id := types.ObjectIdentifier{Key: aws.String(k.Key)}
		if k.VersionID != "" {
			id.VersionId = aws.String(k.VersionID)
		}
		ids = append(ids, id)
	}
	out, err := s.client().DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
		Bucket: aws.String("b"), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		t.Fatalf("DeleteObjects() error = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotQuery != "delete=" {
		t.Errorf("query = %q, want %q", gotQuery, "delete=")
	}
	if diff := cmp.Diff(deleteDoc{XMLName: got.XMLName, Objects: keys, Quiet: true}, got); diff != "" {
		t.Errorf("request document mismatch (-want +got):\n%s", diff)
	}
	wantOut := &s3.DeleteObjectsOutput{
		Deleted: []types.DeletedObject{
			{Key: aws.String("a & b")},
			{Key: aws.String("v"), VersionId: aws.String("3"), DeleteMarker: aws.Bool(true), DeleteMarkerVersionId: aws.String("4")},
		},
		Errors: []types.Error{{Key: aws.String("locked"), Code: aws.String("AccessDenied"), Message: aws.String("Access Denied")}},
	}
	if diff := cmp.Diff(wantOut.Deleted, out.Deleted, cmpopts.IgnoreUnexported(types.DeletedObject{})); diff != "" {
		t.Errorf("Deleted mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantOut.Errors, out.Errors, cmpopts.IgnoreUnexported(types.Error{})); diff != "" {
		t.Errorf("Errors mismatch (-want +got):\n%s", diff)
	}
}

func TestDeleteObjectsRefusesKeysXMLCannotCarry(t *testing.T) {
	s := newStub(t, func(http.ResponseWriter, *http.Request, []byte) {})
	for _, key := range []string{"a\x00b", "a\x1bb", "bad utf-8 \xff", ""} {
		_, err := s.client().DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
			Bucket: aws.String("b"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}}},
		})
		if err == nil {
			t.Errorf("DeleteObjects(%q) error = nil, want an error", key)
		}
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestGetObjectChecksum(t *testing.T) {
	body := []byte("the report bytes")
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	crc := func(tab *crc32.Table) string {
		v := crc32.Checksum(body, tab)
		return b64([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	sum := sha256.Sum256(body)
	other := sha256.Sum256([]byte("other bytes"))
	tests := []struct {
		name    string
		header  string
		value   string
		mode    types.ChecksumMode
		wantErr error
	}{
		{name: "sha256 matches", header: "X-Amz-Checksum-Sha256", value: b64(sum[:]), mode: types.ChecksumModeEnabled},
		{name: "sha256 differs", header: "X-Amz-Checksum-Sha256", value: b64(other[:]), mode: types.ChecksumModeEnabled, wantErr: s3lite.ErrChecksumMismatch},
		{name: "crc32 matches", header: "X-Amz-Checksum-Crc32", value: crc(crc32.IEEETable), mode: types.ChecksumModeEnabled},
		{name: "crc32 differs", header: "X-Amz-Checksum-Crc32", value: "AAAAAA==", mode: types.ChecksumModeEnabled, wantErr: s3lite.ErrChecksumMismatch},
		{name: "crc32c matches", header: "X-Amz-Checksum-Crc32c", value: crc(crc32.MakeTable(crc32.Castagnoli)), mode: types.ChecksumModeEnabled},
		{name: "crc32c differs", header: "X-Amz-Checksum-Crc32c", value: crc(crc32.IEEETable), mode: types.ChecksumModeEnabled, wantErr: s3lite.ErrChecksumMismatch},
		{name: "multipart checksum not checked", header: "X-Amz-Checksum-Sha256", value: b64(other[:]) + "-3", mode: types.ChecksumModeEnabled},
		{name: "not asked", header: "X-Amz-Checksum-Sha256", value: b64(other[:])},
		{name: "none stored", mode: types.ChecksumModeEnabled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStub(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				if got, want := r.Header.Get("X-Amz-Checksum-Mode"), string(tc.mode); got != want {
					t.Errorf("x-amz-checksum-mode = %q, want %q", got, want)
				}
				if tc.header != "" {
					w.Header().Set(tc.header, tc.value)
				}
				w.Write(body)
			})
			out, err := s.client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), ChecksumMode: tc.mode})
			if err != nil {
				t.Fatalf("GetObject() error = %v", err)
			}
			defer out.Body.Close()
			got, err := io.ReadAll(out.Body)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("read error = %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("read %q, want %q", got, body)
			}
		})
	}
}

// TestGetObjectKeepsEncodedBytes reads a gzip-encoded object: the bytes
// come back as stored, not decompressed by the transport.
func TestGetObjectKeepsEncodedBytes(t *testing.T) {
	var stored bytes.Buffer
	zw := gzip.NewWriter(&stored)
	zw.Write([]byte(`{"a":1}`))
	zw.Close()
	s := newStub(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("X-Amz-Meta-Product", "pf_loans")
		w.Write(stored.Bytes())
	})
	out, err := s.client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("GetObject() error = %v", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, stored.Bytes()) || aws.ToInt64(out.ContentLength) != int64(stored.Len()) {
		t.Errorf("read %d bytes, ContentLength %d, want the %d stored bytes", len(got), aws.ToInt64(out.ContentLength), stored.Len())
	}
	if aws.ToString(out.ContentEncoding) != "gzip" || out.Metadata["product"] != "pf_loans" {
		t.Errorf("ContentEncoding %q, Metadata %v, want gzip and product pf_loans", aws.ToString(out.ContentEncoding), out.Metadata)
	}
}

// TestErrorsWithoutBody covers answers with no XML document, as to HEAD
// requests or from a proxy: the code comes from the status, and the report
// store still recognises them.
func TestErrorsWithoutBody(t *testing.T) {
	status := http.StatusNotFound
	var mu sync.Mutex
	s := newStub(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	})
	store := reportstore.New(s.client(), "b", reportstore.Options{})
	key := reportstore.ReportKey("L1", "pf_loans", "r")

	_, _, err := store.Open(t.Context(), key)
	if !errors.Is(err, reportstore.ErrNotFound) {
		t.Errorf("Open() error = %v, want %v", err, reportstore.ErrNotFound)
	}
	_, err = s.client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	var apiErr *s3lite.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "NotFound" || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("GetObject() error = %v, want code NotFound with HTTP 404", err)
	}

	mu.Lock()
	status = http.StatusPreconditionFailed
	mu.Unlock()
	if _, err := store.Put(t.Context(), reportstore.Object{Key: key, Body: []byte(`{}`)}); !errors.Is(err, reportstore.ErrExists) {
		t.Errorf("Put() error = %v, want %v", err, reportstore.ErrExists)
	}
}

func TestErrorsHideSecretsAndBodies(t *testing.T) {
	const bodyCanary = "BODY-CANARY-do-not-leak"
	const docCanary = "ERROR-DOCUMENT-CANARY"
	long := strings.Repeat("m", 10_000)
	tests := []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request)
	}{
		{"signature error document", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message>`+
				`<AWSAccessKeyId>`+testAccessKey+`</AWSAccessKeyId><StringToSign>`+docCanary+`</StringToSign>`+
				`<CanonicalRequest>`+docCanary+` `+bodyCanary+`</CanonicalRequest><RequestId>R1</RequestId></Error>`)
		}},
		{"huge message", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `<Error><Code>InvalidArgument</Code><Message>`+long+docCanary+`</Message></Error>`)
		}},
		{"not XML", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>"+docCanary+"</html>")
		}},
		{"connection dropped", func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStub(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { tc.fault(w, r) })
			_, err := s.client().PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader(bodyCanary),
				Metadata: map[string]string{"m": "v"},
			})
			if err == nil {
				t.Fatal("PutObject() error = nil, want an error")
			}
			msg := err.Error()
			for _, secret := range []string{testAccessKey, testSecretKey, testSessionToken, bodyCanary, docCanary, long} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q holds %q", msg, secret[:min(len(secret), 20)])
				}
			}
		})
	}
}

func TestAnonymousRequestsAreNotSigned(t *testing.T) {
	var sawAuth atomic.Bool
	s := newStub(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		sawAuth.Store(r.Header.Get("Authorization") != "")
		io.WriteString(w, `<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`)
	})
	cfg := s.cfg
	cfg.Credentials = aws.AnonymousCredentials{}
	out, err := s3lite.New(cfg).ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("b")})
	if err != nil {
		t.Fatalf("ListObjectsV2() error = %v", err)
	}
	if sawAuth.Load() || aws.ToString(out.Name) != "b" {
		t.Errorf("Authorization sent = %v, Name = %q, want false and b", sawAuth.Load(), aws.ToString(out.Name))
	}
}

func TestNoCredentials(t *testing.T) {
	s := newStub(t, func(http.ResponseWriter, *http.Request, []byte) {})
	cfg := s.cfg
	cfg.Credentials = nil
	if _, err := s3lite.New(cfg).GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err == nil {
		t.Error("GetObject() without credentials error = nil, want an error")
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

// countingProvider counts how often credentials are fetched.
type countingProvider struct{ calls atomic.Int32 }

func (p *countingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	p.calls.Add(1)
	return aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, SessionToken: testSessionToken}, nil
}

func TestCredentialsAreCached(t *testing.T) {
	s := newStub(t, func(http.ResponseWriter, *http.Request, []byte) {})
	cfg := s.cfg
	p := &countingProvider{}
	cfg.Credentials = p
	c := s3lite.New(cfg)
	for range 3 {
		if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
			t.Fatalf("PutObject() error = %v", err)
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("credentials fetched %d times for 3 requests, want 1", n)
	}
}
