package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

const (
	reportsKind = string(linkstore.AwaitingReports)
	consentKind = string(linkstore.AwaitingConsent)
)

var (
	errKlaviDown = &klavi.APIError{HTTPStatus: 503, Endpoint: "GET /data/v1/consents"}
	errPermanent = fmt.Errorf("ask klavi: %w", reports.ErrPermanent)
	errInFlight  = fmt.Errorf("claim: %w", reports.ErrInProgress)
	errTemporary = errors.New("klavi: rate limited")
)

// authorisedAndRequested is a link whose consent c1 was authorised at t0
// and whose stream request went out a minute later; no report came.
func authorisedAndRequested(t *testing.T, e *env) {
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
	e.requested(t, "l1", "c1", "req-stream", t0.Add(time.Minute))
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env)
		at    time.Duration // run at t0+at
		// want
		actions     map[Action]int
		klaviCalls  int
		requests    []requestCall
		attention   map[string]string // link -> kind, "" cleared
		consents    map[string]consentView
		linkStatus  string // of l1, when set
		wantSummary Summary
		wantErr     bool
	}{
		{
			name: "authorisation lost on a created link: consent fixed, reports requested once",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.set(klaviConsent("l1", "c1", "authorised", t0.Add(5*time.Minute)))
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionReportRequested: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
			consents:   map[string]consentView{"c1": {klavi.ConsentAuthorised, "req-1"}},
			linkStatus: linkstore.StatusReportsRequested,
		},
		{
			name: "second consent's authorisation lost on a link awaiting reports",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.klavi.set(
					klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0),
					klaviConsent("l1", "c2", klavi.ConsentAuthorised, t0.Add(2*time.Minute)),
				)
			},
			at:         20 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionReportRequested: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c2", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
			consents: map[string]consentView{
				"c1": {klavi.ConsentAuthorised, "req-stream"},
				"c2": {klavi.ConsentAuthorised, "req-1"},
			},
		},
		{
			name: "authorised but the stream never requested",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
			},
			at:         16 * time.Minute,
			actions:    map[Action]int{ActionReportRequested: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
			consents:   map[string]consentView{"c1": {klavi.ConsentAuthorised, "req-1"}},
		},
		{
			name: "business link asks Klavi by CNPJ",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDBusiness, cnpj)
				c := klaviConsent("l1", "c1", klavi.ConsentRejected, t0.Add(time.Minute))
				c.PersonalTaxID, c.BusinessTaxID = "", cnpj
				e.klavi.set(c)
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{"c1": {Status: klavi.ConsentRejected}},
			linkStatus: linkstore.StatusRejected,
		},
		{
			name: "reports present and every authorised consent requested: cleared without asking Klavi",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.report(t, "l1", "req-stream", t0.Add(3*time.Minute))
			},
			at:         30 * time.Minute,
			actions:    map[Action]int{ActionAttentionCleared: 1},
			attention:  map[string]string{"l1": ""},
			linkStatus: linkstore.StatusReportsReceived,
		},
		{
			name: "reports present but a later consent has no request: requested, kept",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.report(t, "l1", "req-stream", t0.Add(3*time.Minute))
				// A later authorisation whose stream request never happened.
				e.event(t, "l1", "c2", klavi.ConsentAuthorised, t0.Add(4*time.Minute))
			},
			at:         30 * time.Minute,
			actions:    map[Action]int{ActionReportRequested: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c2", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
			consents: map[string]consentView{
				"c1": {klavi.ConsentAuthorised, "req-stream"},
				"c2": {klavi.ConsentAuthorised, "req-1"},
			},
			linkStatus: linkstore.StatusReportsReceived,
		},
		{
			name: "reports present, auto request off: cleared without asking Klavi",
			setup: func(t *testing.T, e *env) {
				e.cfg.AutoRequest = false
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.report(t, "l1", "pushed", t0.Add(3*time.Minute))
			},
			at:        30 * time.Minute,
			actions:   map[Action]int{ActionAttentionCleared: 1},
			attention: map[string]string{"l1": ""},
		},
		{
			name: "Klavi down: counted, attention kept, run fails",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.failFor(cpfA, errKlaviDown)
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionKlaviFailed: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": consentKind},
			wantErr:    true,
		},
		{
			name: "Klavi fails for one link: the others go on and the run succeeds",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.createLink(t, "l2", linkstore.TaxIDPersonal, cpfB)
				e.klavi.failFor(cpfA, errKlaviDown)
			},
			at:          31 * time.Minute,
			actions:     map[Action]int{ActionKlaviFailed: 1, ActionAttentionCleared: 1},
			klaviCalls:  2,
			attention:   map[string]string{"l1": consentKind, "l2": ""},
			wantSummary: Summary{Due: 2, Reconciled: 1, Failed: 1},
		},
		{
			name: "expired link without consents: cleared",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{},
			linkStatus: linkstore.StatusExpired,
		},
		{
			name: "consents of the person's other links are not applied",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.set(klaviConsent("l9", "c9", klavi.ConsentAuthorised, t0),
					klaviConsent("", "c8", klavi.ConsentAuthorised, t0))
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{},
			linkStatus: linkstore.StatusExpired,
		},
		{
			name: "consent still on its way at Klavi: kept",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAwaitingAuthorisation, t0.Add(29*time.Minute)))
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionConsentPending: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": consentKind},
			consents:   map[string]consentView{"c1": {Status: klavi.ConsentAwaitingAuthorisation}},
		},
		{
			name: "consent on its way for longer than GiveUpAfter: given up",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentStarted, t0.Add(time.Minute))
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentStarted, t0.Add(time.Minute)))
			},
			at:         8 * 24 * time.Hour,
			actions:    map[Action]int{ActionConsentPending: 1, ActionGaveUp: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
		},
		{
			name: "link without a tax id: cleared without asking Klavi",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDUnknown, "")
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionNoTaxID: 1, ActionAttentionCleared: 1},
			attention:  map[string]string{"l1": ""},
			linkStatus: linkstore.StatusExpired,
		},
		{
			name: "consent revoked at Klavi: fixed, no request, cleared",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentRevoked, t0.Add(10*time.Minute)))
			},
			at:         20 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{"c1": {klavi.ConsentRevoked, "req-stream"}},
			linkStatus: linkstore.StatusRevoked,
		},
		{
			name: "reports missing after the request: no second request, cleared",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
			},
			at:         20 * time.Minute,
			actions:    map[Action]int{ActionReportsMissing: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{"c1": {klavi.ConsentAuthorised, "req-stream"}},
		},
		{
			name: "request younger than ReconcileAfter: deferred without asking Klavi",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.requested(t, "l1", "c1", "req-stream", t0.Add(10*time.Minute))
			},
			at:        16 * time.Minute,
			actions:   map[Action]int{ActionDeferred: 1},
			attention: map[string]string{"l1": reportsKind},
		},
		{
			name: "Klavi told an older state than the store holds: store kept",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAwaitingAuthorisation, t0.Add(-time.Minute)))
			},
			at:         20 * time.Minute,
			actions:    map[Action]int{ActionConsentStale: 1, ActionReportsMissing: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{"c1": {klavi.ConsentAuthorised, "req-stream"}},
		},
		{
			name: "request refused for good: cleared for an operator",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
				e.req.errFor = map[string]error{"c1": errPermanent}
			},
			at:         16 * time.Minute,
			actions:    map[Action]int{ActionRequestRejected: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": ""},
		},
		{
			name: "request refused after the sweep recovered the authorisation: kept for the look the authorisation asks for",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
				e.req.errFor = map[string]error{"c1": errPermanent}
			},
			at:         31 * time.Minute,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionRequestRejected: 1, ActionAttentionRearmed: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
		},
		{
			name: "consent authorised while the sweep settles the link: its entry survives",
			setup: func(t *testing.T, e *env) {
				authorisedAndRequested(t, e)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
				e.store.beforeClear = func() {
					e.store.beforeClear = nil
					e.event(t, "l1", "c2", klavi.ConsentAuthorised, e.now)
				}
			},
			at:         20 * time.Minute,
			actions:    map[Action]int{ActionReportsMissing: 1, ActionAttentionRearmed: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": reportsKind},
			consents: map[string]consentView{
				"c1": {klavi.ConsentAuthorised, "req-stream"},
				"c2": {Status: klavi.ConsentAuthorised},
			},
		},
		{
			name: "request failed for now: kept and the run fails",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
				e.req.errFor = map[string]error{"c1": errTemporary}
			},
			at:         16 * time.Minute,
			actions:    map[Action]int{ActionRequestFailed: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
			wantErr:    true,
		},
		{
			name: "request in progress elsewhere: kept",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
				e.req.errFor = map[string]error{"c1": errInFlight}
			},
			at:         16 * time.Minute,
			actions:    map[Action]int{ActionRequestInProgress: 1},
			klaviCalls: 1,
			requests:   []requestCall{{"l1", "c1", linkstore.TriggerReconcile}},
			attention:  map[string]string{"l1": reportsKind},
		},
		{
			name: "store down: the run fails",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.store.listErr = errors.New("dynamodb: service unavailable")
			},
			at: 31 * time.Minute,
			// One failed listing per kind of entry.
			actions:   map[Action]int{ActionStoreFailed: 4},
			attention: map[string]string{"l1": consentKind},
			wantErr:   true,
		},
		{
			name: "reading the link fails: counted and kept",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.store.getErr = errors.New("dynamodb: throttled")
			},
			at:        31 * time.Minute,
			actions:   map[Action]int{ActionStoreFailed: 1},
			attention: map[string]string{"l1": consentKind},
			wantErr:   true,
		},
		{
			name: "clearing fails: counted, kept, never given up on in a loop",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentStarted, t0.Add(time.Minute)))
				e.store.clearErr = errors.New("dynamodb: throttled")
			},
			at:         8 * 24 * time.Hour,
			actions:    map[Action]int{ActionConsentFixed: 1, ActionConsentPending: 1, ActionGaveUp: 1, ActionStoreFailed: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": consentKind},
			wantErr:    true,
		},
		{
			name: "auto request off: nothing requested, missing reports reported",
			setup: func(t *testing.T, e *env) {
				e.cfg.AutoRequest = false
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
				e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
				e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
			},
			at:         16 * time.Minute,
			actions:    map[Action]int{ActionReportsMissing: 1, ActionAttentionCleared: 1},
			klaviCalls: 1,
			attention:  map[string]string{"l1": ""},
			consents:   map[string]consentView{"c1": {Status: klavi.ConsentAuthorised}},
		},
		{
			name: "nothing due yet",
			setup: func(t *testing.T, e *env) {
				e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
			},
			at:        29 * time.Minute,
			actions:   map[Action]int{},
			attention: map[string]string{"l1": consentKind},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(t, e)
			e.now = t0.Add(tc.at)

			sum, err := e.run(t)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("Run error = %v, want error: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(sum.Actions, tc.actions); diff != "" {
				t.Errorf("actions (-got +want):\n%s", diff)
			}
			for a, n := range tc.actions {
				if got := e.metrics.Sum(metricActions, map[string]string{dimAction: string(a)}); got != float64(n) {
					t.Errorf("metric %s{Action=%s} = %v, want %d", metricActions, a, got, n)
				}
			}
			if got := len(e.klavi.Calls()); got != tc.klaviCalls {
				t.Errorf("Klavi calls = %d, want %d", got, tc.klaviCalls)
			}
			if diff := cmp.Diff(e.req.Calls(), tc.requests); diff != "" {
				t.Errorf("report requests (-got +want):\n%s", diff)
			}
			for id, want := range tc.attention {
				if got := e.attention(t, id); got != want {
					t.Errorf("attention of %s = %q, want %q", id, got, want)
				}
			}
			if tc.consents != nil {
				if diff := cmp.Diff(e.consents(t, "l1"), tc.consents); diff != "" {
					t.Errorf("consents of l1 (-got +want):\n%s", diff)
				}
			}
			if tc.linkStatus != "" {
				if got := e.link(t, "l1").Status(e.now); got != tc.linkStatus {
					t.Errorf("status of l1 = %s, want %s", got, tc.linkStatus)
				}
			}
			if tc.wantSummary.Due != 0 {
				sum.Actions, tc.wantSummary.Actions = nil, nil
				if diff := cmp.Diff(sum, tc.wantSummary); diff != "" {
					t.Errorf("summary (-got +want):\n%s", diff)
				}
			}
		})
	}
}

