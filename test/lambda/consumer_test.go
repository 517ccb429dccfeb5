package lambda_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

// The deployment's public API as the simulator is told it: its webhooks go
// to these URLs, and the gateway below hands them to the functions.
const (
	apiBase         = "https://abc123.execute-api.sa-east-1.amazonaws.com"
	eventWebhookURL = apiBase + "/webhooks/klavi/events"
)

// The personal data links-api-post.json carries besides the CPF.
const (
	fixtureEmail = "maria@example.com"
	fixturePhone = "+5511987654321"
)

// gateway stands in for API Gateway between the simulator's webhook POSTs
// and the functions: it turns each POST into the HTTP API event of the
// route's fixture, with the simulator's own body and signature headers,
// invokes the function and answers with the function's answer. It is the
// simulator's webhook transport, so no URL needs to resolve.
type gateway struct {
	t  *testing.T
	d  *deployment
	mu sync.Mutex // the emulator serves one invocation at a time
}

func (g *gateway) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	var fn, name string
	switch r.URL.Path {
	case "/webhooks/klavi/events":
		fn, name = fnEventWebhook, "event-webhook-consent-authorised.json"
	case "/webhooks/klavi/reports":
		fn, name = fnReportWebhook, "report-webhook-report.json"
	default:
		return nil, fmt.Errorf("gateway: no route for %s %s", r.Method, r.URL.Path)
	}
	var ev map[string]any
	if err := json.Unmarshal(fixture(g.t, name), &ev); err != nil {
		return nil, err
	}
	headers := ev["headers"].(map[string]any)
	for _, h := range []string{"X-Klavi-Signature", "X-Klavi-Timestamp"} {
		headers[strings.ToLower(h)] = r.Header.Get(h)
	}
	ev["body"] = string(body)
	ev["isBase64Encoded"] = false
	event, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	status, answer := g.d.invokeHTTP(g.t, fn, event)
	g.mu.Unlock()
	return &http.Response{
		Status: http.StatusText(status), StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(answer)),
		ContentLength: int64(len(answer)), Request: r,
	}, nil
}

// consumerFlow is one link through the consumer side: the simulator
// delivers its signed webhooks through the gateway, the table's stream is
// read from the emulator and handed to the report-request and
// integration-events functions as their event source mappings would, and
// the fintech's consumer reads the bus through an SQS queue.
type consumerFlow struct {
	d      *deployment
	stream *awstest.StreamReader
	// records is every stream record delivered, in order.
	records []events.DynamoDBEventRecord

	accessToken string
	linkID      string
	consent     klavisim.Consent
	// stored is each report's bytes as read back from the bucket, by
	// productReportId.
	stored map[string][]byte
	// downloads is each download answer, by productReportId.
	downloads map[string]downloadView
	// published is what the consumer read from the queue.
	published []consumedEvent
}

// downloadView is the 200 body of GET /links/{linkId}/reports/{productReportId}.
type downloadView struct {
	ProductReportID string    `json:"productReportId"`
	ProductName     string    `json:"productName"`
	RequestID       string    `json:"requestId"`
	Code            int       `json:"code"`
	Bytes           int64     `json:"bytes"`
	SHA256          string    `json:"sha256"`
	ReceivedAt      time.Time `json:"receivedAt"`
	URL             string    `json:"url"`
	URLExpiresAt    time.Time `json:"urlExpiresAt"`
}

// apiError is our API's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// consumedEvent is one EventBridge event as the SQS consumer reads it.
type consumedEvent struct {
	Source     string         `json:"source"`
	DetailType string         `json:"detail-type"`
	Detail     map[string]any `json:"detail"`
	raw        string
}

func (c consumedEvent) field(name string) string {
	v, _ := c.Detail[name].(string)
	return v
}

