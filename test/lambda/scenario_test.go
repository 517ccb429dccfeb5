package lambda_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// Simulator paths the functions call.
const (
	pathAuth            = "/data/v1/auth"
	pathLinks           = "/data/v1/links"
	pathPersonalReports = "/data/v1/personal/institution-data"
)

// scenario is one link's life through the running functions; each step
// leaves what the next one needs.
type scenario struct {
	d *deployment

	accessToken string // the token token-refresh stored
	linkID      string
	consent     klavisim.Consent
	eventBody   string // the consent event as delivered
	requestID   string // Klavi's id of the automatic report request
	reportBody  []byte
}

// linkView is the GET /links/{linkId} body.
type linkView struct {
	LinkID      string `json:"linkId"`
	Status      string `json:"status"`
	TaxIDType   string `json:"taxIdType"`
	TaxIDMasked string `json:"taxIdMasked"`
	Consents    []struct {
		ConsentID       string    `json:"consentId"`
		InstitutionCode string    `json:"institutionCode"`
		Status          string    `json:"status"`
		UpdatedAt       time.Time `json:"updatedAt"`
	} `json:"consents"`
	ReportRequests []struct {
		RequestID       string    `json:"requestId"`
		InstitutionCode string    `json:"institutionCode"`
		Products        []string  `json:"products"`
		RequestedAt     time.Time `json:"requestedAt"`
	} `json:"reportRequests"`
	Reports []reportView `json:"reports"`
}

type reportView struct {
	ProductName     string    `json:"productName"`
	ProductReportID string    `json:"productReportId"`
	RequestID       string    `json:"requestId"`
	ReceivedAt      time.Time `json:"receivedAt"`
	Bytes           int64     `json:"bytes"`
}

func TestScenario(t *testing.T) {
	s := &scenario{d: deploy(t)}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"token refresh", s.tokenRefresh},
		{"create link", s.createLink},
		{"consent event", s.consentEvent},
		{"stream record requests reports", s.streamRecord},
		{"report webhook", s.reportWebhook},
		{"manual report request", s.manualRequest},
		{"reconcile sweep", s.reconcile},
		{"who may see a link", s.access},
		{"logs", s.logs},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; later steps depend on it", step.name)
		}
	}
	var auths int
	for _, r := range s.d.sim.Requests() {
		if r.Path == pathAuth {
			auths++
		}
	}
	if auths != 1 {
		t.Errorf("simulator /auth calls over the scenario = %d, want 1 (token-refresh's only)", auths)
	}
}