// One consent's report does not end the link's reconciliation: with
// consents A and B authorised, B's automatic request failed and A's report
// arrived, the sweep still requests for B, and only then takes the link off
// the list.
func TestRunReportOfOneConsentKeepsOthersReconciled(t *testing.T) {
	e := newEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "a", klavi.ConsentAuthorised, t0)
	e.event(t, "l1", "b", klavi.ConsentAuthorised, t0)
	e.requested(t, "l1", "a", "req-a", t0.Add(time.Minute))
	// b's stream request failed: it has none and is left to the sweep.
	e.report(t, "l1", "req-a", t0.Add(3*time.Minute))
	e.klavi.set(klaviConsent("l1", "a", klavi.ConsentAuthorised, t0), klaviConsent("l1", "b", klavi.ConsentAuthorised, t0))

	e.now = t0.Add(20 * time.Minute)
	first, err := e.run(t)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if diff := cmp.Diff(first.Actions, map[Action]int{ActionReportRequested: 1}); diff != "" {
		t.Errorf("first run actions (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(e.req.Calls(), []requestCall{{"l1", "b", linkstore.TriggerReconcile}}); diff != "" {
		t.Errorf("report requests (-got +want):\n%s", diff)
	}
	if got := e.attention(t, "l1"); got != reportsKind {
		t.Errorf("attention after the request = %q, want %q", got, reportsKind)
	}

	// Every authorised consent now has its request and the link has a
	// report: the next run takes it off without asking Klavi.
	e.now = e.now.Add(time.Minute)
	second, err := e.run(t)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if diff := cmp.Diff(second.Actions, map[Action]int{ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("second run actions (-got +want):\n%s", diff)
	}
	if got := e.attention(t, "l1"); got != "" {
		t.Errorf("attention after the second run = %q, want none", got)
	}
	if got := len(e.klavi.Calls()); got != 1 {
		t.Errorf("Klavi calls = %d, want 1", got)
	}
}

// Klavi's filter asks by the link's own tax id and link id.
func TestRunAsksKlaviByTaxIDAndLink(t *testing.T) {
	e := newEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.createLink(t, "l2", linkstore.TaxIDBusiness, cnpj)
	e.now = t0.Add(31 * time.Minute)
	if _, err := e.run(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []klavi.ConsentFilter{
		{PersonalTaxID: cpfA, LinkID: "l1"},
		{BusinessTaxID: cnpj, LinkID: "l2"},
	}
	if diff := cmp.Diff(e.klavi.Calls(), want); diff != "" {
		t.Errorf("Klavi filters (-got +want):\n%s", diff)
	}
}

// A lost authorisation is recovered once: the same sweep again does
// nothing, and the later look at the link reports missing reports rather
// than asking a second time.
func TestRunTwiceRequestsOnce(t *testing.T) {
	e := newEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0.Add(5*time.Minute)))
	e.now = t0.Add(31 * time.Minute)

	first, err := e.run(t)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if diff := cmp.Diff(first.Actions, map[Action]int{ActionConsentFixed: 1, ActionReportRequested: 1}); diff != "" {
		t.Errorf("first run actions (-got +want):\n%s", diff)
	}

	again, err := e.run(t)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if diff := cmp.Diff(again, Summary{Actions: map[Action]int{}}); diff != "" {
		t.Errorf("second run at the same time (-got +want):\n%s", diff)
	}

	// The recovered authorisation made the link due again a grace period
	// later; by then ReconcileAfter has passed since the request.
	e.now = e.now.Add(linkstore.DefaultReportGrace + time.Minute)
	later, err := e.run(t)
	if err != nil {
		t.Fatalf("later run: %v", err)
	}
	if diff := cmp.Diff(later.Actions, map[Action]int{ActionReportsMissing: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("later run actions (-got +want):\n%s", diff)
	}
	if got := len(e.req.Calls()); got != 1 {
		t.Errorf("report requests = %d, want 1", got)
	}
	if got := len(e.klavi.Calls()); got != 2 {
		t.Errorf("Klavi calls = %d, want 2", got)
	}
	last, err := e.run(t)
	if err != nil || last.Due != 0 {
		t.Errorf("last run = %+v, %v; want nothing due", last, err)
	}
}

func TestRunLimit(t *testing.T) {
	e := newEnv(t)
	// l1 awaits reports (due t0+15m); l2, l3 await consent (due t0+30m).
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.event(t, "l1", "c1", klavi.ConsentAuthorised, t0)
	e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0))
	e.createLink(t, "l2", linkstore.TaxIDPersonal, cpfA)
	e.createLink(t, "l3", linkstore.TaxIDPersonal, cpfA)
	e.cfg.Limit = 2
	e.now = t0.Add(31 * time.Minute)

	sum, err := e.run(t)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sum.Actions = nil
	if diff := cmp.Diff(sum, Summary{Due: 2, More: true, Reconciled: 2}); diff != "" {
		t.Errorf("summary (-got +want):\n%s", diff)
	}
	got := map[string]string{"l1": e.attention(t, "l1"), "l2": e.attention(t, "l2"), "l3": e.attention(t, "l3")}
	// Earliest due first, across kinds: l1 (requested, kept), l2 (cleared).
	want := map[string]string{"l1": reportsKind, "l2": "", "l3": consentKind}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("attention after the first run (-got +want):\n%s", diff)
	}

	// l1 is still due (its request is younger than ReconcileAfter, so it
	// is deferred); l3 now fits in the limit.
	sum, err = e.run(t)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeferred: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("second run actions (-got +want):\n%s", diff)
	}
	if sum.More || e.attention(t, "l3") != "" {
		t.Errorf("second run = %+v, attention of l3 %q; want l3 done", sum, e.attention(t, "l3"))
	}
}

