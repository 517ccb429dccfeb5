package reportstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

func TestStreamStopsBeforeDeadline(t *testing.T) {
	e := newEnv(t, nil)
	links := []string{"l-1", "l-2", "l-3", "l-4", "l-5"}
	var records []events.DynamoDBEventRecord
	for i, id := range links {
		seed(t, e.store.MemoryStore, personalLink(id), authorised("c-"+id, "260"))
		records = append(records, consentRecord(fmt.Sprint(i+1), "MODIFY", id, "c-"+id, klavi.ConsentAwaitingLGPDAuthorisation, klavi.ConsentAuthorised))
	}
	// Each Klavi call takes 10 s of a 24 s invocation: after two, 4 s are
	// left, less than a record needs (MinCallTime 2 s + RecordReserve 3 s).
	ctx := reportstest.NewBudgetCtx(t, 24*time.Second)
	e.klavi.Answer = func(_ int, _ klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		ctx.Spend(10 * time.Second)
		return &klavi.ReportRequestAccepted{RequestID: "req-" + r.LinkID}, nil
	}

	resp, err := e.h.Handle(ctx, batch(records...))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"3", "4", "5"}, failedSeqs(resp)); diff != "" {
		t.Errorf("failed records mismatch (-want +got):\n%s", diff)
	}
	for _, id := range links {
		c := getLink(t, e.store.MemoryStore, id).Consents[0]
		processed := id == "l-1" || id == "l-2"
		if got := c.RequestID != ""; got != processed {
			t.Errorf("link %s: consent request %q, want recorded %v", id, c.RequestID, processed)
		}
		if !processed && !c.LeaseUntil.IsZero() {
			t.Errorf("link %s: consent claimed until %v by a record that was not started", id, c.LeaseUntil)
		}
	}
	if got := e.metrics.Sum("StreamRecordsDeferred", nil); got != 3 {
		t.Errorf("StreamRecordsDeferred = %v, want 3", got)
	}

	// Lambda delivers the failed records again; none was lost.
	resp, err = e.h.Handle(t.Context(), batch(records[2:]...))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry: failed %v, error %v; want none", failedSeqs(resp), err)
	}
	var asked []string
	for _, c := range e.klavi.Calls() {
		asked = append(asked, c.Req.LinkID)
	}
	if diff := cmp.Diff(links, asked); diff != "" {
		t.Errorf("klavi asked for (-want +got):\n%s", diff)
	}
	for _, id := range links {
		if got := getLink(t, e.store.MemoryStore, id).Consents[0].RequestID; got != "req-"+id {
			t.Errorf("link %s: consent request %q, want req-%s", id, got, id)
		}
	}
}