func (s *scenario) tokenRefresh(t *testing.T) {
	d := s.d
	before := len(d.sim.Requests())

	out, ierr := d.fns[fnTokenRefresh].InvokeFile(t, "events/token-refresh-schedule.json")
	if ierr != nil {
		t.Fatalf("token-refresh error = %v\nlogs:\n%s", ierr, tail(d.fns[fnTokenRefresh].Logs()))
	}
	if string(out) != "null" {
		t.Errorf("token-refresh answer = %s, want null", out)
	}

	if got, want := calls(d.requestsSince(before)), []string{"POST " + pathAuth + " -> 200"}; !cmp.Equal(got, want) {
		t.Fatalf("simulator requests = %q, want %q", got, want)
	}
	sec, err := d.sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(d.tokenSecret)})
	if err != nil {
		t.Fatalf("read token secret: %v", err)
	}
	var stored struct {
		AccessToken string `json:"accessToken"`
		ExpiresAt   string `json:"expiresAt"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(sec.SecretString)), &stored); err != nil {
		t.Fatalf("token secret is not JSON: %v", err)
	}
	if stored.AccessToken == "" {
		t.Fatal("token secret holds no accessToken")
	}
	expiresAt, err := time.Parse(time.RFC3339, stored.ExpiresAt)
	if err != nil {
		t.Fatalf("token secret expiresAt %q: %v", stored.ExpiresAt, err)
	}
	if d := time.Until(expiresAt); d < 25*time.Minute || d > 31*time.Minute {
		t.Errorf("token secret expires in %v, want about 30m", d)
	}
	// The simulator accepts only tokens it granted.
	if status := s.klaviGet(t, "/data/v1/refresh", stored.AccessToken); status != http.StatusOK {
		t.Errorf("simulator answered the stored token with %d, want 200", status)
	}
	s.accessToken = stored.AccessToken
}

// klaviGet calls the simulator directly with a Bearer token and returns the
// status.
func (s *scenario) klaviGet(t *testing.T, path, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.d.klaviURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *scenario) createLink(t *testing.T) {
	d := s.d
	before := len(d.sim.Requests())
	start := time.Now()

	status, body := d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-post.json"))
	if status != http.StatusCreated {
		t.Fatalf("POST /links = %d %s, want 201", status, body)
	}
	var created struct {
		LinkID    string    `json:"linkId"`
		LinkURL   string    `json:"linkURL"`
		LinkToken string    `json:"linkToken"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatalf("201 body is not the create response: %v\n%s", err, body)
	}
	links := d.sim.Links()
	if len(links) != 1 {
		t.Fatalf("simulator holds %d links, want 1", len(links))
	}
	sl := links[0]
	if created.LinkID != sl.ID || created.LinkURL != sl.URL || created.LinkToken != sl.Token {
		t.Errorf("201 body = %s, want the simulator's link %s (URL %s)", body, sl.ID, sl.URL)
	}
	if d := created.ExpiresAt.Sub(start); d < 25*time.Minute || d > 31*time.Minute {
		t.Errorf("expiresAt = %v, %v after the call; want about 30m", created.ExpiresAt, d)
	}
	s.linkID = created.LinkID

	// Exactly one Klavi call, with the token from the secret.
	reqs := d.requestsSince(before)
	if got, want := calls(reqs), []string{"POST " + pathLinks + " -> 200"}; !cmp.Equal(got, want) {
		t.Fatalf("simulator requests = %q, want %q (no /auth: the token comes from the secret)", got, want)
	}
	if reqs[0].Header.Get("Authorization") != "Bearer "+s.accessToken {
		t.Error("POST /links did not carry the token token-refresh stored")
	}
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil {
		t.Fatalf("POST /links body is not a JSON object: %v", err)
	}
	wantKeys := []string{"email", "externalInfo", "personalTaxId", "phone", "productsCallbackURL", "redirectURL"}
	if diff := cmp.Diff(wantKeys, slices.Sorted(maps.Keys(sent))); diff != "" {
		t.Errorf("POST /links field names mismatch (-want +got):\n%s", diff)
	}
	var fields struct {
		PersonalTaxID       string            `json:"personalTaxId"`
		Email               string            `json:"email"`
		Phone               string            `json:"phone"`
		RedirectURL         string            `json:"redirectURL"`
		ProductsCallbackURL map[string]string `json:"productsCallbackURL"`
		ExternalInfo        map[string]any    `json:"externalInfo"`
	}
	if err := json.Unmarshal(reqs[0].Body, &fields); err != nil {
		t.Fatal(err)
	}
	if fields.PersonalTaxID != cpfBare {
		t.Error("POST /links personalTaxId is not the bare CPF")
	}
	wantFields := fields
	wantFields.PersonalTaxID = cpfBare
	wantFields.Email = "maria@example.com"
	wantFields.Phone = "+5511987654321"
	wantFields.RedirectURL = "https://" + redirectHost + "/klavi/return"
	wantFields.ProductsCallbackURL = map[string]string{"all": derivedWebhookURL}
	wantFields.ExternalInfo = map[string]any{"applicationId": "app-42"}
	if diff := cmp.Diff(wantFields, fields); diff != "" {
		t.Errorf("POST /links fields mismatch (-want +got):\n%s", diff)
	}

	// The link item.
	items := d.partition(t, "LINK#"+s.linkID)
	var link map[string]string
	for _, it := range items {
		if attr(it, "sk") == "#LINK" {
			link = map[string]string{}
			for _, name := range []string{"type", "linkId", "taxIdType", "taxId", "redirectUrl", "reportWebhookUrl", "origin"} {
				link[name] = attr(it, name)
			}
		}
	}
	wantLink := map[string]string{
		"type": "link", "linkId": s.linkID, "taxIdType": "personal", "taxId": cpfBare,
		"redirectUrl": "https://" + redirectHost + "/klavi/return", "reportWebhookUrl": derivedWebhookURL, "origin": "api",
	}
	if diff := cmp.Diff(wantLink, link); diff != "" {
		t.Errorf("link item mismatch (-want +got):\n%s", diff)
	}

	view := s.view(t)
	if view.LinkID != s.linkID || view.Status != "CREATED" || view.TaxIDType != "personal" || view.TaxIDMasked != "***.982.247-**" {
		t.Errorf("view = %+v, want link %s CREATED, personal, ***.982.247-**", view, s.linkID)
	}
	if len(view.Consents) != 0 || len(view.ReportRequests) != 0 || len(view.Reports) != 0 {
		t.Errorf("view of a new link lists %d consents, %d requests, %d reports; want none",
			len(view.Consents), len(view.ReportRequests), len(view.Reports))
	}
}

