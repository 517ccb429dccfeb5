package reportstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// newBucket creates an empty bucket in the emulator and returns a client
// for it and its name.
func newBucket(t *testing.T) (*s3.Client, string) {
	t.Helper()
	client := s3.NewFromConfig(awstest.Config(t))
	bucket := awstest.Name(t, "reports")
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return client, bucket
}

func reportObject(key string, body []byte) reportstore.Object {
	return reportstore.Object{
		Key: key, Body: body, RequestID: "req-1", ProductName: "pf_categorized_checking_l3",
		ProductReportID: "rep-1", Code: "200",
	}
}

func readAll(t *testing.T, s *reportstore.Store, key string) []byte {
	t.Helper()
	rc, n, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q) error = %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if int64(len(got)) != n {
		t.Errorf("Open(%q) length = %d, read %d bytes", key, n, len(got))
	}
	return got
}

func TestPutStoresBytesAsReceived(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	body := klavireporttest.Synthetic(5<<20, 1, "pf_categorized_checking_l3")
	key := reportstore.ReportKey("link-1", "pf_categorized_checking_l3", "rep-1")

	res, err := s.Put(t.Context(), reportObject(key, body))
	if err != nil {
		t.Fatalf("Put() error = %v", err)
	}
	sum := sha256.Sum256(body)
	want := reportstore.PutResult{Key: key, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(body))}
	if res != want {
		t.Errorf("Put() = %+v, want %+v", res, want)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("stored report differs from the body put (%d bytes read, %d put)", len(got), len(body))
	}

	head, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatalf("HeadObject() error = %v", err)
	}
	if got := aws.ToString(head.ContentType); got != "application/json" {
		t.Errorf("ContentType = %q, want application/json", got)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
		t.Errorf("ServerSideEncryption = %q, want %q", head.ServerSideEncryption, types.ServerSideEncryptionAes256)
	}
	if got, want := aws.ToString(head.ChecksumSHA256), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("ChecksumSHA256 = %q, want %q", got, want)
	}
	wantMeta := map[string]string{
		"request-id": "req-1", "product": "pf_categorized_checking_l3", "product-report-id": "rep-1",
		"code": "200", "sha256": want.SHA256,
	}
	if !maps.Equal(head.Metadata, wantMeta) {
		t.Errorf("Metadata = %v, want %v", head.Metadata, wantMeta)
	}
}

func TestPutKMS(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	const keyID = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	s := reportstore.New(client, bucket, reportstore.Options{KMSKeyID: keyID})
	key := reportstore.UnmatchedKey("link-1", "pf_credit_card", "rep-kms")
	if _, err := s.Put(t.Context(), reportObject(key, []byte(`{"productReportId":"rep-kms"}`))); err != nil {
		t.Fatalf("Put() error = %v", err)
	}
	head, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject() error = %v", err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		t.Errorf("ServerSideEncryption = %q, want %q", head.ServerSideEncryption, types.ServerSideEncryptionAwsKms)
	}
	if got := aws.ToString(head.SSEKMSKeyId); got != keyID {
		t.Errorf("SSEKMSKeyId = %q, want %q", got, keyID)
	}
}

func TestPutDuplicateChangesNothing(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	key := reportstore.ReportKey("link-1", "pf_checking_account", "rep-1")
	first := klavireporttest.Synthetic(64<<10, 1, "pf_checking_account")
	second := klavireporttest.Synthetic(64<<10, 2, "pf_checking_account")
	if _, err := s.Put(t.Context(), reportObject(key, first)); err != nil {
		t.Fatalf("first Put() error = %v", err)
	}
	dup := reportObject(key, second)
	dup.RequestID = "req-2"
	if _, err := s.Put(t.Context(), dup); !errors.Is(err, reportstore.ErrExists) {
		t.Fatalf("duplicate Put() error = %v, want %v", err, reportstore.ErrExists)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, first) {
		t.Errorf("after a duplicate Put the stored report is not the first body")
	}
	head, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("HeadObject() error = %v", err)
	}
	if got := head.Metadata["request-id"]; got != "req-1" {
		t.Errorf("metadata request-id = %q after a duplicate, want the first delivery's req-1", got)
	}
}

