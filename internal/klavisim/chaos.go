package klavisim

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Chaos makes the simulator misbehave the ways a partner integration must
// survive. The zero value behaves. Every random choice is a function of
// Options.Seed and of what it applies to (an event id, a report id, the
// ordinal of an API request), so runs with equal seeds and equal calls make
// equal choices.
type Chaos struct {
	// Duplicate sends each webhook delivery this many extra times,
	// concurrently with the original. Each copy is a delivery of its own,
	// with its own retries, and carries the same eventId or
	// productReportId.
	Duplicate int

	// OutOfOrder holds the events of one link back for this long from
	// the first one held, then delivers what was held in a shuffled order
	// that is never the original one (when there are two or more). A
	// consent_authorised can then arrive after a later consent_revoked.
	// Wait releases held events at once.
	OutOfOrder time.Duration

	// DropFirstAttempt is the fraction of deliveries whose first attempt
	// is not sent: the retries must recover them.
	DropFirstAttempt float64

	// DropForever is the fraction of deliveries never sent at all, which
	// only a reconciliation (GET /consents) can make up for.
	DropForever float64

	// FailReports is the fraction of products whose generation fails:
	// product_generated_failed is emitted instead of a report.
	FailReports float64

	// SlowAnswer delays every data API answer (paths under /data/),
	// giving up without an answer when the client cancels first.
	SlowAnswer time.Duration

	// FailAPI is the fraction of data API requests answered 503 before
	// routing and authentication.
	FailAPI float64
}

// SetChaos replaces the chaos settings. Deliveries already under way keep
// the settings they started with.
func (s *Simulator) SetChaos(c Chaos) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.chaos = c
}

// reorder returns held in a seeded shuffled order, never the original one
// when it has two jobs or more.
func reorder(seed int64, held []*job) []*job {
	out := append([]*job(nil), held...)
	if len(out) < 2 {
		return out
	}
	ids := make([]string, 0, len(out)+1)
	ids = append(ids, "reorder")
	for _, j := range out {
		ids = append(ids, j.id)
	}
	rng := rand.New(rand.NewPCG(uint64(seedFor(seed, ids...)), 0))
	rng.Shuffle(len(out), func(i, k int) { out[i], out[k] = out[k], out[i] })
	same := true
	for i := range out {
		same = same && out[i] == held[i]
	}
	if same {
		// A rotation by one is never the identity.
		out = append(out[1:], out[0])
	}
	return out
}

// applyAPIChaos applies SlowAnswer and FailAPI to a data API request. It
// reports whether it answered (or gave up), with the status written, 0 for
// none.
func (s *Simulator) applyAPIChaos(w http.ResponseWriter, r *http.Request) (int, bool) {
	if !strings.HasPrefix(r.URL.Path, "/data/") {
		return 0, false
	}
	h := s.hooks
	h.mu.Lock()
	ch := h.chaos
	if ch.SlowAnswer <= 0 && ch.FailAPI <= 0 {
		h.mu.Unlock()
		return 0, false
	}
	h.apiSeq++
	n := h.apiSeq
	h.mu.Unlock()

	if ch.SlowAnswer > 0 && !sleepCtx(r.Context(), ch.SlowAnswer) {
		return 0, true
	}
	if chance(s.seed, ch.FailAPI, "fail-api", strconv.Itoa(n)) {
		writeError(w, errStatus(http.StatusServiceUnavailable, "injected failure"))
		return http.StatusServiceUnavailable, true
	}
	return 0, false
}