// view gets the link view through links-api's GET route.
func (s *scenario) view(t *testing.T) linkView {
	t.Helper()
	status, body := s.d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-get.json", fixtureLinkID, s.linkID))
	if status != http.StatusOK {
		t.Fatalf("GET /links/{linkId} = %d %s, want 200", status, body)
	}
	if bytes.Contains(body, []byte(cpfBare)) || bytes.Contains(body, []byte(cpfFormatted)) {
		t.Errorf("link view carries the full CPF: %s", body)
	}
	var v linkView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("200 body is not the link view: %v\n%s", err, body)
	}
	return v
}

// eventResult is the event webhook's 200 body.
type eventResult struct {
	Received   int `json:"received"`
	Applied    int `json:"applied"`
	Duplicates int `json:"duplicates"`
	Stale      int `json:"stale"`
}

func (s *scenario) consentEvent(t *testing.T) {
	d := s.d
	consent, err := d.sim.AuthoriseConsent(s.linkID, "260")
	if err != nil {
		t.Fatalf("authorise at the simulator: %v", err)
	}
	s.consent = consent
	pk := "LINK#" + s.linkID
	consentSK := "CONSENT#" + consent.ID

	base := fixture(t, "event-webhook-consent-authorised.json")
	s.eventBody = strings.NewReplacer(
		fixtureLinkID, s.linkID,
		fixtureConsentID, consent.ID,
		fixtureEventTime, consent.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
	).Replace(fixtureBody(t, base))
	delivery := webhookEvent(t, base, s.eventBody, s.eventBody)

	status, body := d.invokeHTTP(t, fnEventWebhook, delivery)
	if status != http.StatusOK {
		t.Fatalf("event delivery = %d %s, want 200", status, body)
	}
	s.checkEventResult(t, body, eventResult{Received: 1, Applied: 1})
	item := d.item(t, pk, consentSK)
	got := map[string]string{}
	for _, name := range []string{"type", "linkId", "consentId", "institutionCode", "status"} {
		got[name] = attr(item, name)
	}
	want := map[string]string{"type": "consent", "linkId": s.linkID, "consentId": consent.ID, "institutionCode": "260", "status": "AUTHORISED"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("consent item mismatch (-want +got):\n%s", diff)
	}
	applied := d.snapshot(t, pk)

	// A body other than the one signed: 401, nothing written.
	tampered := strings.Replace(s.eventBody, `"consent_authorised"`, `"consent_rejected"`, 1)
	tampered = strings.Replace(tampered, `"eventId": "`, `"eventId": "tampered-`, 1)
	if tampered == s.eventBody {
		t.Fatal("the fixture's body no longer has the fields the tampering changes")
	}
	status, body = d.invokeHTTP(t, fnEventWebhook, webhookEvent(t, base, tampered, s.eventBody))
	if status != http.StatusUnauthorized {
		t.Errorf("tampered delivery = %d %s, want 401", status, body)
	}
	if diff := cmp.Diff(applied, d.snapshot(t, pk)); diff != "" {
		t.Errorf("tampered delivery changed the link's items (-before +after):\n%s", diff)
	}

	// Klavi delivers the same event again: acknowledged, nothing written.
	status, body = d.invokeHTTP(t, fnEventWebhook, delivery)
	if status != http.StatusOK {
		t.Fatalf("duplicate delivery = %d %s, want 200", status, body)
	}
	s.checkEventResult(t, body, eventResult{Received: 1, Duplicates: 1})
	if diff := cmp.Diff(applied, d.snapshot(t, pk)); diff != "" {
		t.Errorf("duplicate delivery changed the link's items (-before +after):\n%s", diff)
	}
}

