package reportwebhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// flakyS3 fails the first failPuts PutObject calls with a throttling error,
// then passes everything to the emulator.
type flakyS3 struct {
	*s3.Client
	failPuts atomic.Int32
}

func (f *flakyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failPuts.Add(-1) >= 0 {
		return nil, errors.New("SlowDown: Please reduce your request rate")
	}
	return f.Client.PutObject(ctx, in, opts...)
}

type awsEnv struct {
	*env
	s3     *s3.Client
	bucket string
	flaky  *flakyS3
	store  *linkstore.DynamoStore
}

func newAWSEnv(t *testing.T) *awsEnv {
	t.Helper()
	cfg := awstest.Config(t)
	s3c := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "reports")
	if _, err := s3c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	store := linkstore.NewDynamo(db, table)
	createLink(t, store)
	flaky := &flakyS3{Client: s3c}
	e := newEnv(t)
	e.h = New(staticKey(testSecret), reportstore.New(flaky, bucket, reportstore.Options{}), store, Config{
		Verifier: webhooksig.Verifier{Now: e.h.now},
		Logger:   e.h.log,
		Metrics:  e.rec.Recorder,
		Now:      e.h.now,
	})
	return &awsEnv{env: e, s3: s3c, bucket: bucket, flaky: flaky, store: store}
}

func (a *awsEnv) object(t *testing.T, key string) []byte {
	t.Helper()
	out, err := a.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get object %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read object: %v", err)
	}
	return b
}

func (a *awsEnv) count(t *testing.T) int {
	t.Helper()
	out, err := a.s3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	return len(out.Contents)
}

func bigReport() []byte {
	return klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size: 5 << 20, Seed: 42, ProductName: "pf_categorized_checking_l3", ProductReportID: "rep-5mb",
		RequestID: "req-1", LinkID: fixtureLink, EnquiryCPF: fixtureCPF,
	})
}

func TestFiveMBReportLandsByteIdentical(t *testing.T) {
	a := newAWSEnv(t)
	body := bigReport()
	if !bytes.Contains(body[:200], []byte("\n  ")) {
		t.Fatalf("synthetic report is not pretty-printed; the test needs whitespace the signature must cover")
	}
	resp, out := a.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK || out["stored"] != true {
		t.Fatalf("answer = %d %s, want 200 stored", resp.StatusCode, resp.Body)
	}
	key := reportstore.ReportKey(fixtureLink, "pf_categorized_checking_l3", "rep-5mb")
	if got := a.object(t, key); !bytes.Equal(got, body) {
		t.Errorf("stored object differs from the delivery (%d vs %d bytes)", len(got), len(body))
	}
	head, err := a.s3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head object: %v", err)
	}
	if head.ServerSideEncryption == "" {
		t.Errorf("object stored without server-side encryption")
	}
	if head.Metadata[reportstore.MetaRequestID] != "req-1" || head.Metadata[reportstore.MetaSHA256] == "" {
		t.Errorf("metadata = %v, want request id and sha256", head.Metadata)
	}
	l, err := a.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Reports) != 1 || l.Reports[0].Bytes != int64(len(body)) {
		t.Errorf("recorded = %+v, want one report of %d bytes", l.Reports, len(body))
	}
}

func TestTenConcurrentDuplicatesOneObjectOneRecord(t *testing.T) {
	a := newAWSEnv(t)
	req := signed(fixture(t), klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{Size: 256 << 10, Seed: 7, ProductName: "pf_credit_card", ProductReportID: "rep-dup", LinkID: fixtureLink}), testSecret)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			resp, err := a.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("delivery = %d %v %s, want 200", resp.StatusCode, err, resp.Body)
			}
		})
	}
	wg.Wait()
	if n := a.count(t); n != 1 {
		t.Errorf("objects = %d, want 1", n)
	}
	l, err := a.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Reports) != 1 {
		t.Errorf("recorded reports = %d, want 1", len(l.Reports))
	}
}

func TestS3ThrottledThenRetrySucceeds(t *testing.T) {
	a := newAWSEnv(t)
	a.flaky.failPuts.Store(1)
	req := signed(fixture(t), []byte(fixture(t).Body), testSecret)
	resp, _ := a.call(t, req)
	if resp.StatusCode < 500 {
		t.Fatalf("S3 throttled = %d %s, want 5xx so Klavi retries", resp.StatusCode, resp.Body)
	}
	if strings.Contains(resp.Body, "SlowDown") {
		t.Errorf("response leaks the S3 error: %s", resp.Body)
	}
	if n := a.count(t); n != 0 {
		t.Errorf("objects after failure = %d, want 0", n)
	}
	resp, _ = a.call(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	if n := a.count(t); n != 1 {
		t.Errorf("objects after retry = %d, want 1", n)
	}
}

// TestStoredReportHashIsTheStoredBytesAndTamperingIsRefused holds the one
// SHA-256 the store computes to the bytes S3 keeps: the record and the
// object's metadata carry the hex SHA-256 of the stored object. A body
// changed after signing is refused before anything is stored.
func TestStoredReportHashIsTheStoredBytesAndTamperingIsRefused(t *testing.T) {
	a := newAWSEnv(t)
	body := escapedReport()
	resp, out := a.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK || out["stored"] != true {
		t.Fatalf("answer = %d %s, want 200 stored", resp.StatusCode, resp.Body)
	}
	key := reportstore.ReportKey(fixtureLink, "pf_categorized_checking_l3", "rep-5mb")
	stored := a.object(t, key)
	if !bytes.Equal(stored, body) {
		t.Fatalf("stored object differs from the delivery (%d vs %d bytes)", len(stored), len(body))
	}
	sum := sha256.Sum256(stored)
	want := hex.EncodeToString(sum[:])
	l, err := a.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Reports) != 1 || l.Reports[0].SHA256 != want {
		t.Errorf("recorded = %+v, want one report with sha256 %s", l.Reports, want)
	}
	head, err := a.s3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head object: %v", err)
	}
	if got := head.Metadata[reportstore.MetaSHA256]; got != want {
		t.Errorf("sha256 metadata = %s, want %s", got, want)
	}

	tampered := signed(fixture(t), body, testSecret)
	tampered.Body = strings.Replace(tampered.Body, `"rep-5mb"`, `"rep-5mc"`, 1)
	resp, out = a.call(t, tampered)
	if resp.StatusCode != http.StatusUnauthorized || errorCode(out) != "invalid_signature" {
		t.Errorf("tampered answer = %d %s, want 401 invalid_signature", resp.StatusCode, resp.Body)
	}
	if n := a.count(t); n != 1 {
		t.Errorf("%d objects after the tampered delivery, want 1", n)
	}
}
