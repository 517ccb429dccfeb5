package perf_test

import (
	"testing"
)

// bar is the most calls one warm request of a route may make. Klavi and S3
// are exact where the request's purpose needs the call.
type bar struct {
	klavi, s3 int // exactly
	dynamodb  int // at most
}

// TestWarmCallCountsWithinBars checks design section 6's call-count bars,
// request by request, on warm instances wired as the functions wire them.
// These are counts of calls, not timings.
func TestWarmCallCountsWithinBars(t *testing.T) {
	bars := map[string]bar{
		"links-api":      {klavi: 1, dynamodb: 1},
		"event-webhook":  {dynamodb: 2},
		"report-webhook": {s3: 1, dynamodb: 2},
		// No bar in the design. Claim the consent (UpdateItem), read the
		// link (Query), record the request (TransactWriteItems): 3, pinned
		// here so that a further call is noticed.
		"report-request": {klavi: 1, dynamodb: 3},
	}
	d := newDeployment(t, nil)
	d.refresh(t)

	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			want, ok := bars[r.name]
			if !ok {
				t.Fatalf("no bar for route %s", r.name)
			}
			in, drv := warmUp(t, d, r)
			for i := range 3 {
				drv.prepare(t.Context(), t)
				before := d.count(in)
				drv.send(t.Context(), t)
				got := d.count(in).minus(before)
				if got.klavi != want.klavi || got.s3 != want.s3 || got.dynamodb > want.dynamodb ||
					got.auth != 0 || got.secrets != 0 || got.otherAWS != 0 {
					t.Errorf("warm request %d: %v; want Klavi %d (/auth 0), DynamoDB <= %d, S3 %d, Secrets Manager reads 0, other AWS 0",
						i+1, got, want.klavi, want.dynamodb, want.s3)
				}
			}
		})
	}

	t.Run("1000 warm requests", func(t *testing.T) {
		p := newTokenPath(t, d)
		before := d.count(p.in)
		p.request(t.Context(), t) // the instance's first request reads the token
		for range requestsPerRun {
			p.request(t.Context(), t)
		}
		got := d.count(p.in).minus(before)
		// Within one token lifetime: the first request's read and nothing
		// after it; no /auth at all, the token comes from the secret.
		if got.auth != 0 || got.secrets > 1 {
			t.Errorf("first request and %d warm requests: %v; want /auth 0 and at most 1 Secrets Manager read (the first request's)",
				requestsPerRun, got)
		}
	})

	t.Run("refresh schedule", func(t *testing.T) {
		period := refreshPeriod(t)
		s := newSchedule(t, period)
		s.advance(t.Context(), t, 3*period, requestsPerRun)
		r := s.run
		// Every scheduled run trades the token in (/refresh) or, with no
		// valid token to trade, authenticates (/auth); the functions
		// themselves make neither call.
		if got := r.calls.auth + r.calls.refresh; got != r.refreshes {
			t.Errorf("/auth + /refresh calls over %v = %d + %d, want %d: only the scheduled token-refresh runs (every %v)",
				r.elapsed, r.calls.auth, r.calls.refresh, r.refreshes, period)
		}
		if r.calls.secrets > r.refreshes {
			t.Errorf("token-secret reads over %v = %d, want at most %d: one per token issued",
				r.elapsed, r.calls.secrets, r.refreshes)
		}
		if got := r.authPer25Min(); got > 1 {
			t.Errorf("/auth calls per 25 minutes = %.2f with token-refresh every %v (template.yaml), want at most 1",
				got, period)
		}
	})
}
