package reportwebhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// heldObjects is the in-memory S3 stand-in behind objectStore: it keeps the
// bytes it is handed, as they are (the SDK streams them from that slice).
type heldObjects struct{ body []byte }

func (o *heldObjects) Put(_ context.Context, obj reportstore.Object) (reportstore.PutResult, error) {
	o.body = obj.Body
	return reportstore.PutResult{Key: obj.Key, Bytes: int64(len(obj.Body))}, nil
}

func (o *heldObjects) Delete(context.Context, string) error { return nil }

// memS3 stands in for the S3 client under the real report store: it reads
// each uploaded body to the end, as the network would, and keeps what the
// store sent besides the body. With keep set it also keeps a copy of the
// body, outside any timed delivery, to check what would have been stored.
type memS3 struct {
	reportstore.S3API
	keep     bool
	body     []byte
	bytes    int64
	checksum string // ChecksumSHA256, base64
	metaSHA  string // the sha256 metadata, hex
}

func (m *memS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	var err error
	if m.keep {
		m.body, err = io.ReadAll(in.Body)
		m.bytes = int64(len(m.body))
	} else {
		m.bytes, err = io.Copy(io.Discard, in.Body)
	}
	m.checksum = aws.ToString(in.ChecksumSHA256)
	m.metaSHA = in.Metadata[reportstore.MetaSHA256]
	return &s3.PutObjectOutput{}, err
}

// lastRecord is the DynamoDB stand-in: every link is active and the last
// report recorded is kept.
type lastRecord struct{ report linkstore.Report }

func (*lastRecord) CheckLink(context.Context, string) error { return nil }
func (*lastRecord) GetLink(context.Context, string) (*linkstore.Link, error) {
	return nil, linkstore.ErrNotFound // never called: no delivery is a duplicate
}
func (r *lastRecord) RecordReport(_ context.Context, _ string, rep linkstore.Report) error {
	r.report = rep
	return nil
}

// escapedReport is the 5 MB pretty-printed report with the escapes real
// reports carry in their text: quotes, slashes and \u escapes of accented
// letters and of &, which JSON encoders other than Go's write.
func escapedReport() []byte {
	body := bigReport()
	for _, r := range [][2]string{
		{`"NETFLIX.COM"`, `"NETFLIX.COM\/BR \"PREMIUM\""`},
		{`"DROGARIA SÃO PAULO"`, `"DROGARIA S\u00c3O PAULO"`},
		{`"RESTAURANTE SABOR DE MINAS"`, `"RESTAURANTE SABOR DE MINAS \u0026 CIA"`},
	} {
		body = bytes.ReplaceAll(body, []byte(r[0]), []byte(r[1]))
	}
	return body
}