func TestRunStopsAtDeadline(t *testing.T) {
	t.Run("no time left at the start", func(t *testing.T) {
		e := newEnv(t)
		e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
		e.now = t0.Add(31 * time.Minute)
		e.cfg.Reserve = time.Hour
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		sum, err := e.reconciler().Run(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run error = %v, want DeadlineExceeded", err)
		}
		if len(e.klavi.Calls()) != 0 || e.attention(t, "l1") != consentKind {
			t.Errorf("Klavi calls %d, attention %q; want none and the link still due", len(e.klavi.Calls()), e.attention(t, "l1"))
		}
		if sum.Failed != 0 {
			t.Errorf("Failed = %d, want 0: the deadline is not a link's failure", sum.Failed)
		}
	})
	t.Run("deadline during the first link", func(t *testing.T) {
		e := newEnv(t)
		e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
		e.createLink(t, "l2", linkstore.TaxIDPersonal, cpfB)
		e.now = t0.Add(31 * time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e.klavi.onCall = cancel

		sum, err := e.reconciler().Run(ctx)
		if err == nil {
			t.Error("Run error = nil, want one: no link was reconciled")
		}
		sum.Actions = nil
		if diff := cmp.Diff(sum, Summary{Due: 2, Left: 2}); diff != "" {
			t.Errorf("summary (-got +want):\n%s", diff)
		}
		if got := len(e.klavi.Calls()); got != 1 {
			t.Errorf("Klavi calls = %d, want 1", got)
		}
		for _, id := range []string{"l1", "l2"} {
			if got := e.attention(t, id); got != consentKind {
				t.Errorf("attention of %s = %q, want it kept", id, got)
			}
		}
		if got := e.metrics.Sum(metricActions, map[string]string{dimAction: string(ActionKlaviFailed)}); got != 0 {
			t.Errorf("klavi_failed = %v, want 0", got)
		}
	})
}

func TestRunLogsEveryAction(t *testing.T) {
	e := newEnv(t)
	e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
	e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0.Add(5*time.Minute)))
	e.now = t0.Add(31 * time.Minute)
	if _, err := e.run(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	type line struct {
		Action string `json:"action"`
		LinkID string `json:"linkId"`
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if l.Action != "" {
			got = append(got, l)
		}
	}
	want := []line{{"consent_fixed", "l1"}, {"report_requested", "l1"}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("action log lines (-got +want):\n%s", diff)
	}
}

