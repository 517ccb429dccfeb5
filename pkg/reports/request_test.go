package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

func TestRequestForConsentSends(t *testing.T) {
	business := personalLink("l-biz")
	business.TaxIDType, business.TaxID = linkstore.TaxIDBusiness, testCNPJ
	tests := []struct {
		name     string
		link     linkstore.Link
		products []string
		wantKind klavi.TaxIDKind
		wantTax  string
		wantProd []string
	}{
		{"personal", personalLink("l-pf"), nil, klavi.Personal, testCPF, []string{"all"}},
		{"business", business, []string{"pj_checking_account", "pj_credit_card"}, klavi.Business, testCNPJ, []string{"pj_checking_account", "pj_credit_card"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Products = tc.products })
			seed(t, e.store.MemoryStore, tc.link, authorised("c-1", "260"))

			id, err := e.h.RequestForConsent(t.Context(), tc.link.LinkID, "c-1", linkstore.TriggerStream)
			if err != nil || id != "req-1" {
				t.Fatalf("RequestForConsent = %q, %v; want req-1, nil", id, err)
			}
			calls := e.klavi.Calls()
			if len(calls) != 1 {
				t.Fatalf("klavi calls = %d, want 1", len(calls))
			}
			want := klavi.InstitutionDataRequest{
				TaxID:               tc.wantTax,
				InstitutionCode:     "260",
				LinkID:              tc.link.LinkID,
				ConsentIDs:          []string{"c-1"},
				Products:            tc.wantProd,
				ProductsCallbackURL: map[string]string{"all": testWebhookURL},
				ExternalInfo:        json.RawMessage(`{"customerRef":"cus_42"}`),
			}
			if calls[0].Kind != tc.wantKind {
				t.Errorf("kind = %q, want %q", calls[0].Kind, tc.wantKind)
			}
			if diff := cmp.Diff(want, calls[0].Req); diff != "" {
				t.Errorf("klavi request mismatch (-want +got):\n%s", diff)
			}
			// The call is bounded well inside the lease.
			if !calls[0].HasDeadline || calls[0].Deadline.After(time.Now().Add(DefaultLease*3/4)) {
				t.Errorf("klavi call deadline = %v (set %v), want at most 3/4 of the lease from now", calls[0].Deadline, calls[0].HasDeadline)
			}

			l := getLink(t, e.store.MemoryStore, tc.link.LinkID)
			wantReq := []linkstore.ReportRequest{{
				RequestID: "req-1", ConsentID: "c-1", InstitutionCode: "260",
				Products: tc.wantProd, RequestedAt: testStart, Trigger: linkstore.TriggerStream,
			}}
			if diff := cmp.Diff(wantReq, l.ReportRequests); diff != "" {
				t.Errorf("recorded requests mismatch (-want +got):\n%s", diff)
			}
			if got := l.Consents[0].RequestID; got != "req-1" {
				t.Errorf("consent request id = %q, want req-1", got)
			}
			if got := e.metrics.Sum("ReportRequestsSent", map[string]string{"Trigger": "stream"}); got != 1 {
				t.Errorf("ReportRequestsSent = %v, want 1", got)
			}
			checkNoTaxID(t, "logs", e.logs.String())
		})
	}
}

func TestRequestForConsentOnce(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	for i := range 3 {
		id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerReconcile)
		want := ""
		if i == 0 {
			want = "req-1"
		}
		if err != nil || id != want {
			t.Fatalf("call %d: RequestForConsent = %q, %v; want %q, nil", i, id, err, want)
		}
	}
	if n := len(e.klavi.Calls()); n != 1 {
		t.Errorf("klavi calls = %d, want 1", n)
	}
	if got := e.metrics.Sum("ReportRequestsSkipped", map[string]string{"Reason": ReasonAlreadyRequested}); got != 2 {
		t.Errorf("skipped as already requested = %v, want 2", got)
	}
}