func TestConsumerFlow(t *testing.T) {
	f := &consumerFlow{stored: map[string][]byte{}, downloads: map[string]downloadView{}}
	f.d = deployWith(t, func(d *deployment, o *klavisim.Options) {
		o.EventWebhookURL = eventWebhookURL
		o.GenerateReports = true
		o.WebhookTransport = &gateway{t: t, d: d}
	})
	f.stream = awstest.NewStreamReader(t, f.d.cfg, f.d.table)
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"link and authorisation", f.linkAndAuthorisation},
		{"reports", f.reports},
		{"downloads", f.downloadReports},
		{"revoke", f.revoke},
		{"delete", f.delete},
		{"later deliveries", f.laterDeliveries},
		{"integration events", f.integrationEvents},
		{"logs", f.logs},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; later steps depend on it", step.name)
		}
	}
}

// settle waits for the simulator's webhooks, then hands every new stream
// record to the stream functions, until neither has anything left: a
// report request the stream triggers makes the simulator deliver reports,
// whose writes are records again.
func (f *consumerFlow) settle(t *testing.T) {
	t.Helper()
	for range 10 {
		f.d.sim.Wait()
		recs := f.stream.Read(t)
		if len(recs) == 0 {
			return
		}
		f.records = append(f.records, recs...)
		for _, fn := range []string{fnReportRequest, fnIntegrationEvents} {
			f.deliverStream(t, fn, recs)
		}
	}
	t.Fatal("the stream still has records after 10 rounds")
}

// deliverStream hands recs to a stream function in batches of up to 100,
// as its event source mapping does, and fails on any batch item failure.
func (f *consumerFlow) deliverStream(t *testing.T, fn string, recs []events.DynamoDBEventRecord) {
	t.Helper()
	for batch := range slices.Chunk(recs, 100) {
		payload, err := json.Marshal(events.DynamoDBEvent{Records: batch})
		if err != nil {
			t.Fatal(err)
		}
		out := f.d.invoke(t, fn, payload)
		var resp events.DynamoDBEventResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("%s answer is not a stream batch response: %v\n%s", fn, err, out)
		}
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s batch item failures = %+v, want none\nlogs:\n%s", fn, resp.BatchItemFailures, tail(f.d.fns[fn].Logs()))
		}
	}
}

// route invokes links-api with an HTTP API fixture for the flow's link,
// with the JWT subject sub, and returns the status and body.
func (f *consumerFlow) route(t *testing.T, name, sub string, oldnew ...string) (int, []byte) {
	t.Helper()
	pairs := append([]string{fixtureLinkID, f.linkID, `"sub": "user-123"`, `"sub": "` + sub + `"`}, oldnew...)
	event := fixture(t, name, pairs...)
	if sub != "user-123" && !bytes.Contains(event, []byte(`"sub": "`+sub+`"`)) {
		t.Fatalf("fixture %s has no JWT sub claim to replace", name)
	}
	return f.d.invokeHTTP(t, fnCreateLink, event)
}

// wantError checks an error answer of our API.
func wantError(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || status != wantStatus || e.Error.Code != wantCode || e.Error.Message == "" {
		t.Errorf("%s = %d %s, want %d %s with a message", what, status, body, wantStatus, wantCode)
	}
}

