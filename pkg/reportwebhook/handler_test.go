package reportwebhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

const (
	testSecret  = "sandbox-secret-key-for-tests"
	fixtureLink = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureCPF  = "52998224725"
	fixtureRep  = "4b2c1648-231f-11eb-97c4-f45c899f4587"
)

var now = time.Date(2026, 11, 24, 12, 1, 30, 0, time.UTC)

type staticKey []byte

func (k staticKey) SecretKey(context.Context) ([]byte, error) { return k, nil }

// memObjects is an in-memory object store with S3's If-None-Match rule.
type memObjects struct {
	mu         sync.Mutex
	objects    map[string][]byte
	fail       int // fail this many Puts first
	failDelete bool
	puts       int
}

func (m *memObjects) Put(_ context.Context, o reportstore.Object) (reportstore.PutResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	res := reportstore.PutResult{Key: o.Key, Bytes: int64(len(o.Body))}
	if m.fail > 0 {
		m.fail--
		return reportstore.PutResult{}, errors.New("s3: SlowDown")
	}
	if _, ok := m.objects[o.Key]; ok {
		return res, reportstore.ErrExists
	}
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[o.Key] = bytes.Clone(o.Body)
	return res, nil
}

func (m *memObjects) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failDelete {
		return errors.New("s3: InternalError")
	}
	delete(m.objects, key)
	return nil
}

type env struct {
	h       *Handler
	objects *memObjects
	links   *linkstoretest.MemoryStore
	logs    *bytes.Buffer
	rec     *metricstest.Capture
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{objects: &memObjects{}, links: linkstoretest.NewMemory(), logs: &bytes.Buffer{}, rec: metricstest.NewCapture("report-webhook")}
	e.h = New(staticKey(testSecret), e.objects, e.links, Config{
		Verifier: webhooksig.Verifier{Now: func() time.Time { return now }},
		Logger:   slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics:  e.rec.Recorder,
		Now:      func() time.Time { return now },
	})
	return e
}

func createLink(t *testing.T, s interface {
	CreateLink(context.Context, linkstore.Link) error
}) {
	t.Helper()
	err := s.CreateLink(t.Context(), linkstore.Link{LinkID: fixtureLink, TaxIDType: "personal", TaxID: fixtureCPF, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(30 * time.Minute)})
	if err != nil {
		t.Fatalf("create link: %v", err)
	}
}

func fixture(t testing.TB) httpapi.Request {
	t.Helper()
	raw, err := os.ReadFile("../../events/report-webhook-report.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var req httpapi.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return req
}

func signed(req httpapi.Request, body []byte, secret string) httpapi.Request {
	sig, ts := webhooksig.Sign([]byte(secret), body, now)
	headers := make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		headers[k] = v
	}
	headers["x-klavi-signature"], headers["x-klavi-timestamp"] = sig, ts
	req.Headers, req.Body = headers, string(body)
	return req
}

// call delivers req the way Lambda does in production: as the event's
// payload bytes, through Invoke.
func (e *env) call(t *testing.T, req httpapi.Request) (httpapi.Response, map[string]any) {
	t.Helper()
	payload, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	out, err := e.h.Invoke(t.Context(), payload)
	if err != nil {
		t.Fatalf("Invoke returned error %v; handlers answer with a status", err)
	}
	var resp httpapi.Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("Invoke answered %q, not an HTTP API response: %v", out, err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("response %q is not JSON: %v", resp.Body, err)
	}
	return resp, body
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestFixtureStoredAndRecorded(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusOK || body["stored"] != true || body["matched"] != true {
		t.Fatalf("answer = %d %s, want 200 stored and matched", resp.StatusCode, resp.Body)
	}
	key := reportstore.ReportKey(fixtureLink, "pf_checking_account", fixtureRep)
	if got := e.objects.objects[key]; !bytes.Equal(got, []byte(req.Body)) {
		t.Errorf("object %s is not the body byte for byte (%d vs %d bytes)", key, len(got), len(req.Body))
	}
	l, err := e.links.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Reports) != 1 || l.Reports[0].ProductReportID != fixtureRep || l.Reports[0].Bytes != int64(len(req.Body)) || l.Reports[0].ObjectKey != key {
		t.Errorf("recorded reports = %+v", l.Reports)
	}
	if got := l.Status(now); got != "REPORTS_RECEIVED" {
		t.Errorf("link status = %q, want REPORTS_RECEIVED", got)
	}
}