func TestRequestForConsentNothingToDo(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *env)
		consentID  string
		wantReason string
	}{
		{
			name: "consent revoked",
			setup: func(t *testing.T, e *env) {
				seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
				setConsent(t, e.store.MemoryStore, "l-1", linkstore.Consent{ConsentID: "c-1", Status: klavi.ConsentRevoked})
			},
			consentID:  "c-1",
			wantReason: ReasonNotAuthorised,
		},
		{
			name:       "unknown link",
			setup:      func(*testing.T, *env) {},
			consentID:  "c-1",
			wantReason: ReasonNotFound,
		},
		{
			name: "unknown consent",
			setup: func(t *testing.T, e *env) {
				seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			},
			consentID:  "c-2",
			wantReason: ReasonNotFound,
		},
		{
			name: "link purged",
			setup: func(t *testing.T, e *env) {
				seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
				if _, err := e.store.MemoryStore.Purge(t.Context(), "l-1", testStart); err != nil {
					t.Fatal(err)
				}
			},
			consentID:  "c-1",
			wantReason: ReasonNotFound, // the purge deleted the consent item
		},
		{
			// The fintech asked for the deletion and it waits for Klavi:
			// a consent authorised meanwhile fetches nothing.
			name: "deletion requested",
			setup: func(t *testing.T, e *env) {
				seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
				if err := e.store.MemoryStore.RequestDeletion(t.Context(), "l-1", testStart); err != nil {
					t.Fatal(err)
				}
			},
			consentID:  "c-1",
			wantReason: ReasonDeletionRequested,
		},
		{
			// The user deleted the whole link at Klavi (no consent named)
			// and the purge is pending work: nothing is fetched meanwhile.
			name: "purge pending",
			setup: func(t *testing.T, e *env) {
				seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
				if _, err := e.store.MemoryStore.ApplyEvent(t.Context(), linkstore.EventChange{
					EventID: "ev-delete-link", EventName: "consent_deleted_by_user", LinkID: "l-1",
					ConsentStatus: klavi.ConsentDeletedByUser, EventTime: testStart, ReceivedAt: testStart,
				}); err != nil {
					t.Fatal(err)
				}
			},
			consentID:  "c-1",
			wantReason: ReasonDeletionRequested,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tc.setup(t, e)
			id, err := e.h.RequestForConsent(t.Context(), "l-1", tc.consentID, linkstore.TriggerStream)
			if err != nil || id != "" {
				t.Fatalf("RequestForConsent = %q, %v; want \"\", nil", id, err)
			}
			if n := len(e.klavi.Calls()); n != 0 {
				t.Errorf("klavi calls = %d, want 0", n)
			}
			if got := e.metrics.Sum("ReportRequestsSkipped", map[string]string{"Reason": tc.wantReason}); got != 1 {
				t.Errorf("ReportRequestsSkipped{%s} = %v, want 1 (points %+v)", tc.wantReason, got, e.metrics.Points())
			}
		})
	}
}

// claimThenPurgeStore lets the claim succeed and then shows the link purged,
// as when a purge runs between the claim and the read.
type claimThenPurgeStore struct{ *reportstest.Store }

func (s claimThenPurgeStore) GetLink(_ context.Context, linkID string) (*linkstore.Link, error) {
	return &linkstore.Link{LinkID: linkID, PurgedAt: testStart}, nil
}

