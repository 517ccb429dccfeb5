package eventwebhook

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// newDynamoEnv runs the handler over the real DynamoDB store in the
// emulator, each test with its own table.
func newDynamoEnv(t *testing.T) *env {
	t.Helper()
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return newEnvWith(t, linkstore.NewDynamo(client, table))
}

func TestDynamoSignedEventAuthorises(t *testing.T) {
	e := newDynamoEnv(t)
	req := fixture(t)
	resp, _ := e.call(t, signed(req, req.Body, testSecret, now))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	if got := e.status(t); got != "AUTHORISED" {
		t.Errorf("status = %q, want AUTHORISED", got)
	}
}

func TestDynamoTwentyConcurrentDeliveriesOneTransition(t *testing.T) {
	e := newDynamoEnv(t)
	req := fixture(t)
	req = signed(req, req.Body, testSecret, now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	for range 20 {
		wg.Go(func() {
			resp, err := e.h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("delivery = %d %v %s, want 200", resp.StatusCode, err, resp.Body)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(resp.Body, `"applied":1`) {
				applied++
			}
		})
	}
	wg.Wait()
	if applied != 1 {
		t.Errorf("transitions = %d, want exactly 1", applied)
	}
	if got := e.status(t); got != "AUTHORISED" {
		t.Errorf("status = %q, want AUTHORISED", got)
	}
}

func TestDynamoOlderErrorAfterAuthorisedChangesNothing(t *testing.T) {
	e := newDynamoEnv(t)
	base := fixture(t)
	e.call(t, signed(base, "["+consentEvent("ev-1", "consent_authorised", "2026-11-24T12:00:10.000Z")+"]", testSecret, now))
	before, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	resp, body := e.call(t, signed(base, "["+consentEvent("ev-2", "consent_error", "2026-11-24T12:00:05.000Z")+"]", testSecret, now))
	if resp.StatusCode != http.StatusOK || body["stale"] != float64(1) {
		t.Errorf("late consent_error = %d %s, want 200 stale 1", resp.StatusCode, resp.Body)
	}
	after, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if after.Status(now) != "AUTHORISED" || after.Consents[0].Status != before.Consents[0].Status {
		t.Errorf("consent moved back: %q -> %q", before.Consents[0].Status, after.Consents[0].Status)
	}
}

func TestDynamoRejectedDeliveriesChangeNothing(t *testing.T) {
	e := newDynamoEnv(t)
	good := fixture(t)
	tampered := signed(good, good.Body, testSecret, now)
	tampered.Body = strings.Replace(tampered.Body, "260", "261", 1)
	missing := signed(good, good.Body, testSecret, now)
	delete(missing.Headers, "x-klavi-signature")
	for name, req := range map[string]httpapi.Request{
		"tampered body":   tampered,
		"wrong key":       signed(good, good.Body, "not-the-key", now),
		"stale timestamp": signed(good, good.Body, testSecret, now.Add(-10*time.Minute)),
		"missing header":  missing,
	} {
		resp, _ := e.call(t, req)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status = %d, want 401", name, resp.StatusCode)
		}
	}
	if got := e.status(t); got != "<none>" {
		t.Errorf("rejected deliveries changed state: link status %q", got)
	}
}

// clockAt sets the handler's and the verifier's clock to *at.
func clockAt(at *time.Time) func(*Config) {
	return func(c *Config) {
		c.Now = func() time.Time { return *at }
		c.Verifier.Now = c.Now
	}
}

