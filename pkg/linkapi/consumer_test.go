package linkapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// fakeSigner signs by naming the key; err, when set, fails every call.
type fakeSigner struct {
	keys []string
	err  error
}

func (f *fakeSigner) PresignGet(_ context.Context, key string) (string, time.Time, error) {
	f.keys = append(f.keys, key)
	if f.err != nil {
		return "", time.Time{}, f.err
	}
	return "https://bucket.s3.example/" + key + "?X-Amz-Signature=x", testStart.Add(5 * time.Minute), nil
}

// revokeKlavi records revocations; fail decides a consent's outcome.
type revokeKlavi struct {
	mu    sync.Mutex
	calls []string
	fail  func(consentID string) error
}

func (f *revokeKlavi) RevokeConsent(_ context.Context, consentID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, consentID)
	if f.fail != nil {
		return f.fail(consentID)
	}
	return nil
}

type consumerEnv struct {
	*reportsEnv
	signer *fakeSigner
	revoke *revokeKlavi
}

func newConsumerEnv(t *testing.T) *consumerEnv {
	t.Helper()
	e := &consumerEnv{reportsEnv: newReportsEnv(t, nil), signer: &fakeSigner{}, revoke: &revokeKlavi{}}
	rev := revocation.New(e.revoke, e.store.MemoryStore, e.svc, revocation.Config{Now: e.clock.Now})
	e.h = New(nil, e.store, e.svc, Config{Downloads: e.signer, Revocation: rev, Now: e.clock.Now})
	return e
}

// seedOwned stores the fixture link, owned by the fixtures' caller, with
// consents A and B authorised and one report.
func (e *consumerEnv) seedOwned(t *testing.T) {
	t.Helper()
	e.seedOwnedBy(t, fixtureOwner)
}