func TestRequestForConsentPurgedAfterClaim(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	h := New(e.klavi, claimThenPurgeStore{e.store}, e.objects, Config{Metrics: e.metrics.Recorder, Now: e.clock.Now})
	id, err := h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
	if err != nil || id != "" {
		t.Fatalf("RequestForConsent = %q, %v; want \"\", nil", id, err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
	if got := e.metrics.Sum("ReportRequestsSkipped", map[string]string{"Reason": ReasonPurged}); got != 1 {
		t.Errorf("ReportRequestsSkipped{purged} = %v, want 1", got)
	}
}

func TestRequestForConsentLeaseHeld(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	if err := e.store.MemoryStore.ClaimAutoRequest(t.Context(), "l-1", "c-1", time.Minute, testStart); err != nil {
		t.Fatal(err)
	}
	_, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
	if !errors.Is(err, ErrInProgress) || !errors.Is(err, linkstore.ErrLeaseHeld) || errors.Is(err, ErrPermanent) {
		t.Fatalf("error = %v, want ErrInProgress wrapping linkstore.ErrLeaseHeld, not permanent", err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}

	// Once the other caller's lease has run out, the consent is claimed
	// again and the request made.
	e.clock.Advance(time.Minute)
	if id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerReconcile); err != nil || id != "req-1" {
		t.Fatalf("after the lease: RequestForConsent = %q, %v; want req-1, nil", id, err)
	}
}

func TestRequestForConsentFailures(t *testing.T) {
	noType := personalLink("l-1")
	noType.TaxIDType, noType.TaxID = linkstore.TaxIDUnknown, ""
	noURL := personalLink("l-1")
	noURL.ReportWebhookURL = ""

	tests := []struct {
		name       string
		link       linkstore.Link
		klaviErr   error
		storeFault func(s *reportstest.Store)
		wantIs     []error
		permanent  bool
		wantReason string
		wantCalls  int
	}{
		{
			name: "klavi 4001 consent no longer authorised", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(416, 4001), wantIs: []error{klavi.ErrInvalidAuthorisation},
			permanent: true, wantReason: ReasonConsentNotAuth, wantCalls: 1,
		},
		{
			name: "klavi 4002 invalid product", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(416, 4002), wantIs: []error{klavi.ErrInvalidProduct},
			permanent: true, wantReason: ReasonInvalidProduct, wantCalls: 1,
		},
		{
			name: "klavi 4006 invalid callback", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(416, 4006), permanent: true, wantReason: ReasonInvalidCallback, wantCalls: 1,
		},
		{
			name: "klavi 400", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(400, 400), wantIs: []error{klavi.ErrBadRequest},
			permanent: true, wantReason: ReasonKlaviRejected, wantCalls: 1,
		},
		{
			name: "klavi refuses before sending", link: personalLink("l-1"),
			klaviErr:  fmt.Errorf("klavi POST: %w: taxId is required", klavi.ErrInvalidRequest),
			permanent: true, wantReason: ReasonInvalidRequest, wantCalls: 1,
		},
		{
			name: "klavi 429", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(429, 429), wantIs: []error{klavi.ErrRateLimited},
			wantReason: ReasonRateLimited, wantCalls: 1,
		},
		{
			name: "klavi 503", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(503, 503), wantIs: []error{klavi.ErrServer},
			wantReason: ReasonKlaviServer, wantCalls: 1,
		},
		{
			name: "klavi 401 after the token refresh", link: personalLink("l-1"),
			klaviErr: reportstest.APIError(401, 401), wantReason: ReasonKlaviUnavailable, wantCalls: 1,
		},
		{
			name: "network", link: personalLink("l-1"),
			klaviErr:   errors.New("klavi POST /data/v1/personal/institution-data: connection reset"),
			wantReason: ReasonKlaviUnavailable, wantCalls: 1,
		},
		{
			name: "unknown tax id type", link: noType,
			wantIs: []error{ErrUnknownTaxIDType}, permanent: true, wantReason: ReasonUnknownTaxIDType,
		},
		{
			name: "no webhook url", link: noURL,
			wantIs: []error{ErrNoWebhookURL}, permanent: true, wantReason: ReasonNoWebhookURL,
		},
		{
			name: "claim fails", link: personalLink("l-1"),
			storeFault: func(s *reportstest.Store) { s.ClaimErr = errors.New("dynamodb: throttled") },
			wantReason: ReasonStoreUnavailable,
		},
		{
			name: "link read fails", link: personalLink("l-1"),
			storeFault: func(s *reportstest.Store) { s.GetErr = errors.New("dynamodb: throttled") },
			wantReason: ReasonStoreUnavailable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			seed(t, e.store.MemoryStore, tc.link, authorised("c-1", "260"))
			if tc.klaviErr != nil {
				e.klavi.FailWith(tc.klaviErr)
			}
			if tc.storeFault != nil {
				tc.storeFault(e.store)
			}
			id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
			if err == nil || id != "" {
				t.Fatalf("RequestForConsent = %q, %v; want an error", id, err)
			}
			if got := errors.Is(err, ErrPermanent); got != tc.permanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, tc.permanent)
			}
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("error %v does not match %v", err, target)
				}
			}
			if n := len(e.klavi.Calls()); n != tc.wantCalls {
				t.Errorf("klavi calls = %d, want %d", n, tc.wantCalls)
			}
			if got := e.metrics.Sum("ReportRequestsFailed", map[string]string{"Reason": tc.wantReason}); got != 1 {
				t.Errorf("ReportRequestsFailed{%s} = %v, want 1 (points %+v)", tc.wantReason, got, e.metrics.Points())
			}
			e.store.ClaimErr, e.store.GetErr = nil, nil
			l := getLink(t, e.store.MemoryStore, "l-1")
			if len(l.ReportRequests) != 0 || l.Consents[0].RequestID != "" {
				t.Errorf("a failed request was recorded: requests %+v, consent %+v", l.ReportRequests, l.Consents[0])
			}
			checkNoTaxID(t, "error", err.Error())
		})
	}
}

