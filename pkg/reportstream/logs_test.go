package reportstream

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports/reportstest"
)

// TestLogsNeverCarryTaxID drives every logging branch of the report
// service and its callers with tax ids in the store and scans the JSON log output for them.
func TestLogsNeverCarryTaxID(t *testing.T) {
	e := newEnv(t, nil)
	business := personalLink("l-pj")
	business.TaxIDType, business.TaxID = linkstore.TaxIDBusiness, testCNPJ
	seed(t, e.store.MemoryStore, personalLink("l-pf"), authorised("c-1", "260"), authorised("c-2", "341"))
	seed(t, e.store.MemoryStore, business, authorised("c-3", "260"))
	e.klavi.Answer = func(n int, _ klavi.TaxIDKind, r klavi.InstitutionDataRequest) (*klavi.ReportRequestAccepted, error) {
		switch {
		case r.InstitutionCode == "341":
			return nil, reportstest.APIError(416, 4001)
		case n%3 == 0:
			return nil, errors.New("connection reset")
		case n%2 == 0:
			return &klavi.ReportRequestAccepted{}, nil // no request id
		}
		return &klavi.ReportRequestAccepted{RequestID: "req"}, nil
	}
	ctx := t.Context()
	for _, c := range []struct{ link, consent string }{{"l-pf", "c-1"}, {"l-pf", "c-2"}, {"l-pj", "c-3"}} {
		_, _ = e.h.Handle(ctx, batch(consentRecord("1", "MODIFY", c.link, c.consent, "", klavi.ConsentAuthorised)))
	}
	req := loadHTTP(t, "links-api-reports.json")
	for _, id := range []string{"l-pf", "l-pj", "missing"} {
		req.PathParameters["linkId"] = id
		resp, _ := e.api.Handle(ctx, req)
		checkNoTaxID(t, "response", resp.Body)
	}
	e.store.RecordErr = errors.New("dynamodb: throttled")
	_, _ = e.api.Handle(ctx, req)
	e.store.RecordErr = nil
	for _, id := range []string{"l-pf", "l-pj"} {
		_, _ = e.h.Handle(ctx, batch(consentRecord("2", "MODIFY", id, "c-1", klavi.ConsentAuthorised, klavi.ConsentDeletedByUser)))
	}

	logs := e.logs.String()
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		lines++
		if !json.Valid(sc.Bytes()) {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
	}
	for _, msg := range []string{"report request sent", "report request failed permanently", "stream record failed", "manual report request failed", "link purged", "without a requestId"} {
		if !strings.Contains(logs, msg) {
			t.Errorf("logs lack %q; the scan would not cover that branch", msg)
		}
	}
	if lines < 10 {
		t.Errorf("only %d log lines; the scan covers too little", lines)
	}
	checkNoTaxID(t, "logs", logs)
}
