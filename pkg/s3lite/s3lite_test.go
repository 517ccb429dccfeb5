package s3lite_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/s3lite"
)

var (
	_ reportstore.S3API         = (*s3lite.Client)(nil)
	_ s3.ListObjectsV2APIClient = (*s3lite.Client)(nil)
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// newBucket creates an empty bucket in the emulator and returns the SDK's
// own client for it, which the tests use as the reference.
func newBucket(t *testing.T) (*s3.Client, string) {
	t.Helper()
	cfg := awstest.Config(t)
	// The SDK logs each read of an object stored without a checksum.
	cfg.Logger = logging.Nop{}
	sdk := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "s3lite")
	if _, err := sdk.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return sdk, bucket
}

// newLite returns a client whose every request goes through a verifying
// front to the emulator.
func newLite(t *testing.T) *s3lite.Client {
	t.Helper()
	f := newFront(t, nil)
	t.Cleanup(func() {
		if f.requests.Load() == 0 {
			t.Error("no request went through the verifying front")
		}
	})
	return s3lite.New(liteConfig(t, f))
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return b
}

func sha256Base64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func sdkGet(t *testing.T, sdk *s3.Client, bucket, key string) (*s3.GetObjectOutput, []byte) {
	t.Helper()
	out, err := sdk.GetObject(t.Context(), &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatalf("SDK GetObject(%q) error = %v", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("SDK read %q: %v", key, err)
	}
	return out, body
}

func liteGet(t *testing.T, c *s3lite.Client, bucket, key string) (*s3.GetObjectOutput, []byte) {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatalf("lite GetObject(%q) error = %v", key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("lite read %q: %v", key, err)
	}
	return out, body
}

func TestPutWithLiteReadWithSDK(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	const kmsKey = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	body := randomBytes(t, 300<<10)
	meta := map[string]string{"request-id": "req-1", "product": "pf_checking_account", "sha256": "abc"}
	tests := []struct {
		name         string
		in           s3.PutObjectInput
		wantChecksum string
		wantSSE      types.ServerSideEncryption
		wantKMS      string
	}{
		{
			name: "as the report store sends it",
			in: s3.PutObjectInput{
				ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(sha256Base64(body)),
				ServerSideEncryption: types.ServerSideEncryptionAes256, IfNoneMatch: aws.String("*"),
			},
			wantChecksum: sha256Base64(body), wantSSE: types.ServerSideEncryptionAes256,
		},
		{
			name: "checksum computed",
			in: s3.PutObjectInput{
				ChecksumAlgorithm:    types.ChecksumAlgorithmSha256,
				ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(kmsKey), BucketKeyEnabled: aws.Bool(true),
			},
			wantChecksum: sha256Base64(body), wantSSE: types.ServerSideEncryptionAwsKms, wantKMS: kmsKey,
		},
		{name: "no checksum", in: s3.PutObjectInput{}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("lite-put/%d.json", i)
			in := tc.in
			in.Bucket, in.Key = aws.String(bucket), aws.String(key)
			in.Body = bytes.NewReader(body)
			in.ContentLength = aws.Int64(int64(len(body)))
			in.ContentType = aws.String("application/json")
			in.Metadata = meta
			put, err := lite.PutObject(t.Context(), &in)
			if err != nil {
				t.Fatalf("lite PutObject() error = %v", err)
			}

			got, gotBody := sdkGet(t, sdk, bucket, key)
			if !bytes.Equal(gotBody, body) {
				t.Errorf("SDK read %d bytes that differ from the %d put", len(gotBody), len(body))
			}
			if diff := cmp.Diff(meta, got.Metadata); diff != "" {
				t.Errorf("Metadata mismatch (-put +got):\n%s", diff)
			}
			if ct := aws.ToString(got.ContentType); ct != "application/json" {
				t.Errorf("ContentType = %q, want application/json", ct)
			}
			if got.ServerSideEncryption != tc.wantSSE {
				t.Errorf("ServerSideEncryption = %q, want %q", got.ServerSideEncryption, tc.wantSSE)
			}
			if kms := aws.ToString(got.SSEKMSKeyId); kms != tc.wantKMS {
				t.Errorf("SSEKMSKeyId = %q, want %q", kms, tc.wantKMS)
			}
			if sum := aws.ToString(got.ChecksumSHA256); sum != tc.wantChecksum {
				t.Errorf("ChecksumSHA256 = %q, want %q", sum, tc.wantChecksum)
			}
			if etag := aws.ToString(put.ETag); etag == "" || etag != aws.ToString(got.ETag) {
				t.Errorf("PutObject ETag = %q, SDK read ETag %q", etag, aws.ToString(got.ETag))
			}
			if put.ServerSideEncryption != tc.wantSSE {
				t.Errorf("PutObject ServerSideEncryption = %q, want %q", put.ServerSideEncryption, tc.wantSSE)
			}
		})
	}
}

