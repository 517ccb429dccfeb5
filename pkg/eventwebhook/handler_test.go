package eventwebhook

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

const (
	testSecret  = "sandbox-secret-key-for-tests"
	fixtureCPF  = "52998224725"
	fixtureLink = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureCons = "f55c899f-11eb-231f-97c4-4b2c16484587"
)

var now = time.Date(2026, 11, 24, 12, 0, 30, 0, time.UTC)

type staticKey struct {
	key []byte
	err error
}

func (s staticKey) SecretKey(context.Context) ([]byte, error) { return s.key, s.err }

// failingStore fails every write, to show a storage outage is retried by
// Klavi rather than acknowledged.
type failingStore struct{}

func (failingStore) ApplyEvent(context.Context, linkstore.EventChange) (linkstore.Outcome, error) {
	return "", errors.New("dynamodb: throttled")
}

// linkReader is what the tests read back from either store.
type linkReader interface {
	eventStore
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
}

type env struct {
	h       *Handler
	store   linkReader
	logs    *bytes.Buffer
	metrics *metricstest.Capture
}

func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, linkstoretest.NewMemory(linkstoretest.WithClock(func() time.Time { return now })), opts...)
}

func newEnvWith(t *testing.T, store linkReader, opts ...func(*Config)) *env {
	t.Helper()
	logs := &bytes.Buffer{}
	rec := metricstest.NewCapture("event-webhook")
	cfg := Config{
		Verifier: webhooksig.Verifier{Now: func() time.Time { return now }},
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Metrics:  rec.Recorder,
		Now:      func() time.Time { return now },
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &env{h: New(staticKey{key: []byte(testSecret)}, store, cfg), store: store, logs: logs, metrics: rec}
}

// fixture loads the recorded API Gateway event for the route.
func fixture(t *testing.T) httpapi.Request {
	t.Helper()
	raw, err := os.ReadFile("../../events/event-webhook-consent-authorised.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var req httpapi.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return req
}

// signed returns req carrying body, signed now with secret.
func signed(req httpapi.Request, body, secret string, at time.Time) httpapi.Request {
	sig, ts := webhooksig.Sign([]byte(secret), []byte(body), at)
	req.Body = body
	req.Headers = cloneHeaders(req.Headers)
	req.Headers["x-klavi-signature"] = sig
	req.Headers["x-klavi-timestamp"] = ts
	return req
}

func cloneHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}

func consentEvent(id, name, at string) string {
	return fmt.Sprintf(`{"partnerAppId":"12345678","eventId":%q,"eventType":"api","eventName":%q,"eventTime":%q,
"payload":{"personalTaxId":%q,"businessTaxId":"","linkId":%q,"consents":{"consentId":%q,"institutionCode":"260"}},
"externalInfo":{"applicationId":"app-42"}}`, id, name, at, fixtureCPF, fixtureLink, fixtureCons)
}

func (e *env) call(t *testing.T, req httpapi.Request) (httpapi.Response, map[string]any) {
	t.Helper()
	resp, err := e.h.Handle(t.Context(), req)
	if err != nil {
		t.Fatalf("Handle returned error %v; handlers answer with a status instead", err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("response body %q is not JSON: %v", resp.Body, err)
	}
	return resp, body
}

func (e *env) status(t *testing.T) string {
	t.Helper()
	l, err := e.store.GetLink(t.Context(), fixtureLink)
	if errors.Is(err, linkstore.ErrNotFound) {
		return "<none>"
	}
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	return l.Status(now)
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestFixtureAuthorisesLink(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)

	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	if body["applied"] != float64(1) {
		t.Errorf("applied = %v, want 1", body["applied"])
	}
	if got := e.status(t); got != "AUTHORISED" {
		t.Errorf("link status = %q, want AUTHORISED", got)
	}
	l, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if l.Origin != "webhook" || l.TaxIDType != "personal" || l.TaxID != fixtureCPF {
		t.Errorf("link created from event: origin %q, taxIdType %q, tax id kept %v; want webhook, personal, true", l.Origin, l.TaxIDType, l.TaxID == fixtureCPF)
	}
	if got := e.metrics.Sum("EventsProcessed", map[string]string{"EventName": "consent_authorised", "Outcome": "applied"}); got != 1 {
		t.Errorf("EventsProcessed(consent_authorised, applied) = %v, want 1", got)
	}
}

func TestDuplicateDeliveryChangesNothing(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)
	e.call(t, req)
	before, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}

	resp, body := e.call(t, req)
	if resp.StatusCode != http.StatusOK || body["duplicates"] != float64(1) || body["applied"] != float64(0) {
		t.Fatalf("redelivery = %d %s, want 200 with duplicates 1, applied 0", resp.StatusCode, resp.Body)
	}
	after, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if !after.UpdatedAt.Equal(before.UpdatedAt) || len(after.Consents) != len(before.Consents) {
		t.Errorf("duplicate changed the link: updatedAt %v -> %v, consents %d -> %d", before.UpdatedAt, after.UpdatedAt, len(before.Consents), len(after.Consents))
	}
}