func TestDuplicateDeliveryStoresOnce(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	e.call(t, req)
	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusOK || body["duplicate"] != true {
		t.Errorf("redelivery = %d %s, want 200 duplicate", resp.StatusCode, resp.Body)
	}
	l, _ := e.links.GetLink(t.Context(), fixtureLink)
	if len(l.Reports) != 1 || len(e.objects.objects) != 1 {
		t.Errorf("after redelivery: %d reports recorded, %d objects; want 1 and 1", len(l.Reports), len(e.objects.objects))
	}
}

func TestUnknownLinkStoredUnmatched(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusOK || body["matched"] != false || body["stored"] != true {
		t.Fatalf("answer = %d %s, want 200 stored unmatched", resp.StatusCode, resp.Body)
	}
	if _, ok := e.objects.objects[reportstore.UnmatchedKey(fixtureLink, "pf_checking_account", fixtureRep)]; !ok {
		t.Errorf("no object under the unmatched prefix; have %v", keys(e.objects.objects))
	}
}

func TestPurgedLinkReportNotKept(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	if _, err := e.links.Purge(t.Context(), fixtureLink, now); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	req := fixture(t)
	resp, _ := e.call(t, signed(req, []byte(req.Body), testSecret))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200 (acknowledged)", resp.StatusCode)
	}
	if len(e.objects.objects) != 0 {
		t.Errorf("report for a purged link was stored: %v", keys(e.objects.objects))
	}
}

func TestS3FailureIsRetryableAndRetrySucceeds(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	e.objects.fail = 1
	req := fixture(t)
	req = signed(req, []byte(req.Body), testSecret)
	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusServiceUnavailable || errorCode(body) != "storage_unavailable" {
		t.Fatalf("S3 down = %d %s, want 503 storage_unavailable", resp.StatusCode, resp.Body)
	}
	if l, _ := e.links.GetLink(t.Context(), fixtureLink); len(l.Reports) != 0 {
		t.Errorf("report recorded although S3 failed")
	}
	resp, body = e.call(t, req)
	if resp.StatusCode != http.StatusOK || body["duplicate"] != false {
		t.Fatalf("retry = %d %s, want 200 first store", resp.StatusCode, resp.Body)
	}
	if l, _ := e.links.GetLink(t.Context(), fixtureLink); len(l.Reports) != 1 {
		t.Errorf("after retry reports = %d, want 1", len(l.Reports))
	}
}

func TestNonOKReportStoredAndMarked(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	body := klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{Size: 4 << 10, Seed: 3, ProductName: "pf_credit_card", ProductReportID: "rep-204", LinkID: fixtureLink, Code: 204})
	resp, _ := e.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	l, _ := e.links.GetLink(t.Context(), fixtureLink)
	if len(l.Reports) != 1 || l.Reports[0].Code != 204 {
		t.Errorf("recorded = %+v, want one report with code 204", l.Reports)
	}
	if got := e.rec.Sum("ReportsNotOK", map[string]string{"Code": "204"}); got != 1 {
		t.Errorf("ReportsNotOK(204) = %v, want 1", got)
	}
}

func TestRejects(t *testing.T) {
	good := fixture(t)
	tests := []struct {
		name   string
		req    func() httpapi.Request
		status int
		code   string
	}{
		{"tampered", func() httpapi.Request {
			r := signed(good, []byte(good.Body), testSecret)
			r.Body = strings.Replace(r.Body, "52.9000", "99.9000", 1)
			return r
		}, http.StatusUnauthorized, "invalid_signature"},
		{"wrong key", func() httpapi.Request { return signed(good, []byte(good.Body), "other") }, http.StatusUnauthorized, "invalid_signature"},
		{"missing signature", func() httpapi.Request {
			r := signed(good, []byte(good.Body), testSecret)
			delete(r.Headers, "x-klavi-signature")
			return r
		}, http.StatusUnauthorized, "missing_signature"},
		{"truncated", func() httpapi.Request { return signed(good, []byte(good.Body[:len(good.Body)/2]), testSecret) }, http.StatusBadRequest, "invalid_report"},
		{"too large", func() httpapi.Request {
			return signed(good, klavireporttest.Synthetic(MaxBodyBytes+1024, 1, "pf_checking_account"), testSecret)
		}, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			createLink(t, e.links)
			resp, body := e.call(t, tc.req())
			if resp.StatusCode != tc.status || errorCode(body) != tc.code {
				t.Errorf("answer = %d %s, want %d %s", resp.StatusCode, resp.Body, tc.status, tc.code)
			}
			if e.objects.puts != 0 {
				t.Errorf("rejected delivery reached S3")
			}
		})
	}
}