func TestPutWithSDKReadWithLite(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	body := randomBytes(t, 200<<10)
	meta := map[string]string{"request-id": "req-1", "code": "200"}
	const key = "sdk-put/r.json"
	if _, err := sdk.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), Metadata: meta,
		ChecksumAlgorithm:    types.ChecksumAlgorithmSha256,
		ServerSideEncryption: types.ServerSideEncryptionAes256,
	}); err != nil {
		t.Fatalf("SDK PutObject() error = %v", err)
	}

	got, gotBody := liteGet(t, lite, bucket, key)
	want, _ := sdkGet(t, sdk, bucket, key)
	if !bytes.Equal(gotBody, body) {
		t.Errorf("lite read %d bytes that differ from the %d put", len(gotBody), len(body))
	}
	if n := aws.ToInt64(got.ContentLength); n != int64(len(body)) {
		t.Errorf("ContentLength = %d, want %d", n, len(body))
	}
	if diff := cmp.Diff(meta, got.Metadata); diff != "" {
		t.Errorf("Metadata mismatch (-put +got):\n%s", diff)
	}
	for _, f := range []struct{ name, got, want string }{
		{"ContentType", aws.ToString(got.ContentType), "application/json"},
		{"ServerSideEncryption", string(got.ServerSideEncryption), string(types.ServerSideEncryptionAes256)},
		{"ChecksumSHA256", aws.ToString(got.ChecksumSHA256), sha256Base64(body)},
		{"ETag", aws.ToString(got.ETag), aws.ToString(want.ETag)},
		{"LastModified", aws.ToTime(got.LastModified).String(), aws.ToTime(want.LastModified).String()},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
}

func TestPutIfNoneMatchRefusesDuplicate(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	first, second := randomBytes(t, 1<<10), randomBytes(t, 1<<10)
	put := func(body []byte) error {
		_, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("dup.json"), Body: bytes.NewReader(body), IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put(first); err != nil {
		t.Fatalf("first PutObject() error = %v", err)
	}
	err := put(second)
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("duplicate PutObject() error = %v, want smithy.APIError PreconditionFailed", err)
	}
	var status interface{ HTTPStatusCode() int }
	if !errors.As(err, &status) || status.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Errorf("duplicate PutObject() error = %v, want HTTPStatusCode() 412", err)
	}
	var opErr *smithy.OperationError
	if !errors.As(err, &opErr) || opErr.Operation() != "PutObject" || opErr.Service() != "S3" {
		t.Errorf("duplicate PutObject() error = %v, want a *smithy.OperationError for S3 PutObject", err)
	}
	if _, got := sdkGet(t, sdk, bucket, "dup.json"); !bytes.Equal(got, first) {
		t.Errorf("after a refused duplicate the stored object is not the first body")
	}
}

func TestGetMissingKey(t *testing.T) {
	t.Parallel()
	_, bucket := newBucket(t)
	lite := newLite(t)
	_, err := lite.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing.json")})
	var apiErr *s3lite.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NoSuchKey" || apiErr.HTTPStatusCode() != http.StatusNotFound {
		t.Fatalf("GetObject(missing) error = %v, want NoSuchKey with HTTP 404", err)
	}
	var noKey *types.NoSuchKey
	if !errors.As(err, &noKey) {
		t.Errorf("GetObject(missing) error = %v, want it to match *types.NoSuchKey", err)
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	var want []string
	for i := range 7 {
		want = append(want, fmt.Sprintf("p/%02d.json", i))
	}
	for _, key := range append(slices.Clone(want), "q/a.json", "q/b/c.json", "top.json") {
		if _, err := sdk.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(key),
		}); err != nil {
			t.Fatalf("SDK PutObject(%q) error = %v", key, err)
		}
	}

	type page struct {
		Keys      []string
		Sizes     []int64
		KeyCount  int32
		Truncated bool
		HasNext   bool
	}
	pages := func(client s3.ListObjectsV2APIClient) []page {
		t.Helper()
		p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{
			Bucket: aws.String(bucket), Prefix: aws.String("p/"), MaxKeys: aws.Int32(3),
		})
		var out []page
		for p.HasMorePages() {
			res, err := p.NextPage(t.Context())
			if err != nil {
				t.Fatalf("ListObjectsV2 page %d error = %v", len(out)+1, err)
			}
			pg := page{KeyCount: aws.ToInt32(res.KeyCount), Truncated: aws.ToBool(res.IsTruncated), HasNext: res.NextContinuationToken != nil}
			for _, o := range res.Contents {
				pg.Keys = append(pg.Keys, aws.ToString(o.Key))
				pg.Sizes = append(pg.Sizes, aws.ToInt64(o.Size))
			}
			out = append(out, pg)
		}
		return out
	}
	got := pages(lite)
	if diff := cmp.Diff(pages(sdk), got); diff != "" {
		t.Errorf("lite pages differ from the SDK's (-sdk +lite):\n%s", diff)
	}
	var keys []string
	for _, pg := range got {
		keys = append(keys, pg.Keys...)
	}
	if diff := cmp.Diff(want, keys); diff != "" || len(got) != 3 {
		t.Errorf("listed %d pages, keys mismatch (-want +got):\n%s", len(got), diff)
	}

	res, err := lite.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("ListObjectsV2(delimiter) error = %v", err)
	}
	var prefixes []string
	for _, p := range res.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	if diff := cmp.Diff([]string{"p/", "q/"}, prefixes); diff != "" {
		t.Errorf("CommonPrefixes mismatch (-want +got):\n%s", diff)
	}
	if len(res.Contents) != 1 || aws.ToString(res.Contents[0].Key) != "top.json" || res.Contents[0].LastModified == nil {
		t.Errorf("Contents with delimiter = %+v, want only top.json with its LastModified", res.Contents)
	}
}