func TestConcurrentDuplicatesApplyOnce(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)
	var wg sync.WaitGroup
	results := make(chan map[string]any, 20)
	for range 20 {
		wg.Go(func() {
			resp, err := e.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("concurrent delivery: %v %d %s", err, resp.StatusCode, resp.Body)
				return
			}
			var body map[string]any
			_ = json.Unmarshal([]byte(resp.Body), &body)
			results <- body
		})
	}
	wg.Wait()
	close(results)
	applied := 0
	for b := range results {
		applied += int(b["applied"].(float64))
	}
	if applied != 1 {
		t.Errorf("20 concurrent deliveries applied %d times, want exactly 1", applied)
	}
}

func TestOutOfOrderEventsNeverMoveBack(t *testing.T) {
	tests := []struct {
		name   string
		first  string // event name, at 12:00:10
		second string // event name, delivered later but stamped 12:00:05
		want   string
	}{
		{"error after authorised", "consent_authorised", "consent_error", "AUTHORISED"},
		{"rejected after authorised", "consent_authorised", "consent_rejected", "AUTHORISED"},
		{"authorised after revoked", "consent_revoked", "consent_authorised", "REVOKED"},
		{"authorised after expired", "consent_expired", "consent_authorised", "EXPIRED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			base := fixture(t)
			first := "[" + consentEvent("ev-1", tc.first, "2026-11-24T12:00:10.000Z") + "]"
			second := "[" + consentEvent("ev-2", tc.second, "2026-11-24T12:00:05.000Z") + "]"
			e.call(t, signed(base, first, testSecret, now))
			resp, body := e.call(t, signed(base, second, testSecret, now))
			if resp.StatusCode != http.StatusOK || body["stale"] != float64(1) {
				t.Errorf("late old event = %d %s, want 200 with stale 1", resp.StatusCode, resp.Body)
			}
			if got := e.status(t); got != tc.want {
				t.Errorf("status = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewerEventMovesForward(t *testing.T) {
	e := newEnv(t)
	base := fixture(t)
	e.call(t, signed(base, "["+consentEvent("ev-1", "consent_authorised", "2026-11-24T12:00:00.000Z")+"]", testSecret, now))
	e.call(t, signed(base, "["+consentEvent("ev-2", "consent_revoked", "2026-11-24T12:05:00.000Z")+"]", testSecret, now))
	if got := e.status(t); got != "REVOKED" {
		t.Errorf("status = %q, want REVOKED", got)
	}
}

func TestObjectAndArrayBodies(t *testing.T) {
	for name, body := range map[string]string{
		"object":       consentEvent("ev-obj", "consent_authorised", "2026-11-24T12:00:00.000Z"),
		"array":        "[" + consentEvent("ev-arr", "consent_authorised", "2026-11-24T12:00:00.000Z") + "]",
		"eventID case": strings.Replace(consentEvent("ev-id", "consent_authorised", "2026-11-24T12:00:00.000Z"), `"eventId"`, `"eventID"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			resp, _ := e.call(t, signed(fixture(t), body, testSecret, now))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
			}
			if got := e.status(t); got != "AUTHORISED" {
				t.Errorf("status = %q, want AUTHORISED", got)
			}
		})
	}
}

func TestEveryEventNameAcknowledged(t *testing.T) {
	names := []string{"link_created", "consent_authorised", "consent_error", "consent_rejected", "consent_expired",
		"consent_revoked", "consent_deleted_by_user", "product_request_received", "product_generated_success",
		"product_generated_failed", "link_action_status", "page_view", "something_new"}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			body := "[" + consentEvent(fmt.Sprintf("ev-%d", i), name, "2026-11-24T12:00:00.000Z") + "]"
			resp, got := e.call(t, signed(fixture(t), body, testSecret, now))
			if resp.StatusCode != http.StatusOK || got["received"] != float64(1) {
				t.Errorf("%s = %d %s, want 200 with received 1", name, resp.StatusCode, resp.Body)
			}
			// A redelivery is a duplicate whatever the event is: it was kept.
			_, again := e.call(t, signed(fixture(t), body, testSecret, now))
			if again["duplicates"] != float64(1) {
				t.Errorf("%s redelivery duplicates = %v, want 1", name, again["duplicates"])
			}
		})
	}
}

func TestRejectsChangeNothing(t *testing.T) {
	good := fixture(t)
	body := good.Body
	tests := []struct {
		name   string
		req    func() httpapi.Request
		status int
		code   string
	}{
		{"tampered body", func() httpapi.Request {
			r := signed(good, body, testSecret, now)
			r.Body = strings.Replace(r.Body, "260", "261", 1)
			return r
		}, http.StatusUnauthorized, "invalid_signature"},
		{"wrong key", func() httpapi.Request { return signed(good, body, "another-secret", now) }, http.StatusUnauthorized, "invalid_signature"},
		{"stale timestamp", func() httpapi.Request { return signed(good, body, testSecret, now.Add(-time.Hour)) }, http.StatusUnauthorized, "stale_timestamp"},
		{"missing signature", func() httpapi.Request {
			r := signed(good, body, testSecret, now)
			delete(r.Headers, "x-klavi-signature")
			return r
		}, http.StatusUnauthorized, "missing_signature"},
		{"missing timestamp", func() httpapi.Request {
			r := signed(good, body, testSecret, now)
			delete(r.Headers, "x-klavi-timestamp")
			return r
		}, http.StatusUnauthorized, "missing_timestamp"},
		{"signed garbage", func() httpapi.Request { return signed(good, "{not json", testSecret, now) }, http.StatusBadRequest, "invalid_event"},
		{"too large", func() httpapi.Request {
			return signed(good, `{"pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`, testSecret, now)
		}, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"bad base64", func() httpapi.Request {
			r := signed(good, body, testSecret, now)
			r.Body, r.IsBase64Encoded = "%%%", true
			return r
		}, http.StatusBadRequest, "invalid_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp, got := e.call(t, tc.req())
			if resp.StatusCode != tc.status || errorCode(got) != tc.code {
				t.Errorf("answer = %d %s, want %d %s", resp.StatusCode, resp.Body, tc.status, tc.code)
			}
			if s := e.status(t); s != "<none>" {
				t.Errorf("rejected delivery changed state: link status %q", s)
			}
		})
	}
}

func TestSignatureRejectCounted(t *testing.T) {
	e := newEnv(t)
	e.call(t, signed(fixture(t), fixture(t).Body, "wrong", now))
	if got := e.metrics.Sum("SignatureRejected", map[string]string{"Reason": "invalid_signature"}); got != 1 {
		t.Errorf("SignatureRejected = %v, want 1", got)
	}
}

func TestBase64BodyVerifiedOverDecodedBytes(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)
	req.Body = base64.StdEncoding.EncodeToString([]byte(req.Body))
	req.IsBase64Encoded = true
	resp, _ := e.call(t, req)
	if resp.StatusCode != http.StatusOK || e.status(t) != "AUTHORISED" {
		t.Errorf("base64 delivery = %d %s, status %q; want 200 and AUTHORISED", resp.StatusCode, resp.Body, e.status(t))
	}
}

func TestCompactSignatureVariantAccepted(t *testing.T) {
	e := newEnv(t)
	req := fixture(t) // pretty-printed body
	sig, ts, err := webhooksig.SignCompact([]byte(testSecret), []byte(req.Body), now)
	if err != nil {
		t.Fatalf("SignCompact: %v", err)
	}
	req.Headers = cloneHeaders(req.Headers)
	req.Headers["x-klavi-signature"], req.Headers["x-klavi-timestamp"] = sig, ts
	resp, _ := e.call(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("compact-signed delivery = %d %s, want 200", resp.StatusCode, resp.Body)
	}
}

func TestEmptyUnsignedPingAcknowledged(t *testing.T) {
	e := newEnv(t)
	req := fixture(t)
	req.Body = ""
	delete(req.Headers, "x-klavi-signature")
	delete(req.Headers, "x-klavi-timestamp")
	resp, got := e.call(t, req)
	if resp.StatusCode != http.StatusOK || got["received"] != float64(0) {
		t.Errorf("empty ping = %d %s, want 200 with received 0", resp.StatusCode, resp.Body)
	}
}

func TestSourceAllowlist(t *testing.T) {
	allow, err := httpapi.ParseAllowlist("18.230.43.17/32")
	if err != nil {
		t.Fatalf("ParseAllowlist: %v", err)
	}
	e := newEnv(t, func(c *Config) { c.SourceIPs = allow })
	req := fixture(t) // source 18.231.92.86: Klavi's sandbox, not production
	resp, got := e.call(t, signed(req, req.Body, testSecret, now))
	if resp.StatusCode != http.StatusForbidden || errorCode(got) != "source_not_allowed" {
		t.Errorf("answer = %d %s, want 403 source_not_allowed", resp.StatusCode, resp.Body)
	}
	if e.status(t) != "<none>" {
		t.Errorf("refused source changed state")
	}
}

func TestDependencyFailuresAreRetryable(t *testing.T) {
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)

	h := New(staticKey{err: errors.New("secrets manager: throttled")}, linkstoretest.NewMemory(), Config{})
	resp, err := h.Handle(t.Context(), req)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("key unavailable = %d %v, want 503", resp.StatusCode, err)
	}

	h = New(staticKey{key: []byte(testSecret)}, failingStore{}, Config{Verifier: webhooksig.Verifier{Now: func() time.Time { return now }}})
	resp, err = h.Handle(t.Context(), req)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("store down = %d %v, want 503 so Klavi retries", resp.StatusCode, err)
	}
	if strings.Contains(resp.Body, "throttled") {
		t.Errorf("response leaks the internal error: %s", resp.Body)
	}
}