func (s *scenario) checkEventResult(t *testing.T, body []byte, want eventResult) {
	t.Helper()
	var got eventResult
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("200 body is not the event result: %v\n%s", err, body)
	}
	if got != want {
		t.Errorf("event result = %+v, want %+v", got, want)
	}
}

// streamEvent is the DynamoDB stream batch Lambda would deliver for the
// consent item as it is stored now: an INSERT, since the event webhook
// created the item.
func (s *scenario) streamEvent(t *testing.T) []byte {
	t.Helper()
	pk, sk := "LINK#"+s.linkID, "CONSENT#"+s.consent.ID
	item := s.d.item(t, pk, sk)
	if item == nil {
		t.Fatal("consent item missing")
	}
	ev := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		EventID:        "c4ca4238a0b923820dcc509a6f75849b",
		EventName:      string(events.DynamoDBOperationTypeInsert),
		EventVersion:   "1.1",
		EventSource:    "aws:dynamodb",
		AWSRegion:      "us-east-1",
		EventSourceArn: "arn:aws:dynamodb:us-east-1:123456789012:table/" + s.d.table + "/stream/2026-11-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: time.Now().Truncate(time.Second)},
			Keys: map[string]events.DynamoDBAttributeValue{
				"pk": events.NewStringAttribute(pk),
				"sk": events.NewStringAttribute(sk),
			},
			NewImage:       awstest.StreamImage(item),
			SequenceNumber: "2900000000012345678901",
			SizeBytes:      512,
			StreamViewType: string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}}}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *scenario) invokeStream(t *testing.T, payload []byte) {
	t.Helper()
	out := s.d.invoke(t, fnReportRequest, payload)
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("report-request answer is not a stream batch response: %v\n%s", err, out)
	}
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch item failures = %+v, want none\nlogs:\n%s", resp.BatchItemFailures, tail(s.d.fns[fnReportRequest].Logs()))
	}
}

func (s *scenario) streamRecord(t *testing.T) {
	d := s.d
	before := len(d.sim.Requests())
	payload := s.streamEvent(t)

	s.invokeStream(t, payload)

	reqs := d.requestsSince(before)
	if got, want := calls(reqs), []string{"POST " + pathPersonalReports + " -> 200"}; !cmp.Equal(got, want) {
		t.Fatalf("simulator requests = %q, want %q", got, want)
	}
	r := reqs[0]
	if r.Header.Get("Authorization") != "Bearer "+s.accessToken {
		t.Error("report request did not carry the token token-refresh stored")
	}
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &sent); err != nil {
		t.Fatalf("report request body is not a JSON object: %v", err)
	}
	wantKeys := []string{"consentIds", "externalInfo", "institutionCode", "linkId", "products", "productsCallbackURL", "taxId"}
	if diff := cmp.Diff(wantKeys, slices.Sorted(maps.Keys(sent))); diff != "" {
		t.Errorf("report request field names mismatch (-want +got):\n%s", diff)
	}
	type requestFields struct {
		TaxID               string            `json:"taxId"`
		InstitutionCode     string            `json:"institutionCode"`
		LinkID              string            `json:"linkId"`
		ConsentIDs          []string          `json:"consentIds"`
		Products            []string          `json:"products"`
		ProductsCallbackURL map[string]string `json:"productsCallbackURL"`
		ExternalInfo        map[string]any    `json:"externalInfo"`
	}
	var got requestFields
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.TaxID != cpfBare {
		t.Error("report request taxId is not the bare CPF")
	}
	got.TaxID = "" // compared above, kept out of the diff
	want := requestFields{
		InstitutionCode:     "260",
		LinkID:              s.linkID,
		ConsentIDs:          []string{s.consent.ID},
		Products:            []string{"all"},
		ProductsCallbackURL: map[string]string{"all": derivedWebhookURL},
		ExternalInfo:        map[string]any{"applicationId": "app-42"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report request fields mismatch (-want +got):\n%s", diff)
	}

	accepted := d.sim.ReportRequests()
	if len(accepted) != 1 {
		t.Fatalf("simulator accepted %d report requests, want 1", len(accepted))
	}
	s.requestID = accepted[0].ID
	item := d.item(t, "LINK#"+s.linkID, "CONSENT#"+s.consent.ID)
	if got := attr(item, "requestId"); got != s.requestID {
		t.Errorf("consent item requestId = %q, want Klavi's %q", got, s.requestID)
	}
	if got := attr(item, "leaseUntil"); got != "" {
		t.Errorf("consent item keeps leaseUntil %q after the request was recorded", got)
	}
	if got := attr(d.item(t, "LINK#"+s.linkID, "REQUEST#"+s.requestID), "trigger"); got != "stream" {
		t.Errorf("request item trigger = %q, want stream", got)
	}

	// Lambda delivers the same record again: nothing is requested twice.
	before = len(d.sim.Requests())
	s.invokeStream(t, payload)
	if got := calls(d.requestsSince(before)); len(got) != 0 {
		t.Errorf("redelivered record made simulator requests %q, want none", got)
	}
}