func TestDeleteManyKeys(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("del/%03d <&>\"' ç+%%.json", i))
	}
	for _, key := range keys {
		if _, err := sdk.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x"),
		}); err != nil {
			t.Fatalf("SDK PutObject(%q) error = %v", key, err)
		}
	}
	ids := func(keys []string) []types.ObjectIdentifier {
		out := make([]types.ObjectIdentifier, len(keys))
		for i, k := range keys {
			out[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		return out
	}

	out, err := lite.DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
		Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids(keys[:40])},
	})
	if err != nil {
		t.Fatalf("DeleteObjects() error = %v", err)
	}
	var deleted []string
	for _, d := range out.Deleted {
		deleted = append(deleted, aws.ToString(d.Key))
	}
	slices.Sort(deleted)
	if diff := cmp.Diff(keys[:40], deleted); diff != "" || len(out.Errors) != 0 {
		t.Errorf("DeleteObjects() errors %+v, deleted mismatch (-want +got):\n%s", out.Errors, diff)
	}

	out, err = lite.DeleteObjects(t.Context(), &s3.DeleteObjectsInput{
		Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids(append(keys[40:], "del/never-existed")), Quiet: aws.Bool(true)},
	})
	if err != nil {
		t.Fatalf("quiet DeleteObjects() error = %v", err)
	}
	// moto lists deleted keys even in quiet mode, so only errors are
	// checked here; TestDeleteObjectsRequest checks what is sent.
	if len(out.Errors) != 0 {
		t.Errorf("quiet DeleteObjects() errors = %+v, want none", out.Errors)
	}
	left, err := sdk.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("SDK ListObjectsV2() error = %v", err)
	}
	if len(left.Contents) != 0 {
		t.Errorf("%d objects left after deleting them all", len(left.Contents))
	}
}

func TestKeyEscaping(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	keys := []string{
		"esc/a b.json",
		"esc/ação ü 日本.json",
		"esc/a+b.json",
		"esc/100%.json",
		"esc/x%2Fy.json",
		"esc/%41.json",
		"esc/tilde~star*paren()!.json",
		"esc/semi;eq=amp&at@colon:comma,dollar$.json",
		"esc/q?hash#.json",
		"esc/quote\"apos'lt<gt>.json",
		"esc/sub/dir/deep.json",
	}
	for i, key := range keys {
		t.Run(key, func(t *testing.T) {
			litePut := []byte(fmt.Sprintf("lite %d", i))
			if _, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(litePut),
			}); err != nil {
				t.Fatalf("lite PutObject() error = %v", err)
			}
			if _, got := sdkGet(t, sdk, bucket, key); !bytes.Equal(got, litePut) {
				t.Errorf("SDK read %q, want %q", got, litePut)
			}
			sdkPut := []byte(fmt.Sprintf("sdk %d", i))
			if _, err := sdk.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(sdkPut),
			}); err != nil {
				t.Fatalf("SDK PutObject() error = %v", err)
			}
			if _, got := liteGet(t, lite, bucket, key); !bytes.Equal(got, sdkPut) {
				t.Errorf("lite read %q, want %q", got, sdkPut)
			}
		})
	}
	res, err := lite.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("esc/")})
	if err != nil {
		t.Fatalf("ListObjectsV2() error = %v", err)
	}
	var listed []string
	for _, o := range res.Contents {
		listed = append(listed, aws.ToString(o.Key))
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(keys)), listed); diff != "" {
		t.Errorf("listed keys mismatch (-want +got):\n%s", diff)
	}
}