func TestEmptyPingAcknowledged(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req.Body = ""
	delete(req.Headers, "x-klavi-signature")
	resp, _ := e.call(t, req)
	if resp.StatusCode != http.StatusOK || e.objects.puts != 0 {
		t.Errorf("empty ping = %d, puts %d; want 200 and nothing stored", resp.StatusCode, e.objects.puts)
	}
}

func TestLogsCarryNoReportContentOrCPF(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	req := fixture(t)
	e.call(t, signed(req, []byte(req.Body), testSecret))
	e.call(t, signed(req, []byte(req.Body[:100]), testSecret))
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, s := range []string{fixtureCPF, "PIX MERCADO", "94088392", "1000.0400", testSecret} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q", s)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// purgeOnCheck is a link store whose link is active at CheckLink and purged
// by the time the report is recorded: the purge ran while S3 stored it.
type purgeOnCheck struct{ *linkstoretest.MemoryStore }

func (p purgeOnCheck) CheckLink(ctx context.Context, id string) error {
	if err := p.MemoryStore.CheckLink(ctx, id); err != nil {
		return err
	}
	_, err := p.MemoryStore.Purge(ctx, id, now)
	return err
}

func TestReportLandingDuringPurgeIsDeleted(t *testing.T) {
	for _, failDelete := range []bool{false, true} {
		e := newEnv(t)
		createLink(t, e.links)
		e.objects.failDelete = failDelete
		e.h.links = purgeOnCheck{e.links}
		req := fixture(t)
		resp, _ := e.call(t, signed(req, []byte(req.Body), testSecret))
		if failDelete {
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("delete failed: status = %d, want 503 so Klavi retries", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
		}
		if len(e.objects.objects) != 0 {
			t.Errorf("report of a link purged while storing was kept: %v", keys(e.objects.objects))
		}
	}
}

func TestMissingProductNameStillStored(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	body := []byte(`{"code":200,"productReportId":"rep-x","links":[{"linkId":"` + fixtureLink + `"}]}`)
	resp, _ := e.call(t, signed(fixture(t), body, testSecret))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	if _, ok := e.objects.objects[reportstore.ReportKey(fixtureLink, unknownProduct, "rep-x")]; !ok {
		t.Errorf("report without productName not stored under %q: %v", unknownProduct, keys(e.objects.objects))
	}
}

// Invoke unquotes each body into the buffer of the invocation before it:
// reports delivered one after another, longest first, are each stored as
// they were sent, and none is overwritten by the next.
func TestSuccessiveDeliveriesEachStoredByteForByte(t *testing.T) {
	e := newEnv(t)
	createLink(t, e.links)
	base := fixture(t)
	want := map[string][]byte{}
	for i, pad := range []int{200_000, 20_000, 0} {
		id := fmt.Sprintf("rep-successive-%d", i)
		body := strings.Replace(base.Body, fixtureRep, id, 1)
		// Padding in the report's own whitespace keeps it valid JSON.
		body = strings.Replace(body, "{", "{"+strings.Repeat(" \n", pad/2), 1)
		req := signed(base, []byte(body), testSecret)
		if resp, got := e.call(t, req); resp.StatusCode != http.StatusOK || got["stored"] != true {
			t.Fatalf("delivery %d = %d %s, want 200 stored", i, resp.StatusCode, resp.Body)
		}
		want[reportstore.ReportKey(fixtureLink, "pf_checking_account", id)] = []byte(body)
	}
	for key, body := range want {
		if got := e.objects.objects[key]; !bytes.Equal(got, body) {
			t.Errorf("object %s differs from its delivery (%d vs %d bytes)", key, len(got), len(body))
		}
	}
}