func TestSyntheticEventID(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 19, 19, 253e6, time.FixedZone("BRT", -3*3600))
	got := syntheticEventID("c1", "AUTHORISED", at)
	if want := "reconcile:c1:AUTHORISED:2026-03-01T12:19:19.253Z"; got != want {
		t.Errorf("syntheticEventID = %q, want %q", got, want)
	}
	if other := syntheticEventID("c1", "REVOKED", at); other == got {
		t.Errorf("another status gives the same id %q", other)
	}
}

func loadSchedule(t *testing.T) events.EventBridgeEvent {
	t.Helper()
	raw, err := os.ReadFile("../../events/reconcile-schedule.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" || len(ev.Resources) != 1 {
		t.Fatalf("fixture = %+v, want an EventBridge scheduled event", ev)
	}
	return ev
}

func TestHandleScheduleFixture(t *testing.T) {
	ev := loadSchedule(t)
	tests := []struct {
		name    string
		klavi   error
		wantErr bool
	}{
		{name: "lost authorisation recovered"},
		{name: "Klavi down", klavi: errKlaviDown, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.createLink(t, "l1", linkstore.TaxIDPersonal, cpfA)
			e.klavi.set(klaviConsent("l1", "c1", klavi.ConsentAuthorised, t0.Add(5*time.Minute)))
			if tc.klavi != nil {
				e.klavi.failFor(cpfA, tc.klavi)
			}
			e.now = t0.Add(31 * time.Minute)

			err := e.reconciler().Handle(t.Context(), ev)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("Handle error = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if !errors.Is(err, klavi.ErrServer) {
					t.Errorf("Handle error = %v, want it to wrap Klavi's", err)
				}
				if !strings.Contains(e.logs.String(), `"error_code":"reconcile_failed"`) {
					t.Errorf("no error_code in the logs:\n%s", e.logs.String())
				}
				return
			}
			if got := len(e.req.Calls()); got != 1 {
				t.Errorf("report requests = %d, want 1", got)
			}
		})
	}
}