// TestPutConcurrentDuplicates replays one delivery ten times at once after
// it was stored: every replay must be refused and none may rewrite it.
func TestPutConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	key := reportstore.ReportKey("link-1", "pf_checking_account", "rep-1")
	body := klavireporttest.Synthetic(256<<10, 1, "")
	if _, err := s.Put(t.Context(), reportObject(key, body)); err != nil {
		t.Fatalf("first Put() error = %v", err)
	}
	other := klavireporttest.Synthetic(256<<10, 2, "")
	errs := putConcurrently(t.Context(), s, reportObject(key, other), 10)
	for i, err := range errs {
		if !errors.Is(err, reportstore.ErrExists) {
			t.Errorf("concurrent duplicate %d: Put() error = %v, want %v", i, err, reportstore.ErrExists)
		}
	}
	if got := readAll(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("after concurrent duplicates the stored report is not the first body")
	}
}

// TestPutConcurrentFirstWrites races ten deliveries of one report against
// an empty key: S3 makes If-None-Match atomic, so exactly one Put stores the
// report and the others get ErrExists. moto alone checks for the key before
// it writes without a lock; the awstest harness serves moto one request at a
// time, which gives the emulator S3's atomicity.
func TestPutConcurrentFirstWrites(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	key := reportstore.ReportKey("link-1", "pf_checking_account", "rep-1")
	body := klavireporttest.Synthetic(256<<10, 1, "")
	errs := putConcurrently(t.Context(), s, reportObject(key, body), 10)
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, reportstore.ErrExists):
		default:
			t.Errorf("concurrent Put %d error = %v, want nil or %v", i, err, reportstore.ErrExists)
		}
	}
	if stored != 1 {
		t.Errorf("%d of 10 concurrent Puts stored the report, want exactly 1", stored)
	}
	if got := readAll(t, s, key); !bytes.Equal(got, body) {
		t.Errorf("stored report is not the body put")
	}
}

func putConcurrently(ctx context.Context, s *reportstore.Store, o reportstore.Object, n int) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Put(ctx, o)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestDeletePrefixPurgesOneLink(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	// A page size of 2 makes the purge of five objects take three pages.
	s := reportstore.New(client, bucket, reportstore.Options{ListPageSize: 2})
	purged := []string{
		reportstore.ReportKey("L1", "pf_checking_account", "r1"),
		reportstore.ReportKey("L1", "pf_checking_account", "r2"),
		reportstore.ReportKey("L1", "pf_credit_card", "r3"),
		reportstore.ReportKey("L1", "pf_loans", "r4"),
		reportstore.ReportKey("L1", "pf_loans", "r5"),
	}
	kept := []string{
		reportstore.ReportKey("L10", "pf_checking_account", "r6"),
		reportstore.ReportKey("L2", "pf_checking_account", "r7"),
		reportstore.ReportKey("l1", "pf_checking_account", "r8"),
		reportstore.UnmatchedKey("link-9", "pf_checking_account", "r9"),
	}
	for _, key := range slices.Concat(purged, kept) {
		if _, err := s.Put(t.Context(), reportObject(key, []byte(`{}`))); err != nil {
			t.Fatalf("Put(%q) error = %v", key, err)
		}
	}

	n, err := s.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1"))
	if err != nil {
		t.Fatalf("DeletePrefix() error = %v", err)
	}
	if n != len(purged) {
		t.Errorf("DeletePrefix() = %d, want %d", n, len(purged))
	}
	if got := listKeys(t, client, bucket); !slices.Equal(got, sorted(kept)) {
		t.Errorf("keys after purge = %q, want %q", got, sorted(kept))
	}

	n, err = s.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1"))
	if err != nil || n != 0 {
		t.Errorf("second DeletePrefix() = %d, %v, want 0, nil", n, err)
	}
}

