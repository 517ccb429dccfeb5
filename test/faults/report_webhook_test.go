package faults_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

type reportEnv struct {
	h      *reportwebhook.Handler
	proxy  *faultproxy.Proxy
	check  *linkstore.DynamoStore // bypasses the proxy
	s3     *s3.Client             // bypasses the proxy
	bucket string
}

func newReportEnv(t *testing.T) *reportEnv {
	t.Helper()
	p, cfg := awsProxy(t)
	table, check := newTable(t)
	err := check.CreateLink(t.Context(), linkstore.Link{
		LinkID: fixtureLink, TaxIDType: linkstore.TaxIDPersonal, TaxID: fixtureCPF, Origin: linkstore.OriginAPI,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(30 * time.Minute),
	})
	if err != nil {
		t.Fatalf("create link: %v", err)
	}
	direct := s3.NewFromConfig(awstest.Config(t))
	bucket := awstest.Name(t, "reports")
	if _, err := direct.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	objects := reportstore.New(s3.NewFromConfig(cfg), bucket, reportstore.Options{ConflictRetryDelay: time.Millisecond})
	links := linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), table, linkstore.WithClock(clock))
	h := reportwebhook.New(staticKey(webhookSecret), objects, links, reportwebhook.Config{
		Verifier: webhooksig.Verifier{Now: clock},
		Now:      clock,
	})
	return &reportEnv{h: h, proxy: p, check: check, s3: direct, bucket: bucket}
}

// checkStored fails unless the bucket holds exactly wantObjects objects,
// the report body byte for byte when there is one, and the link lists
// wantRecords reports.
func (e *reportEnv) checkStored(t *testing.T, body []byte, wantObjects, wantRecords int) {
	t.Helper()
	list, err := e.s3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket)})
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	if len(list.Contents) != wantObjects {
		t.Errorf("objects = %d, want %d", len(list.Contents), wantObjects)
	}
	for _, o := range list.Contents {
		out, err := e.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: o.Key})
		if err != nil {
			t.Fatalf("get object: %v", err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatalf("read object: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("object %s differs from the delivery (%d vs %d bytes)", aws.ToString(o.Key), len(got), len(body))
		}
	}
	l, err := e.check.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Reports) != wantRecords {
		t.Errorf("recorded reports = %d, want %d", len(l.Reports), wantRecords)
	}
	if wantRecords == 1 && l.Reports[0].Bytes != int64(len(body)) {
		t.Errorf("recorded bytes = %d, want %d", l.Reports[0].Bytes, len(body))
	}
}

func stored(a answer) (stored, duplicate bool) {
	stored, _ = a.body["stored"].(bool)
	duplicate, _ = a.body["duplicate"].(bool)
	return stored, duplicate
}

