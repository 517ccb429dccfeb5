package load_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// checkAnswers checks that every request got its route's success status
// and no other, that the server saw exactly the requests the client sent,
// and that it logged no warning or error.
func checkAnswers(tb testing.TB, rec *recorder, logs *logCounter, sent map[string]int) {
	tb.Helper()
	for route, status := range wantStatus() {
		want := map[int]int{status: sent[route]}
		if diff := cmp.Diff(want, rec.statuses(route)); diff != "" {
			tb.Errorf("%s answers by status (-want +got):\n%s", route, diff)
		}
		if diff := cmp.Diff(want, logs.served(route)); diff != "" {
			tb.Errorf("%s requests in the server's access log by status (-want +got):\n%s", route, diff)
		}
	}
	if w := logs.warnings(); len(w) > 0 {
		tb.Errorf("server logged %d warnings or errors, want none:\n%s", len(w), strings.Join(w, "\n"))
	}
}

// checkDedupe checks that each event was applied exactly once over its
// deliveries, however they interleaved, and never taken for a stale one.
func checkDedupe(tb testing.TB, tr *traffic, tallies []eventTally) {
	tb.Helper()
	bad := 0
	for i, e := range tr.events {
		t := &tallies[i]
		got := [4]int64{t.received.Load(), t.applied.Load(), t.duplicates.Load(), t.stale.Load()}
		want := [4]int64{copies, int64(e.changes), int64((copies - 1) * e.changes), 0}
		if got != want {
			if bad++; bad <= maxProblems {
				tb.Errorf("event %s (%s, link %s) over %d deliveries: received, applied, duplicates, stale = %v, want %v",
					e.id, e.name, e.link.linkID, copies, got, want)
			}
		}
	}
	if bad > maxProblems {
		tb.Errorf("... %d events in all were not applied exactly once", bad)
	}
}

// viewDigest is what a link view must show, without its times.
type viewDigest struct {
	LinkID    string
	Status    string
	TaxIDType string
	Consents  []linkapi.ConsentView
	Requests  int
	Reports   []linkapi.ReportView
}

func digestView(v *linkapi.View) viewDigest {
	d := viewDigest{LinkID: v.LinkID, Status: v.Status, TaxIDType: v.TaxIDType, Requests: len(v.ReportRequests)}
	for _, c := range v.Consents {
		d.Consents = append(d.Consents, linkapi.ConsentView{ConsentID: c.ConsentID, InstitutionCode: c.InstitutionCode, Status: c.Status})
	}
	for _, r := range v.Reports {
		d.Reports = append(d.Reports, linkapi.ReportView{ProductName: r.ProductName, ProductReportID: r.ProductReportID, RequestID: r.RequestID, Bytes: r.Bytes})
	}
	slices.SortFunc(d.Reports, func(a, b linkapi.ReportView) int { return strings.Compare(a.ProductReportID, b.ProductReportID) })
	return d
}

func expectedView(l *linkPlan) viewDigest {
	d := viewDigest{LinkID: l.linkID, Status: linkstore.StatusRejected, TaxIDType: "business"}
	if l.personal {
		d.TaxIDType = "personal"
	}
	consent := linkapi.ConsentView{ConsentID: l.consentID, InstitutionCode: l.institution, Status: string(klavi.ConsentRejected)}
	if l.authorised {
		d.Status, consent.Status = linkstore.StatusReportsReceived, string(klavi.ConsentAuthorised)
	}
	d.Consents = []linkapi.ConsentView{consent}
	for _, r := range l.reports {
		d.Reports = append(d.Reports, linkapi.ReportView{ProductName: r.productName, ProductReportID: r.productReportID, RequestID: l.requestID, Bytes: int64(len(r.body))})
	}
	slices.SortFunc(d.Reports, func(a, b linkapi.ReportView) int { return strings.Compare(a.ProductReportID, b.ProductReportID) })
	return d
}

// checkViews checks every link's view against what Klavi sent for it:
// authorised links REPORTS_RECEIVED with each delivered report listed once,
// rejected ones REJECTED with none; no report request (they are off).
func checkViews(tb testing.TB, links []*linkPlan, views []*linkapi.View) {
	tb.Helper()
	bad := 0
	for i, l := range links {
		if views[i] == nil {
			continue // its GET failed, reported by checkAnswers
		}
		if diff := cmp.Diff(expectedView(l), digestView(views[i])); diff != "" {
			if bad++; bad <= maxProblems {
				tb.Errorf("GET /links/%s (-want +got):\n%s", l.linkID, diff)
			}
		}
	}
	if bad > maxProblems {
		tb.Errorf("... %d link views in all differ", bad)
	}
}