func TestDeletePrefixRefusesBroadPrefixes(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	keys := []string{
		reportstore.ReportKey("L1", "pf_checking_account", "r1"),
		reportstore.ReportKey("L10", "pf_checking_account", "r2"),
		reportstore.UnmatchedKey("link-3", "pf_checking_account", "r3"),
	}
	for _, key := range keys {
		if _, err := s.Put(t.Context(), reportObject(key, []byte(`{}`))); err != nil {
			t.Fatalf("Put(%q) error = %v", key, err)
		}
	}
	for _, prefix := range []string{"", "/", "reports", "reports/", "unmatched/", "reports//", "reports/L1", "other/L1/", "reports/../", "reports/L1/../"} {
		n, err := s.DeletePrefix(t.Context(), prefix)
		if !errors.Is(err, reportstore.ErrInvalidKey) || n != 0 {
			t.Errorf("DeletePrefix(%q) = %d, %v, want 0, %v", prefix, n, err, reportstore.ErrInvalidKey)
		}
	}
	if got := listKeys(t, client, bucket); !slices.Equal(got, sorted(keys)) {
		t.Errorf("keys after refused purges = %q, want %q", got, sorted(keys))
	}
}

// TestKeysKeepAwkwardIDsInTheirPrefix stores reports under ids that try to
// leave their prefix and checks each lands where its key says, reads back
// and is purged only with its own link.
func TestKeysKeepAwkwardIDsInTheirPrefix(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	links := []string{"../x", "a/b", "..", ".", "a b%2F", "ação", "L1/../L2", "%2E%2E"}
	var keys []string
	for i, link := range links {
		key := reportstore.ReportKey(link, "../../etc", "../passwd")
		keys = append(keys, key)
		body := []byte(`{"n":` + string(rune('0'+i)) + `}`)
		if _, err := s.Put(t.Context(), reportObject(key, body)); err != nil {
			t.Fatalf("Put(link %q) error = %v", link, err)
		}
		if got := readAll(t, s, key); !bytes.Equal(got, body) {
			t.Errorf("Open(link %q) = %q, want %q", link, got, body)
		}
	}
	if got := listKeys(t, client, bucket); !slices.Equal(got, sorted(keys)) {
		t.Errorf("stored keys = %q, want %q", got, sorted(keys))
	}
	n, err := s.DeletePrefix(t.Context(), reportstore.LinkPrefix("a/b"))
	if err != nil || n != 1 {
		t.Errorf("DeletePrefix(link a/b) = %d, %v, want 1, nil", n, err)
	}
}

func TestOpenNotFound(t *testing.T) {
	t.Parallel()
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	_, _, err := s.Open(t.Context(), reportstore.ReportKey("L1", "pf_loans", "missing"))
	if !errors.Is(err, reportstore.ErrNotFound) {
		t.Errorf("Open(missing) error = %v, want %v", err, reportstore.ErrNotFound)
	}
}

func listKeys(t *testing.T, client *s3.Client, bucket string) []string {
	t.Helper()
	out, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListObjectsV2() error = %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func sorted(keys []string) []string {
	return slices.Sorted(slices.Values(keys))
}

func TestDeleteOneAndUnmatchedPrefix(t *testing.T) {
	client, bucket := newBucket(t)
	s := reportstore.New(client, bucket, reportstore.Options{})
	ctx := t.Context()
	keep := reportstore.UnmatchedKey("L2", "pf_credit_card", "r2")
	for _, key := range []string{
		reportstore.ReportKey("L1", "pf_credit_card", "r1"),
		reportstore.UnmatchedKey("L1", "pf_credit_card", "r0"),
		keep,
	} {
		if _, err := s.Put(ctx, reportObject(key, []byte(`{"productReportId":"x"}`))); err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
	}
	if err := s.Delete(ctx, reportstore.ReportKey("L1", "pf_credit_card", "r1")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, reportstore.ReportKey("L1", "pf_credit_card", "r1")); err != nil {
		t.Errorf("second Delete: %v, want nil (idempotent)", err)
	}
	if n, err := s.DeletePrefix(ctx, reportstore.UnmatchedPrefix("L1")); err != nil || n != 1 {
		t.Errorf("DeletePrefix(unmatched L1) = %d, %v; want 1, nil", n, err)
	}
	if got := readAll(t, s, keep); len(got) == 0 {
		t.Errorf("another link's unmatched report was deleted")
	}
	if err := s.Delete(ctx, "reports/../x.json"); !errors.Is(err, reportstore.ErrInvalidKey) {
		t.Errorf("Delete(bad key) = %v, want ErrInvalidKey", err)
	}
}