func (f *consumerFlow) linkAndAuthorisation(t *testing.T) {
	d := f.d
	if _, ierr := d.fns[fnTokenRefresh].InvokeFile(t, "events/token-refresh-schedule.json"); ierr != nil {
		t.Fatalf("token-refresh: %v", ierr)
	}
	sec, err := d.sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(d.tokenSecret)})
	if err != nil {
		t.Fatalf("read token secret: %v", err)
	}
	var tok struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(sec.SecretString)), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token secret holds no access token: %v", err)
	}
	f.accessToken = tok.AccessToken

	status, body := d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-post.json"))
	if status != http.StatusCreated {
		t.Fatalf("POST /links = %d %s, want 201", status, body)
	}
	var created struct {
		LinkID string `json:"linkId"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.LinkID == "" {
		t.Fatalf("201 body has no linkId: %v\n%s", err, body)
	}
	f.linkID = created.LinkID
	f.settle(t)

	// The user authorises at the bank; Klavi sends the signed consent
	// event, whose stream record asks for the reports.
	f.consent, err = d.sim.AuthoriseConsent(f.linkID, "260")
	if err != nil {
		t.Fatalf("authorise at the simulator: %v", err)
	}
	f.settle(t)
	if got := attr(d.item(t, "LINK#"+f.linkID, "CONSENT#"+f.consent.ID), "status"); got != "AUTHORISED" {
		t.Fatalf("consent item status = %q, want AUTHORISED", got)
	}
	if n := len(d.sim.ReportRequests()); n != 1 {
		t.Fatalf("simulator accepted %d report requests, want 1", n)
	}
}

func (f *consumerFlow) reports(t *testing.T) {
	d := f.d
	var delivered []string
	for _, dl := range d.sim.Deliveries() {
		if dl.Kind == klavisim.DeliveryReport && dl.Status == http.StatusOK && !slices.Contains(delivered, dl.ID) {
			delivered = append(delivered, dl.ID)
		}
	}
	if len(delivered) == 0 {
		t.Fatal("the simulator delivered no report")
	}
	for _, dl := range d.sim.Deliveries() {
		if dl.Status != http.StatusOK {
			t.Errorf("webhook %s %s answered %d (%s), want 200", dl.Kind, dl.Name, dl.Status, dl.Err)
		}
	}
	for _, it := range d.partition(t, "LINK#"+f.linkID) {
		if !strings.HasPrefix(attr(it, "sk"), "REPORT#") {
			continue
		}
		id := attr(it, "productReportId")
		key := attr(it, "objectKey")
		obj, err := d.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get report object %s: %v", key, err)
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		f.stored[id] = b
	}
	for _, id := range delivered {
		if f.stored[id] == nil {
			t.Errorf("report %s was delivered and is not stored", id)
		}
	}
	if len(f.stored) != len(delivered) {
		t.Errorf("%d reports stored, want the %d delivered", len(f.stored), len(delivered))
	}
}

func (f *consumerFlow) downloadReports(t *testing.T) {
	const download = "links-api-report-download.json"
	for id, stored := range f.stored {
		before := time.Now().UTC().Truncate(time.Second)
		status, body := f.route(t, download, "user-123", "pr-0001-checking", id)
		if status != http.StatusOK {
			t.Fatalf("GET report %s = %d %s, want 200", id, status, body)
		}
		var v downloadView
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("200 body is not the download answer: %v\n%s", err, body)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatal(err)
		}
		wantKeys := []string{"bytes", "code", "productName", "productReportId", "receivedAt", "requestId", "sha256", "url", "urlExpiresAt"}
		if diff := cmp.Diff(wantKeys, slices.Sorted(func(yield func(string) bool) {
			for k := range fields {
				if !yield(k) {
					return
				}
			}
		})); diff != "" {
			t.Errorf("download answer fields (-want +got):\n%s", diff)
		}
		sum := sha256.Sum256(stored)
		if v.ProductReportID != id || v.Bytes != int64(len(stored)) || v.SHA256 != hex.EncodeToString(sum[:]) || v.Code != http.StatusOK {
			t.Errorf("download answer = %+v, want report %s of %d bytes, code 200, sha256 %x", v, id, len(stored), sum)
		}
		if v.RequestID != f.d.sim.ReportRequests()[0].ID {
			t.Errorf("download requestId = %q, want Klavi's %q", v.RequestID, f.d.sim.ReportRequests()[0].ID)
		}
		if v.URLExpiresAt.Before(before.Add(reportURLTTL)) || v.URLExpiresAt.After(time.Now().Add(reportURLTTL)) {
			t.Errorf("urlExpiresAt %v, want REPORT_URL_TTL (%v) from now", v.URLExpiresAt, reportURLTTL)
		}
		u, err := url.Parse(v.URL)
		if err != nil {
			t.Fatalf("url %q: %v", v.URL, err)
		}
		if !strings.HasPrefix(u.Path, "/"+f.d.bucket+"/reports/") {
			t.Errorf("download URL path %s is not in the bucket's reports/", u.Path)
		}
		status, got := fetch(t, v.URL)
		if status != http.StatusOK {
			t.Fatalf("GET download URL = %d %.300s, want 200", status, got)
		}
		gotSum := sha256.Sum256(got)
		if !bytes.Equal(got, stored) || hex.EncodeToString(gotSum[:]) != v.SHA256 {
			t.Errorf("downloaded %d bytes (sha256 %x); want the %d stored bytes with the answer's sha256 %s", len(got), gotSum, len(stored), v.SHA256)
		}
		f.downloads[id] = v
	}

	status, body := f.route(t, download, "user-123", "pr-0001-checking", "no-such-report")
	wantError(t, "GET an unknown report", status, body, http.StatusNotFound, "report_not_found")
	for id := range f.stored {
		status, body = f.route(t, download, "user-999", "pr-0001-checking", id)
		wantError(t, "GET a report of another caller's link", status, body, http.StatusNotFound, "link_not_found")
		if bytes.Contains(body, []byte("http")) {
			t.Errorf("another caller's answer carries a URL: %s", body)
		}
	}
}

// revokeView is the 202 body of POST /links/{linkId}/revoke.
type revokeView struct {
	LinkID   string `json:"linkId"`
	Consents []struct {
		ConsentID string `json:"consentId"`
		Status    string `json:"status"`
	} `json:"consents"`
}

func (f *consumerFlow) revoke(t *testing.T) {
	d := f.d
	const revoke = "links-api-revoke.json"

	status, body := f.route(t, revoke, "user-999")
	wantError(t, "revoke another caller's link", status, body, http.StatusNotFound, "link_not_found")

	before := len(d.sim.Requests())
	status, body = f.route(t, revoke, "user-123")
	if status != http.StatusAccepted {
		t.Fatalf("POST revoke = %d %s, want 202", status, body)
	}
	var v revokeView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("202 body is not the revoke answer: %v\n%s", err, body)
	}
	if v.LinkID != f.linkID || len(v.Consents) != 1 || v.Consents[0].ConsentID != f.consent.ID || v.Consents[0].Status != "REVOKE_REQUESTED" {
		t.Errorf("revoke answer = %s, want link %s with consent %s REVOKE_REQUESTED", body, f.linkID, f.consent.ID)
	}
	revokePath := "/data/v1/consents/" + f.consent.ID + "/revoke"
	if got, want := calls(d.requestsSince(before)), []string{"DELETE " + revokePath + " -> 200"}; !cmp.Equal(got, want) {
		t.Fatalf("simulator requests = %q, want %q", got, want)
	}
	if r := d.requestsSince(before)[0]; r.Header.Get("Authorization") != "Bearer "+f.accessToken {
		t.Error("revoke did not carry the token token-refresh stored")
	}

	// Klavi's consent_revoked settles the status.
	f.settle(t)
	if got := attr(d.item(t, "LINK#"+f.linkID, "CONSENT#"+f.consent.ID), "status"); got != "REVOKED" {
		t.Fatalf("consent item status after consent_revoked = %q, want REVOKED", got)
	}
	var revokedEvents int
	for _, dl := range d.sim.Deliveries() {
		if dl.Kind == klavisim.DeliveryEvent && dl.Name == klavisim.EventConsentRevoked && dl.Status == http.StatusOK {
			revokedEvents++
		}
	}
	if revokedEvents != 1 {
		t.Errorf("consent_revoked deliveries answered 200: %d, want 1", revokedEvents)
	}

	// Asking again asks Klavi for nothing new.
	before = len(d.sim.Requests())
	snap := d.snapshot(t, "LINK#"+f.linkID)
	status, body = f.route(t, revoke, "user-123")
	if status != http.StatusAccepted {
		t.Fatalf("POST revoke again = %d %s, want 202", status, body)
	}
	if got := calls(d.requestsSince(before)); len(got) != 0 {
		t.Errorf("revoke again made simulator requests %q, want none", got)
	}
	if diff := cmp.Diff(snap, d.snapshot(t, "LINK#"+f.linkID)); diff != "" {
		t.Errorf("revoke again changed the link's items (-before +after):\n%s", diff)
	}
	// Reports stay until retention.
	for id := range f.stored {
		if status, body := f.route(t, "links-api-report-download.json", "user-123", "pr-0001-checking", id); status != http.StatusOK {
			t.Errorf("GET report %s after revoke = %d %s, want 200: reports stay until retention", id, status, body)
		}
	}
	f.settle(t)
}

func (f *consumerFlow) delete(t *testing.T) {
	d := f.d
	const del = "links-api-delete.json"

	status, body := f.route(t, del, "user-999")
	wantError(t, "DELETE another caller's link", status, body, http.StatusNotFound, "link_not_found")
	if len(d.partition(t, "LINK#"+f.linkID)) == 0 {
		t.Fatal("another caller's DELETE removed the link")
	}

	before := len(d.sim.Requests())
	want := fmt.Sprintf(`{"linkId":%q,"status":"DELETED"}`, f.linkID)
	for i := range 2 {
		status, body = f.route(t, del, "user-123")
		if status != http.StatusAccepted || !jsonEqual(t, body, want) {
			t.Errorf("DELETE #%d = %d %s, want 202 %s", i+1, status, body, want)
		}
	}
	// The consent was revoked already: nothing more to ask Klavi.
	if got := calls(d.requestsSince(before)); len(got) != 0 {
		t.Errorf("DELETE of a link with its consent revoked made simulator requests %q, want none", got)
	}
	f.settle(t)
	f.checkErased(t)

	for id := range f.stored {
		status, body = f.route(t, "links-api-report-download.json", "user-123", "pr-0001-checking", id)
		wantError(t, "GET a report after DELETE", status, body, http.StatusGone, "link_deleted")
		if status, got := fetch(t, f.downloads[id].URL); status == http.StatusOK {
			t.Errorf("the download URL given before DELETE still yields %d bytes", len(got))
		}
	}
	status, body = f.route(t, "links-api-revoke.json", "user-123")
	wantError(t, "revoke after DELETE", status, body, http.StatusGone, "link_deleted")
}

// checkErased checks that nothing of the link's reports or tax id remains
// in the table or the bucket.
func (f *consumerFlow) checkErased(t *testing.T) {
	t.Helper()
	d := f.d
	p := dynamodb.NewScanPaginator(d.db, &dynamodb.ScanInput{TableName: aws.String(d.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("scan table: %v", err)
		}
		for _, it := range page.Items {
			b, err := json.Marshal(awstest.StreamImage(it))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(cpfBare)) || bytes.Contains(b, []byte(cpfFormatted)) {
				t.Errorf("item %s %s keeps the CPF after DELETE", attr(it, "pk"), attr(it, "sk"))
			}
			if strings.HasPrefix(attr(it, "sk"), "REPORT#") && attr(it, "pk") == "LINK#"+f.linkID {
				t.Errorf("report item %s remains after DELETE", attr(it, "sk"))
			}
		}
	}
	objs, err := d.s3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(d.bucket)})
	if err != nil {
		t.Fatalf("list bucket: %v", err)
	}
	for _, o := range objs.Contents {
		if strings.Contains(aws.ToString(o.Key), f.linkID) {
			t.Errorf("object %s remains after DELETE", aws.ToString(o.Key))
		}
	}
	link := d.item(t, "LINK#"+f.linkID, "#LINK")
	if link == nil || attr(link, "purgeReason") != "deleted_by_request" {
		t.Errorf("link item after DELETE = %v, want a tombstone with purgeReason deleted_by_request", link)
	}
}

func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if json.Unmarshal(got, &g) != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return cmp.Equal(g, w)
}

// laterDeliveries: a report and a consent event for the deleted link are
// acknowledged and change nothing, and publish nothing.
func (f *consumerFlow) laterDeliveries(t *testing.T) {
	d := f.d
	pk := "LINK#" + f.linkID
	before := d.snapshot(t, pk)
	records := len(f.records)

	reportID := newUUID(t)
	report := string(klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size: 8 << 10, Seed: 7, ProductName: "pf_checking_account", RequestID: d.sim.ReportRequests()[0].ID,
		ProductReportID: reportID, LinkID: f.linkID, InstitutionCode: "260", EnquiryCPF: cpfBare,
		ExternalInfo: json.RawMessage(`{"applicationId":"app-42"}`),
	}))
	status, body := d.invokeHTTP(t, fnReportWebhook, webhookEvent(t, fixture(t, "report-webhook-report.json"), report, report))
	if status != http.StatusOK {
		t.Errorf("report after DELETE = %d %s, want 200 (acknowledged, not kept)", status, body)
	}
	eventTime := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	base := fixture(t, "event-webhook-consent-authorised.json")
	event := strings.NewReplacer(fixtureLinkID, f.linkID, fixtureConsentID, f.consent.ID, fixtureEventTime, eventTime).Replace(fixtureBody(t, base))
	status, body = d.invokeHTTP(t, fnEventWebhook, webhookEvent(t, base, event, event))
	if status != http.StatusOK {
		t.Errorf("consent event after DELETE = %d %s, want 200 (acknowledged, not kept)", status, body)
	}
	f.settle(t)

	if diff := cmp.Diff(before, d.snapshot(t, pk)); diff != "" {
		t.Errorf("deliveries after DELETE changed the link's items (-before +after):\n%s", diff)
	}
	f.checkErased(t)
	for _, r := range f.records[records:] {
		if strings.Contains(r.Change.Keys["pk"].String(), f.linkID) && r.EventName != "MODIFY" {
			t.Errorf("delivery after DELETE wrote %s %s %s", r.EventName, r.Change.Keys["pk"].String(), r.Change.Keys["sk"].String())
		}
	}
}

// receive reads the consumer's queue until it stays empty.
func (f *consumerFlow) receive(t *testing.T) []consumedEvent {
	t.Helper()
	var out []consumedEvent
	for empty := 0; empty < 2; {
		msgs, err := f.d.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(f.d.queueURL),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(msgs.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		for _, m := range msgs.Messages {
			c := consumedEvent{raw: aws.ToString(m.Body)}
			if err := json.Unmarshal([]byte(c.raw), &c); err != nil {
				t.Fatalf("message %q is not an EventBridge event: %v", c.raw, err)
			}
			out = append(out, c)
			if _, err := f.d.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.d.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete message: %v", err)
			}
		}
	}
	return out
}

// summary names an event by its type and the detail that tells it apart
// in the flow.
func summary(c consumedEvent) string {
	switch c.DetailType {
	case "Consent Status Changed":
		return c.DetailType + " " + c.field("status")
	case "Link Data Purged":
		return c.DetailType + " " + c.field("reason")
	case "Report Stored":
		return c.DetailType + " " + c.field("productReportId")
	}
	return c.DetailType
}

func (f *consumerFlow) integrationEvents(t *testing.T) {
	f.published = f.receive(t)
	var got []string
	ids := map[string]int{}
	for _, c := range f.published {
		if c.Source != "klavi-link" {
			t.Errorf("event source %q, want klavi-link", c.Source)
		}
		if c.field("linkId") != f.linkID {
			t.Errorf("event for link %q, want only the flow's %s: %s", c.field("linkId"), f.linkID, c.raw)
		}
		if c.field("eventId") == "" {
			t.Errorf("event without eventId: %s", c.raw)
		}
		if _, err := time.Parse(time.RFC3339, c.field("occurredAt")); err != nil {
			t.Errorf("occurredAt %q: %v", c.field("occurredAt"), err)
		}
		ids[c.field("eventId")]++
		got = append(got, summary(c))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("eventId %s published %d times, want once: each change was delivered once", id, n)
		}
	}
	// Between AUTHORISED and REVOKED: the request and its reports. Klavi
	// delivers the reports in its own order, and may deliver one before
	// the request's answer is recorded (the report webhook runs while
	// report-request waits for Klavi's answer), so the stream may carry a
	// report first: that stretch is compared as a set.
	middle := []string{"Report Requested"}
	for id := range f.stored {
		middle = append(middle, "Report Stored "+id)
	}
	slices.Sort(middle)
	want := append([]string{"Consent Status Changed AUTHORISED"}, middle...)
	want = append(want, "Consent Status Changed REVOKED", "Link Data Purged deleted_by_request")
	if len(got) == len(want) {
		slices.Sort(got[1 : 1+len(middle)])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("integration events in order (-want +got):\n%s", diff)
	}

	for _, c := range f.published {
		switch c.DetailType {
		case "Consent Status Changed":
			if c.field("consentId") != f.consent.ID || c.field("institutionCode") != "260" {
				t.Errorf("consent event for %s at %s, want %s at 260", c.field("consentId"), c.field("institutionCode"), f.consent.ID)
			}
			if c.field("status") == "REVOKED" && c.field("previousStatus") != "AUTHORISED" {
				t.Errorf("REVOKED event previousStatus = %q, want AUTHORISED", c.field("previousStatus"))
			}
			if !cmp.Equal(c.Detail["externalInfo"], map[string]any{"applicationId": "app-42"}) {
				t.Errorf("consent event externalInfo = %v, want the one POST /links passed", c.Detail["externalInfo"])
			}
		case "Report Requested":
			if c.field("requestId") != f.d.sim.ReportRequests()[0].ID {
				t.Errorf("Report Requested requestId = %q, want Klavi's %q", c.field("requestId"), f.d.sim.ReportRequests()[0].ID)
			}
		case "Report Stored":
			v := f.downloads[c.field("productReportId")]
			if c.field("sha256") != v.SHA256 || c.field("bucket") != f.d.bucket || c.field("productName") != v.ProductName ||
				c.Detail["bytes"] != float64(v.Bytes) || !strings.HasPrefix(c.field("key"), "reports/") {
				t.Errorf("Report Stored = %v, want the stored report %+v in bucket %s", c.Detail, v, f.d.bucket)
			}
		}
	}

	// Personal data: none in any event.
	secrets := map[string]string{
		"the CPF": cpfBare, "the formatted CPF": cpfFormatted, "the e-mail": fixtureEmail, "the phone": fixturePhone,
		"the access token": f.accessToken, "the secretKey": simSecretKey,
	}
	for id, b := range f.stored {
		// A stretch from the middle of each report stands for its content.
		mid := len(b) / 2
		secrets["report "+id+" content"] = string(b[mid : mid+48])
	}
	for _, c := range f.published {
		for what, s := range secrets {
			if strings.Contains(c.raw, s) {
				t.Errorf("%s event carries %s", c.DetailType, what)
			}
		}
	}

	// Lambda retries a batch: the same changes publish the same eventIds
	// with the same details, so a consumer deduplicating on eventId sees
	// nothing new.
	f.deliverStream(t, fnIntegrationEvents, f.records)
	again := f.receive(t)
	first := map[string]map[string]any{}
	for _, c := range f.published {
		first[c.field("eventId")] = c.Detail
	}
	if len(again) != len(f.published) {
		t.Errorf("the stream delivered again published %d events, want the same %d", len(again), len(f.published))
	}
	for _, c := range again {
		prev, ok := first[c.field("eventId")]
		if !ok {
			t.Errorf("retry published a new eventId: %s", c.raw)
			continue
		}
		if diff := cmp.Diff(prev, c.Detail); diff != "" {
			t.Errorf("eventId %s published again with another detail (-first +again):\n%s", c.field("eventId"), diff)
		}
	}
}

func (f *consumerFlow) logs(t *testing.T) {
	secrets := map[string]string{
		"the CPF":           cpfBare,
		"the formatted CPF": cpfFormatted,
		"the e-mail":        fixtureEmail,
		"the phone":         fixturePhone,
		"the secretKey":     simSecretKey,
		"the accessKey":     simAccessKey,
		"the access token":  f.accessToken,
	}
	for id, v := range f.downloads {
		// The signature of a download URL grants the report.
		u, err := url.Parse(v.URL)
		if err != nil {
			t.Fatal(err)
		}
		secrets["the download signature of "+id] = u.Query().Get("X-Amz-Signature")
	}
	names := []string{fnTokenRefresh, fnCreateLink, fnEventWebhook, fnReportRequest, fnReportWebhook, fnIntegrationEvents}
	checkLogs(t, f.d, names, secrets)
}