// TestReportWebhookFaults: for each failure, the first delivery's answer
// and what it left, then Klavi's redelivery (when the first was not 2xx),
// which must end with one object and one record.
func TestReportWebhookFaults(t *testing.T) {
	putObject := faultproxy.S3Put()
	tests := []struct {
		name  string
		rule  faultproxy.Rule
		first int
		// What the first delivery leaves behind.
		objects, records int
		// Requests the rule's operation made reach the emulator.
		forwarded int
		// The answer that ends it (the first one, or the redelivery's).
		duplicate bool
	}{
		{
			// S3 refuses every attempt: nothing stored, Klavi retries.
			name:  "S3 SlowDown beyond retries",
			rule:  faultproxy.Rule{Match: putObject, Times: sdkAttempts, Fault: faultproxy.Throttle()},
			first: http.StatusServiceUnavailable, objects: 0, records: 0, forwarded: 0,
			duplicate: false,
		},
		{
			// S3 stores the object but the answer is lost; the SDK's
			// retry of the conditional PUT gets 412, which the store reads
			// as "already stored", so the report is recorded and Klavi
			// gets 200 at once.
			name:  "S3 answer lost after PutObject",
			rule:  faultproxy.Rule{Match: putObject, Times: 1, Fault: faultproxy.ResetAfterForward()},
			first: http.StatusOK, objects: 1, records: 1, forwarded: 2,
			duplicate: true,
		},
		{
			// The object is stored, then every attempt to record it is
			// throttled: 503 with the object in S3 and no record. The
			// redelivery finds the object (412) and records it.
			name:  "DynamoDB throttled after the object is stored",
			rule:  faultproxy.Rule{Match: transactWrite, Times: sdkAttempts, Fault: faultproxy.Throttle()},
			first: http.StatusServiceUnavailable, objects: 1, records: 0, forwarded: 0,
			duplicate: true,
		},
		{
			// The record commits but its answer is lost; the SDK's retry
			// finds the report item there (its condition fails), which the
			// store reads as a duplicate: 200.
			name:  "DynamoDB answer lost after the record",
			rule:  faultproxy.Rule{Match: transactWrite, Times: 1, Fault: faultproxy.ResetAfterForward()},
			first: http.StatusOK, objects: 1, records: 1, forwarded: 2,
			duplicate: true,
		},
		{
			// Every answer of the record is lost: 503 although the record
			// is durable, complete, not partial. The redelivery is a
			// duplicate of both the object and the record.
			name:  "DynamoDB answers all lost",
			rule:  faultproxy.Rule{Match: transactWrite, Times: sdkAttempts, Fault: faultproxy.ResetAfterForward()},
			first: http.StatusServiceUnavailable, objects: 1, records: 1, forwarded: sdkAttempts,
			duplicate: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newReportEnv(t)
			req := signedEvent(t, "report-webhook-report.json")
			body := []byte(req.Body)
			e.proxy.Inject(tc.rule)

			a := call(t.Context(), t, e.h, req)

			if a.status != tc.first {
				t.Fatalf("first delivery = %d %s, want %d", a.status, a, tc.first)
			}
			if a.status != http.StatusOK && a.code() != "storage_unavailable" {
				t.Errorf("error code = %q, want storage_unavailable", a.code())
			}
			checkNoLeak(t, a)
			if n := e.proxy.Armed(); n != 0 {
				t.Errorf("fault applications left = %d, want 0", n)
			}
			if got := e.proxy.Forwarded(tc.rule.Match); got != tc.forwarded {
				t.Errorf("forwarded calls of the faulted operation = %d, want %d", got, tc.forwarded)
			}
			e.checkStored(t, body, tc.objects, tc.records)

			if a.status != http.StatusOK {
				a = call(t.Context(), t, e.h, req)
				if a.status != http.StatusOK {
					t.Fatalf("redelivery = %d %s, want 200", a.status, a)
				}
			}
			if s, dup := stored(a); !s || dup != tc.duplicate {
				t.Errorf("final answer %s: stored %v duplicate %v, want stored, duplicate %v", a, s, dup, tc.duplicate)
			}
			e.checkStored(t, body, 1, 1)
		})
	}
}

// TestReportDeliveryCalls pins the warm-path cost of one report: S3 1 and
// DynamoDB 2 (check the link, record the report), the design's bar.
func TestReportDeliveryCalls(t *testing.T) {
	e := newReportEnv(t)
	a := call(t.Context(), t, e.h, signedEvent(t, "report-webhook-report.json"))
	if a.status != http.StatusOK {
		t.Fatalf("delivery = %d %s, want 200", a.status, a)
	}
	s3Calls := e.proxy.Count(faultproxy.S3Put())
	dynamoCalls := e.proxy.Count(faultproxy.DynamoDBOp("Query")) + e.proxy.Count(transactWrite)
	if all := e.proxy.Count(faultproxy.Any()); s3Calls != 1 || dynamoCalls != 2 || all != 3 {
		t.Errorf("calls: S3 PutObject %d, DynamoDB %d, all %d; want 1, 2, 3", s3Calls, dynamoCalls, all)
	}
}