// reportResult is the report webhook's 200 body.
type reportResult struct {
	ProductReportID string `json:"productReportId"`
	Stored          bool   `json:"stored"`
	Duplicate       bool   `json:"duplicate"`
	Matched         bool   `json:"matched"`
}

func (s *scenario) reportWebhook(t *testing.T) {
	d := s.d
	const product = "pf_checking_account"
	reportID := newUUID(t)
	s.reportBody = klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{
		Size:            1 << 20,
		Seed:            42,
		ProductName:     product,
		RequestID:       s.requestID,
		ProductReportID: reportID,
		LinkID:          s.linkID,
		InstitutionCode: "260",
		EnquiryCPF:      cpfBare,
		ExternalInfo:    json.RawMessage(`{"applicationId":"app-42"}`),
	})
	body := string(s.reportBody)
	event := webhookEvent(t, fixture(t, "report-webhook-report.json"), body, body)

	status, answer := d.invokeHTTP(t, fnReportWebhook, event)
	if status != http.StatusOK {
		t.Fatalf("report delivery = %d %s, want 200", status, answer)
	}
	var res reportResult
	if err := json.Unmarshal(answer, &res); err != nil {
		t.Fatalf("200 body is not the report result: %v\n%s", err, answer)
	}
	if want := (reportResult{ProductReportID: reportID, Stored: true, Matched: true}); res != want {
		t.Errorf("report result = %+v, want %+v", res, want)
	}

	key := reportstore.ReportKey(s.linkID, product, reportID)
	obj, err := d.s3.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get report object %s: %v", key, err)
	}
	stored, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatalf("read report object: %v", err)
	}
	if !bytes.Equal(stored, s.reportBody) {
		t.Errorf("stored object is %d bytes and differs from the %d bytes delivered", len(stored), len(s.reportBody))
	}

	view := s.view(t)
	if view.Status != "REPORTS_RECEIVED" {
		t.Errorf("link status = %s, want REPORTS_RECEIVED", view.Status)
	}
	want := []reportView{{ProductName: product, ProductReportID: reportID, RequestID: s.requestID, Bytes: int64(len(s.reportBody))}}
	if diff := cmp.Diff(want, view.Reports, cmpopts.IgnoreFields(reportView{}, "ReceivedAt")); diff != "" {
		t.Errorf("view reports mismatch (-want +got):\n%s", diff)
	}
	if len(view.Reports) == 1 && time.Since(view.Reports[0].ReceivedAt).Abs() > time.Minute {
		t.Errorf("report receivedAt = %v, want about now", view.Reports[0].ReceivedAt)
	}
	if len(view.ReportRequests) != 1 || view.ReportRequests[0].RequestID != s.requestID {
		t.Errorf("view report requests = %+v, want the one with Klavi's id %s", view.ReportRequests, s.requestID)
	}
	if len(view.Consents) != 1 || view.Consents[0].ConsentID != s.consent.ID || view.Consents[0].Status != "AUTHORISED" {
		t.Errorf("view consents = %+v, want %s AUTHORISED", view.Consents, s.consent.ID)
	}
	// A report does not end the link's reconciliation: another consent of
	// the link may still lack its request. The sweep decides (see reconcile).
	if link := d.item(t, "LINK#"+s.linkID, "#LINK"); attr(link, "attn") != "AWAITING_REPORTS" {
		t.Errorf("link item attention after its report = %q, want AWAITING_REPORTS until the sweep settles it", attr(link, "attn"))
	}
}

