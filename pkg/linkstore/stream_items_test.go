package linkstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// TestItemStreamRecordsMatchDynamoItems writes a link, a report request, a
// report and a purge to a DynamoStore and checks that the records built
// from what the store returns carry the items DynamoDB holds after each
// write: the request and report items exactly, the link item without its
// tax id and attention entry.
func TestItemStreamRecordsMatchDynamoItems(t *testing.T) {
	client, table := newTable(t)
	dyn := linkstore.NewDynamo(client, table, testOptions()...)
	ctx := t.Context()
	item := func(keys map[string]events.DynamoDBAttributeValue) map[string]types.AttributeValue {
		t.Helper()
		key := map[string]types.AttributeValue{}
		for k, v := range keys {
			key[k] = &types.AttributeValueMemberS{Value: v.String()}
		}
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("get item %v: %v", key, err)
		}
		return out.Item
	}
	// linkOnly drops what the link records leave out.
	linkOnly := func(img map[string]string) map[string]string {
		for _, name := range []string{"taxId", "attn", "attnDue"} {
			delete(img, name)
		}
		return img
	}
	same := func(what string, dynamo map[string]types.AttributeValue, rec events.DynamoDBEventRecord, filter func(map[string]string) map[string]string) {
		t.Helper()
		want, got := imageText(listedImage(t, dynamo)), imageText(rec.Change.NewImage)
		if filter != nil {
			want = filter(want)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: stream image mismatch (-dynamo item +record):\n%s", what, diff)
		}
	}

	mustCreate(t, dyn, fullLink("L"))
	created := mustGet(t, dyn, "L")
	rec := linkstoretest.LinkStreamRecord(nil, *created, "1")
	if rec.EventName != "INSERT" || rec.Change.OldImage != nil {
		t.Errorf("new link: %s record with old image %v, want INSERT without", rec.EventName, rec.Change.OldImage)
	}
	same("link", item(rec.Change.Keys), rec, linkOnly)
	if l, ok := linkstore.LinkFromStreamImage(rec.Change.NewImage); !ok || string(l.ExternalInfo) != string(created.ExternalInfo) {
		t.Errorf("LinkFromStreamImage = %+v, %v; want the link's externalInfo", l, ok)
	}

	if err := dyn.RecordReportRequest(ctx, "L", linkstore.ReportRequest{
		RequestID: "R", InstitutionCode: "260", Products: []string{"pf_checking_account", "pf_credit_card"},
		RequestedAt: t0.Add(time.Minute), Trigger: linkstore.TriggerManual,
	}); err != nil {
		t.Fatalf("record report request: %v", err)
	}
	req := mustGet(t, dyn, "L").ReportRequests[0]
	rec = linkstoretest.RequestStreamRecord("L", req, "2")
	same("request", item(rec.Change.Keys), rec, nil)
	if _, r, ok := linkstore.ReportRequestFromStreamImage(rec.Change.NewImage); !ok || !cmp.Equal(r, req) {
		t.Errorf("ReportRequestFromStreamImage = %+v, %v; want %+v", r, ok, req)
	}

	if err := dyn.RecordReport(ctx, "L", linkstore.Report{
		ProductReportID: "P", ProductName: "pf_checking_account", RequestID: "R", ObjectKey: "reports/L/P.json",
		Code: 200, Bytes: 1234, SHA256: "ab12", ReceivedAt: t0.Add(2 * time.Minute),
	}); err != nil {
		t.Fatalf("record report: %v", err)
	}
	rep := mustGet(t, dyn, "L").Reports[0]
	rec = linkstoretest.ReportStreamRecord("L", rep, "3")
	same("report", item(rec.Change.Keys), rec, nil)
	if _, r, ok := linkstore.ReportFromStreamImage(rec.Change.NewImage); !ok || !cmp.Equal(r, rep) {
		t.Errorf("ReportFromStreamImage = %+v, %v; want %+v", r, ok, rep)
	}

	was, err := dyn.Purge(ctx, "L", t0.Add(3*time.Minute))
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	tomb := mustGet(t, dyn, "L")
	rec = linkstoretest.LinkStreamRecord(was, *tomb, "4")
	if rec.EventName != "MODIFY" {
		t.Errorf("purge: %s record, want MODIFY", rec.EventName)
	}
	same("tombstone", item(rec.Change.Keys), rec, linkOnly)
	if _, ok := rec.Change.OldImage["taxId"]; ok {
		t.Error("purge record's old image carries the tax id")
	}
	if l, ok := linkstore.LinkFromStreamImage(rec.Change.NewImage); !ok || !l.PurgedAt.Equal(tomb.PurgedAt) || l.ExternalInfo != nil {
		t.Errorf("tombstone read back = %+v, %v; want purged at %s, no externalInfo", l, ok, tomb.PurgedAt)
	}
}

// listedImage is streamImage for items that also hold lists of strings.
func listedImage(t *testing.T, it map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	plain := map[string]types.AttributeValue{}
	img := map[string]events.DynamoDBAttributeValue{}
	for k, v := range it {
		l, ok := v.(*types.AttributeValueMemberL)
		if !ok {
			plain[k] = v
			continue
		}
		var out []events.DynamoDBAttributeValue
		for _, e := range l.Value {
			out = append(out, events.NewStringAttribute(e.(*types.AttributeValueMemberS).Value))
		}
		img[k] = events.NewListAttribute(out)
	}
	for k, v := range streamImage(t, plain) {
		img[k] = v
	}
	return img
}

// listText spells out a list attribute for imageText.
func listText(v events.DynamoDBAttributeValue) string {
	var s []string
	for _, e := range v.List() {
		s = append(s, e.String())
	}
	return fmt.Sprintf("L:%q", s)
}
