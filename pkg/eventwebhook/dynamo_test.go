package eventwebhook

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// newDynamoEnv runs the handler over the real DynamoDB store in the
// emulator, each test with its own table.
func newDynamoEnv(t *testing.T) *env {
	t.Helper()
	client := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstore.CreateTable(t.Context(), client, table); err != nil {
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