func (s *scenario) manualRequest(t *testing.T) {
	d := s.d
	before := len(d.sim.Requests())

	status, body := d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-reports.json", fixtureLinkID, s.linkID))
	if status != http.StatusAccepted {
		t.Fatalf("POST /links/{linkId}/reports = %d %s, want 202", status, body)
	}
	var accepted struct {
		Requests []struct {
			RequestID       string   `json:"requestId"`
			ConsentID       string   `json:"consentId"`
			InstitutionCode string   `json:"institutionCode"`
			Products        []string `json:"products"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(body, &accepted); err != nil {
		t.Fatalf("202 body is not the accepted response: %v\n%s", err, body)
	}
	if got, want := calls(d.requestsSince(before)), []string{"POST " + pathPersonalReports + " -> 200"}; !cmp.Equal(got, want) {
		t.Fatalf("simulator requests = %q, want %q", got, want)
	}
	all := d.sim.ReportRequests()
	if len(all) != 2 {
		t.Fatalf("simulator accepted %d report requests, want 2", len(all))
	}
	latest := all[1]
	products := []string{"pf_checking_account", "pf_credit_card"}
	if !cmp.Equal(latest.Products, products) || !cmp.Equal(latest.ConsentIDs, []string{s.consent.ID}) {
		t.Errorf("simulator request products %q consents %q, want %q for %s", latest.Products, latest.ConsentIDs, products, s.consent.ID)
	}
	if len(accepted.Requests) != 1 {
		t.Fatalf("202 lists %d requests, want 1: %s", len(accepted.Requests), body)
	}
	r := accepted.Requests[0]
	if r.RequestID != latest.ID || r.ConsentID != s.consent.ID || r.InstitutionCode != "260" || !cmp.Equal(r.Products, products) {
		t.Errorf("202 request = %+v, want Klavi's id %s for consent %s, institution 260, %q", r, latest.ID, s.consent.ID, products)
	}
	if got := attr(d.item(t, "LINK#"+s.linkID, "REQUEST#"+latest.ID), "trigger"); got != "manual" {
		t.Errorf("request item trigger = %q, want manual", got)
	}
}

// reconcile runs the scheduled sweep with the link due: the sweep sees
// every authorised consent requested and a report, clears the attention and
// asks Klavi nothing.
func (s *scenario) reconcile(t *testing.T) {
	d := s.d
	pk := "LINK#" + s.linkID
	before := d.snapshot(t, pk)
	_, err := d.db.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{
		TableName:                aws.String(d.table),
		Key:                      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: "#LINK"}},
		UpdateExpression:         aws.String("SET #attn = :kind, #due = :due"),
		ExpressionAttributeNames: map[string]string{"#attn": "attn", "#due": "attnDue"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":kind": &types.AttributeValueMemberS{Value: "AWAITING_REPORTS"},
			":due":  &types.AttributeValueMemberS{Value: time.Now().Add(-time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")},
		},
	})
	if err != nil {
		t.Fatalf("make the link due: %v", err)
	}
	requests := len(d.sim.Requests())

	out, ierr := d.fns[fnReconcile].InvokeFile(t, "events/reconcile-schedule.json")
	if ierr != nil {
		t.Fatalf("reconcile error = %v\nlogs:\n%s", ierr, tail(d.fns[fnReconcile].Logs()))
	}
	if string(out) != "null" {
		t.Errorf("reconcile answer = %s, want null", out)
	}

	if got := calls(d.requestsSince(requests)); len(got) != 0 {
		t.Errorf("reconcile made simulator requests %q, want none", got)
	}
	// Apart from the attention entry it settles, the sweep changes nothing.
	if diff := cmp.Diff(withoutAttention(before), withoutAttention(d.snapshot(t, pk))); diff != "" {
		t.Errorf("link's items after the sweep differ from before it was due (-before +after):\n%s", diff)
	}
	if link := d.item(t, pk, "#LINK"); attr(link, "attn") != "" || attr(link, "attnDue") != "" {
		t.Errorf("link item keeps attention %q due %q after the sweep saw its report", attr(link, "attn"), attr(link, "attnDue"))
	}
	var cleared bool
	for line := range strings.Lines(d.fns[fnReconcile].Logs()) {
		var rec struct {
			Action string `json:"action"`
			LinkID string `json:"linkId"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Action == "attention_cleared" && rec.LinkID == s.linkID {
			cleared = true
		}
	}
	if !cleared {
		t.Errorf("reconcile logged no attention_cleared for link %s:\n%s", s.linkID, tail(d.fns[fnReconcile].Logs()))
	}
}

// access walks the rule of who may see a link through the links API: a
// repeated manual request within its cool-down, a caller without identity,
// the back office, and a link first seen in an event, which has no owner.
func (s *scenario) access(t *testing.T) {
	d := s.d
	before := len(d.sim.Requests())
	ownerReports := fixture(t, "links-api-reports.json", fixtureLinkID, s.linkID)

	// The manual request made a moment ago is not made again: 429 with
	// Retry-After, decided in DynamoDB, and Klavi is not asked.
	resp := s.invokeResponse(t, ownerReports)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(resp.Body, `"report_request_too_soon"`) {
		t.Errorf("repeated POST /links/{linkId}/reports = %d %s, want 429 report_request_too_soon", resp.StatusCode, resp.Body)
	}
	if secs, err := strconv.Atoi(resp.Headers["Retry-After"]); err != nil || secs < 1 || secs > 600 {
		t.Errorf("Retry-After = %q, want 1..600 seconds (REPORT_REQUEST_COOLDOWN 10m)", resp.Headers["Retry-After"])
	}
	var claims int
	for _, it := range d.partition(t, "LINK#"+s.linkID) {
		if attr(it, "type") == "manual" {
			claims++
		}
	}
	if claims != 1 {
		t.Errorf("cool-down items in the link's partition = %d, want 1", claims)
	}

	// No identity: 401, whatever the id.
	status, body := d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-get-no-identity.json", fixtureLinkID, s.linkID))
	if status != http.StatusUnauthorized || !strings.Contains(string(body), `"unauthenticated"`) {
		t.Errorf("GET without identity = %d %s, want 401 unauthenticated", status, body)
	}
	// The back office reads another caller's link.
	status, body = d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-get-admin.json", fixtureLinkID, s.linkID))
	if status != http.StatusOK || !strings.Contains(string(body), s.linkID) {
		t.Errorf("GET as the back office = %d %s, want 200 with the link", status, body)
	}

	// A link first seen in a Klavi event has no owner: the fixtures'
	// caller gets 404 for it, and cannot request its reports; the back
	// office reads it.
	orphan, consentID := newUUID(t), newUUID(t)
	base := fixture(t, "event-webhook-consent-authorised.json")
	eventBody := strings.NewReplacer(
		fixtureLinkID, orphan,
		fixtureConsentID, consentID,
		"1495468585434-0e73d1719173766fe4dfe1a8", "evt-"+orphan,
	).Replace(fixtureBody(t, base))
	if status, body := d.invokeHTTP(t, fnEventWebhook, webhookEvent(t, base, eventBody, eventBody)); status != http.StatusOK {
		t.Fatalf("event for an unknown link = %d %s, want 200", status, body)
	}
	if it := d.item(t, "LINK#"+orphan, "#LINK"); attr(it, "origin") != "webhook" || attr(it, "owner") != "" {
		t.Fatalf("link from the event: origin %q owner %q, want webhook and none", attr(it, "origin"), attr(it, "owner"))
	}
	status, body = d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-get.json", fixtureLinkID, orphan))
	if status != http.StatusNotFound || !strings.Contains(string(body), `"link_not_found"`) {
		t.Errorf("GET of an unowned link by an ordinary caller = %d %s, want 404 link_not_found", status, body)
	}
	status, body = d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-reports.json", fixtureLinkID, orphan))
	if status != http.StatusNotFound {
		t.Errorf("POST reports of an unowned link by an ordinary caller = %d %s, want 404", status, body)
	}
	status, body = d.invokeHTTP(t, fnCreateLink, fixture(t, "links-api-get-admin.json", fixtureLinkID, orphan))
	if status != http.StatusOK || !strings.Contains(string(body), consentID) {
		t.Errorf("GET of an unowned link by the back office = %d %s, want 200 with its consent", status, body)
	}
	if got := calls(d.requestsSince(before)); len(got) != 0 {
		t.Errorf("simulator requests = %q, want none", got)
	}
}

// invokeResponse invokes links-api with an HTTP API event and returns
// its whole answer, headers included.
func (s *scenario) invokeResponse(t *testing.T, event []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(s.d.invoke(t, fnCreateLink, event), &resp); err != nil {
		t.Fatalf("links-api answer is not an HTTP API response: %v", err)
	}
	return resp
}

func (s *scenario) logs(t *testing.T) {
	secrets := map[string]string{
		"the CPF":           cpfBare,
		"the formatted CPF": cpfFormatted,
		"the secretKey":     simSecretKey,
		"the accessKey":     simAccessKey,
		"the access token":  s.accessToken,
	}
	// The scenario publishes no integration events (see TestConsumerFlow).
	names := slices.DeleteFunc(functionNames(), func(n string) bool { return n == fnIntegrationEvents })
	checkLogs(t, s.d, names, secrets)
}

// checkLogs checks the logs of each named function: none contains a
// secret, and every record with a requestId is a JSON object, with each
// key once, of the invocation it belongs to.
func checkLogs(t *testing.T, d *deployment, names []string, secrets map[string]string) {
	t.Helper()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			logs := d.fns[name].Logs()
			for what, secret := range secrets {
				if strings.Contains(logs, secret) {
					t.Errorf("%s logs contain %s", name, what)
				}
			}
			// The emulator serves one invocation at a time and prints
			// START before any line of it, so every record belongs to the
			// last START.
			var records int
			var invocation string
			for line := range strings.Lines(logs) {
				if id, ok := strings.CutPrefix(line, "START RequestId: "); ok {
					invocation, _, _ = strings.Cut(id, " ")
					continue
				}
				if !strings.Contains(line, `"requestId"`) {
					continue
				}
				records++
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("%s log line with a requestId is not JSON: %v\n%s", name, err, line)
					continue
				}
				if id, _ := rec["requestId"].(string); id != invocation {
					t.Errorf("%s log record requestId = %q, want the invocation's %q: %s", name, id, invocation, line)
				}
				if key := duplicateKey(t, line); key != "" {
					t.Errorf("%s log record has %q twice; log readers keep only one of them: %s", name, key, line)
				}
			}
			if records == 0 {
				t.Errorf("%s wrote no log record with a requestId:\n%s", name, tail(logs))
			}
		})
	}
}

// duplicateKey returns a top-level key that occurs more than once in the
// JSON object line, "" when there is none.
func duplicateKey(t *testing.T, line string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		t.Fatalf("read log record: %v", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("read log record: %v", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatalf("read log record: %v", err)
		}
	}
	return ""
}

func newUUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// withoutAttention drops the attention attributes from a snapshot's items.
func withoutAttention(items []any) []any {
	out := make([]any, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			out[i] = it
			continue
		}
		c := make(map[string]any, len(m))
		for k, v := range m {
			if k != "attn" && k != "attnDue" {
				c[k] = v
			}
		}
		out[i] = c
	}
	return out
}