func TestRequestForConsentRetryAfterLease(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Lease = time.Minute })
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	e.klavi.Answer = func(n int, _ klavi.TaxIDKind, _ klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		if n == 1 {
			return nil, reportstest.APIError(503, 503)
		}
		return &klavi.ReportRequestAccepted{RequestID: "req-ok"}, nil
	}
	if _, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream); err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("first attempt error = %v, want a temporary error", err)
	}
	// Within the lease of the failed attempt nobody calls Klavi.
	if _, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream); !errors.Is(err, ErrInProgress) {
		t.Fatalf("retry within the lease: error = %v, want ErrInProgress", err)
	}
	e.clock.Advance(time.Minute)
	id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerReconcile)
	if err != nil || id != "req-ok" {
		t.Fatalf("after the lease: RequestForConsent = %q, %v; want req-ok, nil", id, err)
	}
	if n := len(e.klavi.Calls()); n != 2 {
		t.Errorf("klavi calls = %d, want 2", n)
	}
	l := getLink(t, e.store.MemoryStore, "l-1")
	if len(l.ReportRequests) != 1 || l.ReportRequests[0].Trigger != linkstore.TriggerReconcile {
		t.Errorf("requests = %+v, want one with trigger reconcile", l.ReportRequests)
	}
}

func TestRequestForConsentUnidentified(t *testing.T) {
	tests := []struct {
		name   string
		answer func() (*klavi.ReportRequestAccepted, error)
	}{
		{"empty request id", func() (*klavi.ReportRequestAccepted, error) {
			return &klavi.ReportRequestAccepted{Message: "ok"}, nil
		}},
		{"unreadable 2xx body", func() (*klavi.ReportRequestAccepted, error) {
			return nil, fmt.Errorf("klavi POST /data/v1/personal/institution-data: %w: invalid character", klavi.ErrMalformedResponse)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			e.klavi.Answer = func(int, klavi.TaxIDKind, klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
				return tc.answer()
			}
			id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
			if err != nil || !strings.HasPrefix(id, unidentifiedPrefix) {
				t.Fatalf("RequestForConsent = %q, %v; want an %q id", id, err, unidentifiedPrefix)
			}
			l := getLink(t, e.store.MemoryStore, "l-1")
			if l.Consents[0].RequestID != id {
				t.Errorf("consent request id = %q, want %q", l.Consents[0].RequestID, id)
			}
			// Recorded, so it is never made a second time.
			if again, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream); err != nil || again != "" {
				t.Errorf("second RequestForConsent = %q, %v; want nothing to do", again, err)
			}
			if n := len(e.klavi.Calls()); n != 1 {
				t.Errorf("klavi calls = %d, want 1", n)
			}
			if got := e.metrics.Sum("ReportRequestsUnidentified", nil); got != 1 {
				t.Errorf("ReportRequestsUnidentified = %v, want 1", got)
			}
		})
	}
}