// TestReportStore runs the report store on the lite client against the
// emulator: the behaviours its own tests check with the SDK's client.
func TestReportStore(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	obj := func(key string, body []byte) reportstore.Object {
		return reportstore.Object{Key: key, Body: body, RequestID: "req-1", ProductName: "pf_loans", ProductReportID: "r", Code: "200"}
	}

	t.Run("put, duplicate, open", func(t *testing.T) {
		// Straight to the emulator, so that a 5 MB body goes through its
		// handling of Expect: 100-continue.
		s := reportstore.New(s3lite.New(awstest.Config(t)), bucket, reportstore.Options{})
		key := reportstore.ReportKey("L0", "pf_loans", "big")
		body := randomBytes(t, 5<<20)
		res, err := s.Put(t.Context(), obj(key, body))
		if err != nil {
			t.Fatalf("Put() error = %v", err)
		}
		if res.Bytes != int64(len(body)) {
			t.Errorf("Put() Bytes = %d, want %d", res.Bytes, len(body))
		}
		if _, err := s.Put(t.Context(), obj(key, randomBytes(t, 5<<20))); !errors.Is(err, reportstore.ErrExists) {
			t.Errorf("duplicate Put() error = %v, want %v", err, reportstore.ErrExists)
		}
		rc, n, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open() error = %v", err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Equal(got, body) || n != int64(len(body)) {
			t.Errorf("Open() read %d bytes (length %d) that differ from the %d put", len(got), n, len(body))
		}
		head, err := sdk.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("SDK HeadObject() error = %v", err)
		}
		if aws.ToString(head.ChecksumSHA256) != sha256Base64(body) || head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Errorf("HeadObject() checksum %q, SSE %q, want the body's SHA-256 and AES256", aws.ToString(head.ChecksumSHA256), head.ServerSideEncryption)
		}
		if got := head.Metadata[reportstore.MetaSHA256]; got != res.SHA256 {
			t.Errorf("metadata sha256 = %q, want %q", got, res.SHA256)
		}
	})

	t.Run("open missing", func(t *testing.T) {
		s := reportstore.New(lite, bucket, reportstore.Options{})
		if _, _, err := s.Open(t.Context(), reportstore.ReportKey("L0", "pf_loans", "missing")); !errors.Is(err, reportstore.ErrNotFound) {
			t.Errorf("Open(missing) error = %v, want %v", err, reportstore.ErrNotFound)
		}
	})

	t.Run("KMS", func(t *testing.T) {
		const keyID = "alias/reports"
		s := reportstore.New(lite, bucket, reportstore.Options{KMSKeyID: keyID})
		key := reportstore.UnmatchedKey("link-kms", "pf_loans", "kms")
		if _, err := s.Put(t.Context(), obj(key, []byte(`{}`))); err != nil {
			t.Fatalf("Put() error = %v", err)
		}
		head, err := sdk.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("SDK HeadObject() error = %v", err)
		}
		if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(head.SSEKMSKeyId) != keyID {
			t.Errorf("HeadObject() SSE %q key %q, want %q %q", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId), types.ServerSideEncryptionAwsKms, keyID)
		}
	})

	t.Run("delete prefix", func(t *testing.T) {
		s := reportstore.New(lite, bucket, reportstore.Options{ListPageSize: 2})
		var purged, kept []string
		for i := range 5 {
			purged = append(purged, reportstore.ReportKey("L1", "pf_loans", fmt.Sprint("r", i)))
		}
		kept = append(kept, reportstore.ReportKey("L10", "pf_loans", "r"), reportstore.ReportKey("L1 ", "pf_loans", "r"))
		for _, key := range slices.Concat(purged, kept) {
			if _, err := s.Put(t.Context(), obj(key, []byte(`{}`))); err != nil {
				t.Fatalf("Put(%q) error = %v", key, err)
			}
		}
		n, err := s.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1"))
		if err != nil || n != len(purged) {
			t.Fatalf("DeletePrefix() = %d, %v, want %d, nil", n, err, len(purged))
		}
		for _, key := range kept {
			if _, err := sdk.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
				t.Errorf("HeadObject(%q) after purging another link: %v", key, err)
			}
		}
		for _, key := range purged {
			if _, err := sdk.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err == nil {
				t.Errorf("HeadObject(%q) found a purged report", key)
			}
		}
	})
}

func TestMetadataKeysLowercase(t *testing.T) {
	t.Parallel()
	sdk, bucket := newBucket(t)
	lite := newLite(t)
	if _, err := lite.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("m"), Body: strings.NewReader("x"),
		Metadata: map[string]string{"Mixed-Case": "v1", "lower": "v2"},
	}); err != nil {
		t.Fatalf("lite PutObject() error = %v", err)
	}
	want, _ := sdkGet(t, sdk, bucket, "m")
	got, _ := liteGet(t, lite, bucket, "m")
	if !maps.Equal(got.Metadata, want.Metadata) {
		t.Errorf("lite Metadata = %v, SDK's = %v", got.Metadata, want.Metadata)
	}
}