// cpuTime is the process's user and system CPU time: a delivery's cost
// includes the garbage collector's work on other threads.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReportDelivery5MB measures the design's two bars for the report
// webhook on a 5 MB pretty-printed report with escapes, signed as Klavi
// signs (HMAC-SHA256 of the raw body), in one run:
//
//   - "x-hmac": the process CPU time of one delivery, from the Lambda
//     payload bytes (the HTTP API event exactly as the runtime hands it to
//     the function) to the bytes handed to the S3 client and the report
//     recorded, divided by the CPU time of one HMAC-SHA256 pass over the
//     report. The two are timed alternately in the same loop, so load on
//     the machine weighs on both alike. Bar: 5.
//   - "x-report": bytes allocated per delivery over the report's size. Bar: 1.5.
//
// The bars are the sub-benchmark Invoke: the function's entry point with
// the real report store (pkg/reportstore) over an in-memory S3 client that
// reads each body to the end, and DynamoDB as an in-memory stand-in. For
// comparison, ReflectDecode is the same delivery through the runtime's
// reflect decoding of the event (lambda.Start(h.Handle)), and
// InvokeWithoutStore stops at the object-store interface, which leaves out
// the store's own work on the body (its SHA-256).
func BenchmarkReportDelivery5MB(b *testing.B) {
	body := escapedReport()
	req := signed(fixture(b), body, testSecret)
	req.IsBase64Encoded = false
	payload, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	objects := &heldObjects{}
	client := &memS3{}
	store := reportstore.New(client, "bucket", reportstore.Options{})
	reflectDecode := func(h *Handler, ctx context.Context, payload []byte) ([]byte, error) {
		var req httpapi.Request
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, err
		}
		resp, err := h.Handle(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
	for _, bc := range []struct {
		name    string
		objects objectStore
		deliver func(h *Handler, ctx context.Context, payload []byte) ([]byte, error)
	}{
		{"Invoke", store, (*Handler).Invoke},
		{"ReflectDecode", store, reflectDecode},
		{"InvokeWithoutStore", objects, (*Handler).Invoke},
	} {
		b.Run(bc.name, func(b *testing.B) {
			links := &lastRecord{}
			objects.body = nil
			h := New(staticKey(testSecret), bc.objects, links, Config{
				Verifier: webhooksig.Verifier{Now: func() time.Time { return now }},
				Now:      func() time.Time { return now },
			})
			ctx := context.Background()
			mac := hmac.New(sha256.New, []byte(testSecret))
			var sum [sha256.Size]byte
			var deliveryCPU, hmacCPU time.Duration
			var allocated uint64
			var before, after runtime.MemStats
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				t0 := cpuTime(b)
				mac.Reset()
				mac.Write(body)
				mac.Sum(sum[:0])
				t1 := cpuTime(b)
				hmacCPU += t1 - t0

				runtime.ReadMemStats(&before)
				t2 := cpuTime(b)
				out, err := bc.deliver(h, ctx, payload)
				t3 := cpuTime(b)
				runtime.ReadMemStats(&after)
				deliveryCPU += t3 - t2
				allocated += after.TotalAlloc - before.TotalAlloc
				var resp httpapi.Response
				if err != nil || json.Unmarshal(out, &resp) != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("delivery = %s %v", out, err)
				}
			}
			if links.report.Bytes != int64(len(body)) || links.report.ProductReportID != "rep-5mb" {
				b.Fatalf("recorded %+v", links.report)
			}
			checkStored(b, h, payload, body, bc.objects == store, client, objects, links)
			n := float64(b.N)
			b.ReportMetric(float64(deliveryCPU)/float64(hmacCPU), "x-hmac")
			b.ReportMetric(float64(allocated)/n/float64(len(body)), "x-report")
			b.ReportMetric(float64(hmacCPU.Microseconds())/n, "hmac-µs/op")
			b.ReportMetric(float64(deliveryCPU.Microseconds())/n, "delivery-µs/op")
		})
	}
}

// checkStored makes one more delivery, untimed, that keeps what it stores,
// and checks it: the bytes are the report's, and through the report store
// the SHA-256 sent to S3 and the one recorded are the report's.
func checkStored(b *testing.B, h *Handler, payload, body []byte, viaStore bool, client *memS3, objects *heldObjects, links *lastRecord) {
	b.Helper()
	client.keep = true
	defer func() { client.keep = false }()
	if out, err := h.Invoke(context.Background(), payload); err != nil {
		b.Fatalf("delivery = %s %v", out, err)
	}
	stored := objects.body
	if viaStore {
		stored = client.body
		sum := sha256.Sum256(body)
		if client.checksum != base64.StdEncoding.EncodeToString(sum[:]) || client.metaSHA != hex.EncodeToString(sum[:]) {
			b.Fatalf("S3 was sent checksum %s and sha256 %s, not the report's", client.checksum, client.metaSHA)
		}
		if links.report.SHA256 != hex.EncodeToString(sum[:]) {
			b.Fatalf("recorded sha256 %s, not the report's", links.report.SHA256)
		}
	}
	if !bytes.Equal(stored, body) {
		b.Fatalf("%d bytes were stored that differ from the %d-byte report", len(stored), len(body))
	}
}