func TestMultiConsentEventDedupedPerConsent(t *testing.T) {
	e := newEnv(t)
	body := `[{"eventId":"ev-multi","eventType":"api","eventName":"consent_authorised","eventTime":"2026-11-24T12:00:00.000Z",
"payload":{"personalTaxId":"` + fixtureCPF + `","linkId":"` + fixtureLink + `","consents":[{"consentId":"c-1","institutionCode":"001"},{"consentId":"c-2","institutionCode":"260"}]}}]`
	resp, got := e.call(t, signed(fixture(t), body, testSecret, now))
	if resp.StatusCode != http.StatusOK || got["applied"] != float64(2) {
		t.Fatalf("multi-consent event = %d %s, want 200 with applied 2", resp.StatusCode, resp.Body)
	}
	l, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if len(l.Consents) != 2 {
		t.Errorf("consents = %d, want 2", len(l.Consents))
	}
}

func TestLogsCarryNoPersonalDataOrSecrets(t *testing.T) {
	e := newEnv(t)
	req := signed(fixture(t), fixture(t).Body, testSecret, now)
	e.call(t, req)
	e.call(t, signed(req, req.Body, "wrong", now))
	e.call(t, signed(req, "{bad", testSecret, now))
	logs := e.logs.String()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, secret := range []string{fixtureCPF, "529.982.247-25", testSecret, req.Headers["x-klavi-signature"]} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestEventWithoutIDKeptOnce(t *testing.T) {
	e := newEnv(t)
	body := `[{"eventName":"consent_authorised","eventTime":"2026-11-24T12:00:00.000Z","payload":{"linkId":"` + fixtureLink +
		`","consents":{"consentId":"` + fixtureCons + `","institutionCode":"260"}}}]`
	resp, got := e.call(t, signed(fixture(t), body, testSecret, now))
	if resp.StatusCode != http.StatusOK || got["applied"] != float64(1) {
		t.Fatalf("event without eventId = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}
	if s := e.status(t); s != "AUTHORISED" {
		t.Errorf("status = %q, want AUTHORISED", s)
	}
	_, again := e.call(t, signed(fixture(t), body, testSecret, now))
	if again["duplicates"] != float64(1) {
		t.Errorf("redelivery duplicates = %v, want 1", again["duplicates"])
	}
}