// seedOwnedBy is seedOwned with another owner ("" for none, as a link first
// seen in an event).
func (e *consumerEnv) seedOwnedBy(t *testing.T, owner string) {
	t.Helper()
	l := personalLink(fixtureLinkID)
	l.Owner = owner
	seed(t, e.store.MemoryStore, l, authorised("A", "001"), authorised("B", "237"))
	err := e.store.RecordReport(t.Context(), fixtureLinkID, linkstore.Report{
		ProductReportID: "pr-0001-checking", ProductName: "pf_checking_account", RequestID: "req-1",
		ObjectKey: "reports/" + fixtureLinkID + "/pf_checking_account/pr-0001-checking.json",
		Code:      200, Bytes: 1234, SHA256: strings.Repeat("ab", 32), ReceivedAt: testStart,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *consumerEnv) do(t *testing.T, req httpapi.Request) (httpapi.Response, map[string]any) {
	t.Helper()
	resp, err := e.h.Handle(t.Context(), req)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	checkNoTaxID(t, "response", resp.Body)
	return resp, body
}

// asOther is req made by another caller than the link's owner; it changes
// req's authorizer in place.
func asOther(req httpapi.Request) httpapi.Request {
	req.RequestContext.Authorizer.JWT.Claims = map[string]string{"sub": "someone-else"}
	return req
}

func TestDownloadFromFixture(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	resp, body := e.do(t, loadHTTP(t, "links-api-report-download.json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, body %s", resp.StatusCode, resp.Body)
	}
	want := map[string]any{
		"productReportId": "pr-0001-checking", "productName": "pf_checking_account", "requestId": "req-1",
		"code": 200.0, "bytes": 1234.0, "sha256": strings.Repeat("ab", 32), "receivedAt": "2026-11-24T12:00:00Z",
		"url":          "https://bucket.s3.example/reports/" + fixtureLinkID + "/pf_checking_account/pr-0001-checking.json?X-Amz-Signature=x",
		"urlExpiresAt": "2026-11-24T12:05:00Z",
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestDownloadErrors(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	req := loadHTTP(t, "links-api-report-download.json")
	unknownReport := loadHTTP(t, "links-api-report-download.json")
	unknownReport.PathParameters["productReportId"] = "nope"
	unknownLink := loadHTTP(t, "links-api-report-download.json")
	unknownLink.PathParameters["linkId"] = "11111111-2222-3333-4444-555555555555"
	for _, tc := range []struct {
		name   string
		req    httpapi.Request
		status int
		code   string
	}{
		{"unknown report", unknownReport, 404, "report_not_found"},
		{"unknown link", unknownLink, 404, "link_not_found"},
		{"another caller's link", asOther(loadHTTP(t, "links-api-report-download.json")), 404, "link_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.req)
			if resp.StatusCode != tc.status || code(body) != tc.code {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, code(body), tc.status, tc.code)
			}
		})
	}
	e.signer.err = errors.New("no credentials")
	if resp, body := e.do(t, req); resp.StatusCode != 503 || code(body) != "storage_unavailable" {
		t.Errorf("signing failure: %d %s", resp.StatusCode, code(body))
	}
	if _, err := e.store.Purge(t.Context(), fixtureLinkID, testStart); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.do(t, req); resp.StatusCode != 410 || code(body) != "link_deleted" {
		t.Errorf("after purge: %d %s, want 410 link_deleted", resp.StatusCode, code(body))
	}
}

func TestRevokeFromFixture(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	want := map[string]any{"linkId": fixtureLinkID, "consents": []any{
		map[string]any{"consentId": "A", "status": "REVOKE_REQUESTED"},
		map[string]any{"consentId": "B", "status": "REVOKE_REQUESTED"},
	}}
	for i := range 2 { // the second asks Klavi for nothing
		resp, body := e.do(t, loadHTTP(t, "links-api-revoke.json"))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("call %d: status = %d, body %s", i, resp.StatusCode, resp.Body)
		}
		if diff := cmp.Diff(want, body); diff != "" {
			t.Errorf("call %d body (-want +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff([]string{"A", "B"}, e.revoke.calls); diff != "" {
		t.Errorf("Klavi revocations (-want +got):\n%s", diff)
	}
	// Reports stay until retention.
	if l := getLink(t, e.store.MemoryStore, fixtureLinkID); len(l.Reports) != 1 {
		t.Errorf("reports after revoke = %d, want 1", len(l.Reports))
	}
}

func TestRevokeErrors(t *testing.T) {
	t.Run("no active consent", func(t *testing.T) {
		e := newConsumerEnv(t)
		l := personalLink(fixtureLinkID)
		l.Owner = "user-123"
		seed(t, e.store.MemoryStore, l, linkstore.Consent{ConsentID: "A", Status: klavi.ConsentRejected})
		if resp, body := e.do(t, loadHTTP(t, "links-api-revoke.json")); resp.StatusCode != 409 || code(body) != "no_active_consent" {
			t.Errorf("got %d %s, want 409 no_active_consent", resp.StatusCode, code(body))
		}
	})
	t.Run("another caller", func(t *testing.T) {
		e := newConsumerEnv(t)
		e.seedOwned(t)
		if resp, body := e.do(t, asOther(loadHTTP(t, "links-api-revoke.json"))); resp.StatusCode != 404 || code(body) != "link_not_found" {
			t.Errorf("got %d %s", resp.StatusCode, code(body))
		}
		if len(e.revoke.calls) != 0 {
			t.Errorf("Klavi called for another caller's link: %v", e.revoke.calls)
		}
	})
	t.Run("one consent fails", func(t *testing.T) {
		e := newConsumerEnv(t)
		e.seedOwned(t)
		e.revoke.fail = func(id string) error {
			if id == "B" {
				return &klavi.APIError{HTTPStatus: 502, Endpoint: "DELETE /data/v1/consents/{consentId}/revoke"}
			}
			return nil
		}
		resp, body := e.do(t, loadHTTP(t, "links-api-revoke.json"))
		failures, _ := body["failures"].([]any)
		if resp.StatusCode != 202 || len(failures) != 1 {
			t.Fatalf("got %d %s, want 202 with one failure", resp.StatusCode, resp.Body)
		}
	})
	t.Run("every consent fails", func(t *testing.T) {
		e := newConsumerEnv(t)
		e.seedOwned(t)
		e.revoke.fail = func(string) error { return &klavi.APIError{HTTPStatus: 429} }
		if resp, body := e.do(t, loadHTTP(t, "links-api-revoke.json")); resp.StatusCode != 503 || code(body) != "klavi_busy" {
			t.Errorf("got %d %s, want 503 klavi_busy", resp.StatusCode, code(body))
		}
	})
}

func TestDeleteFromFixture(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	for i := range 2 {
		resp, body := e.do(t, loadHTTP(t, "links-api-delete.json"))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("call %d: status = %d, body %s", i, resp.StatusCode, resp.Body)
		}
		if diff := cmp.Diff(map[string]any{"linkId": fixtureLinkID, "status": "DELETED"}, body); diff != "" {
			t.Errorf("call %d body (-want +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff([]string{"A", "B"}, e.revoke.calls); diff != "" {
		t.Errorf("Klavi revocations (-want +got):\n%s", diff)
	}
	l := getLink(t, e.store.MemoryStore, fixtureLinkID)
	if l.PurgedAt.IsZero() || l.TaxID != "" || len(l.Reports) != 0 || l.PurgeReason != linkstore.PurgeDeletedByRequest {
		t.Errorf("link after delete = %+v", l)
	}
	// The owner reads DELETED; its report routes answer 410.
	resp, body := e.do(t, loadHTTP(t, "links-api-get.json"))
	if resp.StatusCode != 200 || body["status"] != "DELETED" {
		t.Errorf("GET after delete: %d %v", resp.StatusCode, body["status"])
	}
	for _, name := range []string{"links-api-report-download.json", "links-api-revoke.json", "links-api-reports.json"} {
		if resp, body := e.do(t, loadHTTP(t, name)); resp.StatusCode != 410 || code(body) != "link_deleted" {
			t.Errorf("%s after delete: %d %s, want 410 link_deleted", name, resp.StatusCode, code(body))
		}
	}
}

func TestDeleteKlaviFailureIsNotDone(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	e.revoke.fail = func(id string) error {
		if id == "B" {
			return &klavi.APIError{HTTPStatus: 500}
		}
		return nil
	}
	resp, body := e.do(t, loadHTTP(t, "links-api-delete.json"))
	if resp.StatusCode != 502 || code(body) != "klavi_error" {
		t.Fatalf("got %d %s, want 502 klavi_error", resp.StatusCode, resp.Body)
	}
	l := getLink(t, e.store.MemoryStore, fixtureLinkID)
	if !l.PurgedAt.IsZero() || len(l.Reports) != 1 || l.Status(testStart) == linkstore.StatusDeleted {
		t.Fatalf("link after a failed delete = %+v, want untouched", l)
	}
	e.revoke.fail = nil
	e.clock.Advance(2 * time.Minute) // the failed claim runs out
	if resp, body := e.do(t, loadHTTP(t, "links-api-delete.json")); resp.StatusCode != 202 || body["status"] != "DELETED" {
		t.Errorf("retry: %d %s", resp.StatusCode, resp.Body)
	}
	if diff := cmp.Diff([]string{"A", "B", "B"}, e.revoke.calls); diff != "" {
		t.Errorf("Klavi revocations (-want +got):\n%s", diff)
	}
}

func TestDeleteAnotherCallersLink(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	if resp, body := e.do(t, asOther(loadHTTP(t, "links-api-delete.json"))); resp.StatusCode != 404 || code(body) != "link_not_found" {
		t.Errorf("got %d %s, want 404", resp.StatusCode, code(body))
	}
	if l := getLink(t, e.store.MemoryStore, fixtureLinkID); !l.PurgedAt.IsZero() || l.PurgeReason != "" {
		t.Errorf("another caller's delete touched the link: %+v", l)
	}
}

func TestConsumerRoutesByRawPath(t *testing.T) {
	e := newConsumerEnv(t)
	e.seedOwned(t)
	req := loadHTTP(t, "links-api-report-download.json")
	req.RouteKey, req.PathParameters = "$default", nil
	if resp, _ := e.do(t, req); resp.StatusCode != 200 {
		t.Errorf("download by raw path: %d %s", resp.StatusCode, resp.Body)
	}
	req = loadHTTP(t, "links-api-revoke.json")
	req.RouteKey, req.PathParameters = "$default", nil
	req.RequestContext.HTTP.Method = http.MethodGet
	if resp, body := e.do(t, req); resp.StatusCode != 405 || code(body) != "method_not_allowed" {
		t.Errorf("GET revoke: %d %s", resp.StatusCode, code(body))
	}
}

// The consumer routes keep the rule of who may see a link (Handler.access):
// 401 without identity, 404 for an ordinary caller on another's or an
// unowned link, the back office on any link; nothing reaches Klavi or the
// store for a refused request.
func TestConsumerRoutesWhoMaySee(t *testing.T) {
	admin := map[string]string{"sub": "ops-1", "scope": "klavi-link/admin"}
	routes := []string{"links-api-report-download.json", "links-api-revoke.json", "links-api-delete.json"}
	tests := []struct {
		name       string
		owner      string
		caller     map[string]string // nil: no authorizer
		iam        string
		wantStatus int
	}{
		{name: "no identity", owner: fixtureOwner, wantStatus: http.StatusUnauthorized},
		{name: "jwt without sub", owner: fixtureOwner, caller: map[string]string{"azp": "x"}, wantStatus: http.StatusUnauthorized},
		{name: "unowned link, ordinary caller", owner: "", caller: sub(fixtureOwner), wantStatus: http.StatusNotFound},
		{name: "unowned link, admin scope", owner: "", caller: admin, wantStatus: 0},
		{name: "another's link, admin scope", owner: "user-a", caller: admin, wantStatus: 0},
		{name: "unowned link, iam role session", owner: "", iam: "arn:aws:sts::123456789012:assumed-role/backoffice/s", wantStatus: 0},
	}
	for _, route := range routes {
		for _, tc := range tests {
			t.Run(route+"/"+tc.name, func(t *testing.T) {
				e := newConsumerEnv(t)
				e.seedOwnedBy(t, tc.owner)
				req := asCaller(loadHTTP(t, route), tc.caller)
				if tc.iam != "" {
					req = asIAM(req, tc.iam)
				}
				resp, body := e.do(t, req)
				refused := tc.wantStatus != 0
				switch {
				case refused && resp.StatusCode != tc.wantStatus:
					t.Fatalf("got %d %s, want %d", resp.StatusCode, resp.Body, tc.wantStatus)
				case !refused && resp.StatusCode/100 != 2:
					t.Fatalf("got %d %s, want success for the back office", resp.StatusCode, resp.Body)
				}
				if refused {
					if want := map[int]string{401: "unauthenticated", 404: "link_not_found"}[tc.wantStatus]; code(body) != want {
						t.Errorf("code = %q, want %s", code(body), want)
					}
					if len(e.revoke.calls) != 0 || len(e.signer.keys) != 0 {
						t.Errorf("refused request reached Klavi (%v) or signed a URL", e.revoke.calls)
					}
					if l := getLink(t, e.store.MemoryStore, fixtureLinkID); !l.PurgedAt.IsZero() {
						t.Errorf("refused request purged the link")
					}
				}
			})
		}
	}
}

// A purged link keeps its owner: the owner gets 410 link_deleted on the
// download and revoke routes, another caller 404.
func TestConsumerRoutesPurgedLink(t *testing.T) {
	for _, route := range []string{"links-api-report-download.json", "links-api-revoke.json"} {
		t.Run(route, func(t *testing.T) {
			e := newConsumerEnv(t)
			e.seedOwned(t)
			if _, err := e.store.MemoryStore.Purge(t.Context(), fixtureLinkID, testStart); err != nil {
				t.Fatal(err)
			}
			if resp, body := e.do(t, loadHTTP(t, route)); resp.StatusCode != http.StatusGone || code(body) != "link_deleted" {
				t.Errorf("owner: %d %s, want 410 link_deleted", resp.StatusCode, resp.Body)
			}
			if resp, body := e.do(t, asOther(loadHTTP(t, route))); resp.StatusCode != http.StatusNotFound || code(body) != "link_not_found" {
				t.Errorf("other caller: %d %s, want 404 link_not_found", resp.StatusCode, resp.Body)
			}
		})
	}
}