func TestRequestForConsentRecordFails(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	e.store.RecordErr = errors.New("dynamodb: transaction canceled")
	id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
	if id != "req-1" || err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("RequestForConsent = %q, %v; want req-1 with a temporary error", id, err)
	}
	if got := e.metrics.Sum("ReportRequestsUnrecorded", nil); got != 1 {
		t.Errorf("ReportRequestsUnrecorded = %v, want 1", got)
	}
	if got := e.metrics.Sum("ReportRequestsFailed", map[string]string{"Reason": ReasonStoreUnavailable}); got != 1 {
		t.Errorf("ReportRequestsFailed{store_unavailable} = %v, want 1", got)
	}
}

func TestRequestForConsentRecordAfterPurge(t *testing.T) {
	for _, storeErr := range []error{linkstore.ErrPurged, linkstore.ErrNotFound, linkstore.ErrDuplicate} {
		t.Run(storeErr.Error(), func(t *testing.T) {
			e := newEnv(t, nil)
			seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
			e.store.RecordErr = fmt.Errorf("record: %w", storeErr)
			id, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream)
			if err != nil || id != "req-1" {
				t.Fatalf("RequestForConsent = %q, %v; want req-1, nil", id, err)
			}
		})
	}
}

func TestRequestForConsentInvalidTrigger(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	for _, trigger := range []string{linkstore.TriggerManual, ""} {
		_, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", trigger)
		if !errors.Is(err, ErrInvalidTrigger) || !errors.Is(err, ErrPermanent) {
			t.Errorf("trigger %q: error = %v, want ErrInvalidTrigger, permanent", trigger, err)
		}
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
}

func TestRequestForConsentFallbacks(t *testing.T) {
	l := personalLink("l-1")
	l.ReportWebhookURL = ""
	l.InstitutionCode = "033"
	e := newEnv(t, func(c *Config) { c.ReportWebhookURL = "https://configured.example.com/webhooks/klavi/reports" })
	seed(t, e.store.MemoryStore, l, linkstore.Consent{ConsentID: "c-1", Status: klavi.ConsentAuthorised})
	if _, err := e.h.RequestForConsent(t.Context(), "l-1", "c-1", linkstore.TriggerStream); err != nil {
		t.Fatalf("RequestForConsent: %v", err)
	}
	got := e.klavi.Calls()[0].Req
	want := klavi.InstitutionDataRequest{
		InstitutionCode:     "033",
		ProductsCallbackURL: map[string]string{"all": "https://configured.example.com/webhooks/klavi/reports"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(klavi.InstitutionDataRequest{}, "TaxID", "LinkID", "ConsentIDs", "Products", "ExternalInfo")); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

// A manual request for a link the fintech asked to delete is refused like
// one for a purged link, before Klavi is called.
func TestRequestForLinkDeletionRequested(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store.MemoryStore, personalLink("l-1"), authorised("c-1", "260"))
	if err := e.store.MemoryStore.RequestDeletion(t.Context(), "l-1", testStart); err != nil {
		t.Fatal(err)
	}
	link, err := e.store.GetLink(t.Context(), "l-1")
	if err != nil {
		t.Fatal(err)
	}
	made, err := e.h.RequestForLink(t.Context(), link, nil, testWebhookURL)
	if !errors.Is(err, ErrLinkPurged) || len(made) != 0 {
		t.Fatalf("RequestForLink = %+v, %v; want none, ErrLinkPurged", made, err)
	}
	if n := len(e.klavi.Calls()); n != 0 {
		t.Errorf("klavi calls = %d, want 0", n)
	}
}
