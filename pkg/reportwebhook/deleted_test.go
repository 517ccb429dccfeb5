package reportwebhook

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// noRevocations is Klavi's revoke endpoint for a link with no consent: the
// deletion must not call it.
type noRevocations struct{ t *testing.T }

func (n noRevocations) RevokeConsent(_ context.Context, consentID string) error {
	n.t.Errorf("revoke %s asked of Klavi for a link without consents", consentID)
	return nil
}

// keysUnder lists the bucket's objects under prefix.
func (a *awsEnv) keysUnder(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := a.s3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("list objects under %s: %v", prefix, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// After DELETE /links/{linkId} (the deletion service with the route's
// purge, against DynamoDB and S3 in the emulator), a report for the link,
// a new one or a redelivery of one stored before, is acknowledged so that
// Klavi stops, and kept nowhere: not under reports/<linkId>/, not under
// unmatched/, not on the link, which stays DELETED.
func TestReportAfterDeleteNeitherKeptNorResurrecting(t *testing.T) {
	a := newAWSEnv(t)
	ctx := t.Context()
	first := fixture(t)
	if resp, out := a.call(t, signed(first, []byte(first.Body), testSecret)); resp.StatusCode != http.StatusOK || out["stored"] != true {
		t.Fatalf("report before the delete = %d %s, want 200 stored", resp.StatusCode, resp.Body)
	}

	purger := reports.New(nil, a.store, reportstore.New(a.s3, a.bucket, reportstore.Options{}), reports.Config{Now: a.h.now})
	svc := revocation.New(noRevocations{t}, a.store, purger, revocation.Config{Now: a.h.now})
	link, err := a.store.GetLink(ctx, fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if status, err := svc.Delete(ctx, link); err != nil || status != linkstore.StatusDeleted {
		t.Fatalf("Delete = %q, %v; want DELETED", status, err)
	}
	if n := a.count(t); n != 0 {
		t.Fatalf("objects after the delete = %d, want 0", n)
	}

	later := klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size: 4 << 10, Seed: 7, ProductName: "pf_credit_card", ProductReportID: "rep-after-delete",
		RequestID: "req-1", LinkID: fixtureLink, EnquiryCPF: fixtureCPF,
	})
	for name, req := range map[string]struct{ body []byte }{
		"redelivery": {[]byte(first.Body)},
		"new report": {later},
	} {
		resp, out := a.call(t, signed(fixture(t), req.body, testSecret))
		if resp.StatusCode != http.StatusOK || out["stored"] == true {
			t.Errorf("%s after the delete = %d %s, want 200, not stored", name, resp.StatusCode, resp.Body)
		}
	}

	for _, prefix := range []string{"reports/" + fixtureLink + "/", "unmatched/"} {
		if keys := a.keysUnder(t, prefix); len(keys) != 0 {
			t.Errorf("objects under %s after the delete = %v, want none", prefix, keys)
		}
	}
	l, err := a.store.GetLink(ctx, fixtureLink)
	if err != nil {
		t.Fatalf("GetLink after: %v", err)
	}
	if got := l.Status(a.h.now()); got != linkstore.StatusDeleted || len(l.Reports) != 0 || l.TaxID != "" {
		t.Errorf("link after late reports = status %s, %d reports, tax id kept %v; want a DELETED tombstone", got, len(l.Reports), l.TaxID != "")
	}
	if strings.Contains(a.logs.String(), fixtureCPF) {
		t.Errorf("logs carry the tax id")
	}
}