// checkTable scans the links table and checks that it holds exactly one
// link item and one consent item per link, one report item per delivered
// report, no report request, and one event marker per change each event
// made (an event naming several products is deduplicated per product).
func checkTable(ctx context.Context, tb testing.TB, be *backend, links []*linkPlan, tr *traffic) {
	tb.Helper()
	want := map[string][]string{}
	for _, l := range links {
		pk := "LINK#" + l.linkID
		want[linkstore.ItemTypeLink] = append(want[linkstore.ItemTypeLink], pk+" #LINK")
		want[linkstore.ItemTypeConsent] = append(want[linkstore.ItemTypeConsent], pk+" CONSENT#"+l.consentID)
		for _, r := range l.reports {
			want[linkstore.ItemTypeReport] = append(want[linkstore.ItemTypeReport], pk+" REPORT#"+r.productReportID)
		}
	}
	wantEvents := map[string]int{}
	for _, e := range tr.events {
		wantEvents[e.id] = e.changes
	}

	got := map[string][]string{}
	gotEvents := map[string]int{}
	pages := dynamodb.NewScanPaginator(dynamodb.NewFromConfig(be.aws), &dynamodb.ScanInput{
		TableName:                aws.String(be.table),
		ProjectionExpression:     aws.String("pk, sk, #type"),
		ExpressionAttributeNames: map[string]string{"#type": "type"},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			tb.Fatalf("scan links table: %v", err)
		}
		for _, item := range page.Items {
			typ, pk, sk := attr(item, "type"), attr(item, "pk"), attr(item, "sk")
			if typ == linkstore.ItemTypeEvent {
				id, _, _ := strings.Cut(strings.TrimPrefix(pk, "EVENT#"), "/")
				gotEvents[id]++
				continue
			}
			got[typ] = append(got[typ], pk+" "+sk)
		}
	}
	for _, keys := range want {
		slices.Sort(keys)
	}
	for _, keys := range got {
		slices.Sort(keys)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Errorf("links table items by type, events aside (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
		tb.Errorf("event markers per event id (-want +got):\n%s", diff)
	}
}

func attr(item map[string]ddbtypes.AttributeValue, name string) string {
	if s, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// checkBucket lists the bucket and checks that it holds exactly one object
// per delivered report, at the report's key, with the bytes sent, and
// nothing else.
func checkBucket(ctx context.Context, tb testing.TB, be *backend, tr *traffic) {
	tb.Helper()
	s3c := s3.NewFromConfig(be.aws)
	want := map[string]*reportPlan{}
	for _, r := range tr.reports {
		want[r.key] = r
	}
	var keys []string
	listed := map[string]int{}
	pages := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(be.bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			tb.Fatalf("list bucket: %v", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			keys = append(keys, key)
			listed[key]++
			r, ok := want[key]
			switch {
			case !ok:
				tb.Errorf("bucket holds %s (%d bytes), which no delivered report should be at", key, aws.ToInt64(o.Size))
			case aws.ToInt64(o.Size) != int64(len(r.body)):
				tb.Errorf("object %s is %d bytes, want the %d sent", key, aws.ToInt64(o.Size), len(r.body))
			}
		}
	}
	var missing []string
	for key := range want {
		if listed[key] == 0 {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		tb.Errorf("bucket lacks %d of %d reports: %s", len(missing), len(want), strings.Join(missing[:min(len(missing), maxProblems)], ", "))
	}
	if len(listed) != len(keys) {
		tb.Errorf("bucket listing repeats %d keys", len(keys)-len(listed))
	}

	var mu sync.Mutex
	var differ []string
	err := each(ctx, len(keys), func(ctx context.Context, i int) error {
		r, ok := want[keys[i]]
		if !ok {
			return nil
		}
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(be.bucket), Key: aws.String(r.key)})
		if err != nil {
			return fmt.Errorf("get %s: %w", r.key, err)
		}
		defer out.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, out.Body); err != nil {
			return fmt.Errorf("read %s: %w", r.key, err)
		}
		if [sha256.Size]byte(h.Sum(nil)) != r.sha256 {
			mu.Lock()
			differ = append(differ, r.key)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("read the bucket: %v", err)
	}
	if len(differ) > 0 {
		tb.Errorf("%d objects differ from the report sent (sha256): %s", len(differ), strings.Join(differ[:min(len(differ), maxProblems)], ", "))
	}
}