// A captured consent_authorised without eventId and eventTime, replayed a
// day later with added whitespace under a fresh X-Klavi-Timestamp (the
// timestamp is not signed; the whitespace keeps the compact-form signature
// valid), must not move a revoked consent back.
func TestDynamoWhitespaceReplayCannotRevertConsent(t *testing.T) {
	at := now
	e := newEnvWith(t, newDynamoEnv(t).store, clockAt(&at))
	captured := `[{"partnerAppId":"12345678","eventType":"api","eventName":"consent_authorised","payload":{"linkId":"` +
		fixtureLink + `","consents":{"consentId":"` + fixtureCons + `","institutionCode":"260"}}}]`
	sig, _ := webhooksig.Sign([]byte(testSecret), []byte(captured), at)
	if resp, body := e.call(t, signed(fixture(t), captured, testSecret, at)); resp.StatusCode != http.StatusOK || body["applied"] != float64(1) {
		t.Fatalf("authorisation = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}
	at = now.Add(time.Minute)
	revoke := "[" + consentEvent("ev-revoke", "consent_revoked", at.Format(time.RFC3339)) + "]"
	if resp, body := e.call(t, signed(fixture(t), revoke, testSecret, at)); resp.StatusCode != http.StatusOK || body["applied"] != float64(1) {
		t.Fatalf("revocation = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}

	at = now.Add(24 * time.Hour)
	replay := fixture(t)
	replay.Body = strings.Replace(captured, `"eventName":`, `"eventName": `, 1)
	replay.Headers = cloneHeaders(replay.Headers)
	replay.Headers["x-klavi-signature"] = sig
	replay.Headers["x-klavi-timestamp"] = strconv.FormatInt(at.Unix(), 10)
	resp, body := e.call(t, replay)
	if resp.StatusCode != http.StatusOK || body["duplicates"] != float64(1) {
		t.Errorf("whitespace replay = %d %s, want 200 duplicates 1 (the same event)", resp.StatusCode, resp.Body)
	}
	if got := e.status(t); got != "REVOKED" {
		t.Fatalf("after the replay link status = %q, want REVOKED", got)
	}

	// Past the deduplication window, or with an id of its own, an event
	// without eventTime still never replaces a state set by one with it.
	fresh := strings.Replace(captured, `"eventType"`, `"eventId":"never-seen","eventType"`, 1)
	resp, body = e.call(t, signed(fixture(t), fresh, testSecret, at))
	if resp.StatusCode != http.StatusOK || body["stale"] != float64(1) {
		t.Errorf("authorisation without eventTime after a dated revocation = %d %s, want 200 stale 1", resp.StatusCode, resp.Body)
	}
	if got := e.status(t); got != "REVOKED" {
		t.Errorf("link status = %q, want REVOKED", got)
	}
}

// Among events without eventTime the consent lifecycle orders them: a late
// one may move it forward, never back.
func TestDynamoEventsWithoutTimeMoveForwardOnly(t *testing.T) {
	e := newDynamoEnv(t)
	event := func(id, name string) string {
		return `[{"eventId":"` + id + `","eventType":"api","eventName":"` + name + `","payload":{"linkId":"` +
			fixtureLink + `","consents":{"consentId":"` + fixtureCons + `"}}}]`
	}
	for _, step := range []struct {
		id, name, want, outcome string
	}{
		{"e1", "consent_authorised", "AUTHORISED", "applied"},
		{"e2", "consent_revoked", "REVOKED", "applied"},
		{"e3", "consent_authorised", "REVOKED", "stale"},
	} {
		resp, body := e.call(t, signed(fixture(t), event(step.id, step.name), testSecret, now))
		if resp.StatusCode != http.StatusOK || body[step.outcome] != float64(1) {
			t.Fatalf("%s without eventTime = %d %s, want 200 %s 1", step.name, resp.StatusCode, resp.Body, step.outcome)
		}
		if got := e.status(t); got != step.want {
			t.Fatalf("after %s link status = %q, want %q", step.name, got, step.want)
		}
	}
}

// An authorisation dated 2099 is ordered at its arrival plus the signature
// tolerance, so a revocation made later still applies; the eventTime as
// sent stays on the event's record.
func TestDynamoFarFutureEventTimeClamped(t *testing.T) {
	at := now
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	e := newEnvWith(t, linkstore.NewDynamo(client, table), clockAt(&at))
	const future = "2099-01-01T00:00:00.000Z"
	resp, body := e.call(t, signed(fixture(t), "["+consentEvent("ev-future", "consent_authorised", future)+"]", testSecret, at))
	if resp.StatusCode != http.StatusOK || body["applied"] != float64(1) {
		t.Fatalf("far-future authorisation = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}
	l, err := e.store.GetLink(t.Context(), fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if want := now.Add(webhooksig.DefaultTolerance); len(l.Consents) != 1 || !l.Consents[0].EventTime.Equal(want) {
		t.Errorf("consents = %+v, want one ordered at arrival + %s (%s)", l.Consents, webhooksig.DefaultTolerance, want)
	}
	if !strings.Contains(e.logs.String(), future) {
		t.Errorf("logs do not show the eventTime as sent")
	}
	out, err := client.Scan(t.Context(), &dynamodb.ScanInput{
		TableName:                 aws.String(table),
		FilterExpression:          aws.String("rawEventTime = :raw"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":raw": &types.AttributeValueMemberS{Value: future}},
	})
	if err != nil || out.Count != 1 {
		t.Errorf("event records holding the eventTime as sent = %v (%v), want 1", out.Count, err)
	}

	at = now.Add(10 * time.Minute)
	revoke := "[" + consentEvent("ev-revoke", "consent_revoked", at.Format(time.RFC3339)) + "]"
	resp, body = e.call(t, signed(fixture(t), revoke, testSecret, at))
	if resp.StatusCode != http.StatusOK || body["applied"] != float64(1) {
		t.Errorf("revocation after a far-future authorisation = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}
	if got := e.status(t); got != "REVOKED" {
		t.Errorf("link status = %q, want REVOKED", got)
	}
}

// deletion is a signed consent_deleted_by_user without consentId.
func deletion(t *testing.T, eventID, linkID string) httpapi.Request {
	t.Helper()
	payload := `{"consentStatus":"DELETED_BY_USER"}`
	if linkID != "" {
		payload = `{"linkId":"` + linkID + `"}`
	}
	body := `{"eventId":"` + eventID + `","eventType":"api","eventName":"consent_deleted_by_user","eventTime":"2026-11-24T12:00:00Z","payload":` + payload + `}`
	return signed(fixture(t), body, testSecret, now)
}

func TestDynamoDeletionWithoutConsentPurgesTheLink(t *testing.T) {
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	store := linkstore.NewDynamo(client, table)
	e := newEnvWith(t, store)
	const link = "4437b139-8a16-11ee-b636-487b6bad036a"
	if err := store.CreateLink(t.Context(), linkstore.Link{LinkID: link, CreatedAt: now}); err != nil {
		t.Fatalf("create link: %v", err)
	}
	resp, out := e.call(t, deletion(t, "ev-del-1", link))
	if resp.StatusCode != http.StatusOK || out["applied"] != float64(1) {
		t.Fatalf("answer = %d %s, want 200 applied 1", resp.StatusCode, resp.Body)
	}
	l, err := store.GetLink(t.Context(), link)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if l.Pending.Work != linkstore.WorkPurge {
		t.Errorf("pending work = %+v, want the link's purge", l.Pending)
	}
	due, err := store.ListAttention(t.Context(), linkstore.PendingWorkDue, now.Add(time.Hour), 0)
	if err != nil || len(due) != 1 || due[0].LinkID != link {
		t.Errorf("pending-work list = %+v, %v; want the link", due, err)
	}
}

func TestDynamoDeletionWithoutLinkKeptCountedLogged(t *testing.T) {
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	e := newEnvWith(t, linkstore.NewDynamo(client, table))
	resp, _ := e.call(t, deletion(t, "ev-del-2", ""))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	if n := e.metrics.Sum("DeletionsUnplaced", nil); n != 1 {
		t.Errorf("DeletionsUnplaced = %v, want 1", n)
	}
	if !strings.Contains(e.logs.String(), "deletion_unplaced") {
		t.Errorf("no deletion_unplaced log line: %s", e.logs.String())
	}
	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "EVENT#ev-del-2"}, "sk": &types.AttributeValueMemberS{Value: "#EVENT"},
	}})
	if err != nil || out.Item == nil {
		t.Fatalf("event record = %v, %v; want it kept", out.Item, err)
	}
	if _, ok := out.Item[linkstore.TTLAttribute]; ok {
		t.Errorf("unplaced deletion's record expires (has %s); it must be kept", linkstore.TTLAttribute)
	}
}
