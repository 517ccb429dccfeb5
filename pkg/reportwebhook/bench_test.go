package reportwebhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// drainS3 reads each uploaded body to the end, as the network would, and
// keeps nothing.
type drainS3 struct{ reportstore.S3API }

func (drainS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	_, err := io.Copy(io.Discard, in.Body)
	return &s3.PutObjectOutput{}, err
}

// acceptAll is a link store that knows every link and records nothing, so
// the benchmark measures the handler, not a store.
type acceptAll struct{}

func (acceptAll) CheckLink(context.Context, string) error                      { return nil }
func (acceptAll) RecordReport(context.Context, string, linkstore.Report) error { return nil }

// BenchmarkReportDelivery5MB measures what one 5 MB report delivery
// allocates inside the function: decoding the Lambda event as the runtime
// does (the JSON payload into the HTTP API request), verifying the
// signature, reading the envelope, handing the bytes to the S3 client and
// recording the report. The design bar is 3x the report's size; the
// "x-report" metric is allocated bytes divided by the report's bytes.
func BenchmarkReportDelivery5MB(b *testing.B) {
	body := bigReport()
	at := time.Now()
	sig, ts := webhooksig.Sign([]byte(testSecret), body, at)
	payload, err := json.Marshal(httpapi.Request{
		RouteKey: "POST /webhooks/klavi/reports",
		Headers:  map[string]string{"content-type": "application/json", "x-klavi-signature": sig, "x-klavi-timestamp": ts},
		Body:     string(body),
	})
	if err != nil {
		b.Fatal(err)
	}
	h := New(staticKey(testSecret), reportstore.New(drainS3{}, "bucket", reportstore.Options{}), acceptAll{}, Config{
		Verifier: webhooksig.Verifier{Now: func() time.Time { return at }},
	})
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		var req httpapi.Request
		if err := json.Unmarshal(payload, &req); err != nil {
			b.Fatal(err)
		}
		resp, err := h.Handle(ctx, req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("delivery = %d %v %s", resp.StatusCode, err, resp.Body)
		}
	}
	runtime.ReadMemStats(&after)
	perOp := float64(after.TotalAlloc-before.TotalAlloc) / float64(b.N)
	b.ReportMetric(perOp/float64(len(body)), "x-report")
}
