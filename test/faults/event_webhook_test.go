package faults_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

const fixtureConsent = "f55c899f-11eb-231f-97c4-4b2c16484587"

var transactWrite = faultproxy.DynamoDBOp("TransactWriteItems")

type eventEnv struct {
	h     *eventwebhook.Handler
	proxy *faultproxy.Proxy
	check *linkstore.DynamoStore // bypasses the proxy
}

func newEventEnv(t *testing.T) *eventEnv {
	t.Helper()
	p, cfg := awsProxy(t)
	table, check := newTable(t)
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), table, linkstore.WithClock(clock))
	h := eventwebhook.New(staticKey(webhookSecret), store, eventwebhook.Config{
		Verifier: webhooksig.Verifier{Now: clock},
		Now:      clock,
	})
	return &eventEnv{h: h, proxy: p, check: check}
}

// link returns the fixture's link as stored, nil when there is none.
func (e *eventEnv) link(t *testing.T) *linkstore.Link {
	t.Helper()
	l, err := e.check.GetLink(t.Context(), fixtureLink)
	if errors.Is(err, linkstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	return l
}

// checkAuthorisedOnce fails unless the link holds exactly the fixture's
// consent, AUTHORISED.
func (e *eventEnv) checkAuthorisedOnce(t *testing.T) *linkstore.Link {
	t.Helper()
	l := e.link(t)
	if l == nil {
		t.Fatalf("no link stored, want the fixture's link AUTHORISED")
	}
	if len(l.Consents) != 1 || l.Consents[0].ConsentID != fixtureConsent || l.Consents[0].Status != klavi.ConsentAuthorised {
		t.Fatalf("consents = %+v, want exactly the fixture's consent AUTHORISED", l.Consents)
	}
	if got := l.Status(now); got != linkstore.StatusAuthorised {
		t.Errorf("link status = %q, want AUTHORISED", got)
	}
	return l
}

func counts(a answer) (applied, duplicates float64) {
	applied, _ = a.body["applied"].(float64)
	duplicates, _ = a.body["duplicates"].(float64)
	return applied, duplicates
}

// TestEventThrottledBeyondRetries: every attempt of the event's one
// transaction is throttled. Klavi gets a 503 and nothing is stored, so its
// redelivery applies the event, once.
func TestEventThrottledBeyondRetries(t *testing.T) {
	e := newEventEnv(t)
	req := signedEvent(t, "event-webhook-consent-authorised.json")
	e.proxy.Inject(faultproxy.Rule{Match: transactWrite, Times: sdkAttempts, Fault: faultproxy.Throttle()})

	a := call(t.Context(), t, e.h, req)

	if a.status != http.StatusServiceUnavailable || a.code() != "storage_unavailable" {
		t.Fatalf("throttled delivery = %d %s, want 503 storage_unavailable", a.status, a)
	}
	checkNoLeak(t, a)
	if got, fwd := e.proxy.Count(transactWrite), e.proxy.Forwarded(transactWrite); got != sdkAttempts || fwd != 0 {
		t.Errorf("TransactWriteItems attempts = %d, forwarded %d; want %d, 0", got, fwd, sdkAttempts)
	}
	if l := e.link(t); l != nil {
		t.Fatalf("throttled delivery stored a link: %+v", l)
	}

	a = call(t.Context(), t, e.h, req)

	if applied, dup := counts(a); a.status != http.StatusOK || applied != 1 || dup != 0 {
		t.Fatalf("redelivery = %d %s, want 200 applied 1", a.status, a)
	}
	e.checkAuthorisedOnce(t)
}

// TestEventResetAfterTransaction: the transaction commits but its answer is
// lost, so the caller of TransactWriteItems sees a reset although the event
// was applied.
func TestEventResetAfterTransaction(t *testing.T) {
	t.Run("SDK retry lands as a duplicate", func(t *testing.T) {
		e := newEventEnv(t)
		req := signedEvent(t, "event-webhook-consent-authorised.json")
		e.proxy.Inject(faultproxy.Rule{Match: transactWrite, Times: 1, Fault: faultproxy.ResetAfterForward()})

		a := call(t.Context(), t, e.h, req)

		// The SDK sends the transaction again with the same
		// ClientRequestToken. DynamoDB would treat that as the same
		// transaction and answer success ("applied"); the emulator ignores
		// the token and evaluates it again, so the event marker's condition
		// fails and the handler counts the event as a duplicate. Either way
		// Klavi gets 200 and the consent moved once. This pins the emulator
		// outcome.
		if applied, dup := counts(a); a.status != http.StatusOK || applied != 0 || dup != 1 {
			t.Fatalf("delivery = %d %s, want 200 with duplicates 1 (applied by the attempt whose answer was lost)", a.status, a)
		}
		if got := e.proxy.Forwarded(transactWrite); got != 2 {
			t.Errorf("TransactWriteItems forwarded = %d, want 2 (the lost one and the SDK's retry)", got)
		}
		before := e.checkAuthorisedOnce(t)

		a = call(t.Context(), t, e.h, req)

		if applied, dup := counts(a); a.status != http.StatusOK || applied != 0 || dup != 1 {
			t.Fatalf("redelivery = %d %s, want 200 duplicate", a.status, a)
		}
		if after := e.checkAuthorisedOnce(t); !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("redelivery changed the link: updatedAt %v -> %v", before.UpdatedAt, after.UpdatedAt)
		}
	})

	t.Run("every answer lost", func(t *testing.T) {
		e := newEventEnv(t)
		req := signedEvent(t, "event-webhook-consent-authorised.json")
		e.proxy.Inject(faultproxy.Rule{Match: transactWrite, Times: sdkAttempts, Fault: faultproxy.ResetAfterForward()})

		a := call(t.Context(), t, e.h, req)

		// The handler cannot know the first attempt committed: it answers
		// 503 although the whole effect is durable. That is the one
		// non-2xx with an effect, and it is complete, not partial: the
		// redelivery finds the event id and changes nothing.
		if a.status != http.StatusServiceUnavailable || a.code() != "storage_unavailable" {
			t.Fatalf("delivery = %d %s, want 503 storage_unavailable", a.status, a)
		}
		checkNoLeak(t, a)
		before := e.checkAuthorisedOnce(t)

		a = call(t.Context(), t, e.h, req)

		if applied, dup := counts(a); a.status != http.StatusOK || applied != 0 || dup != 1 {
			t.Fatalf("redelivery = %d %s, want 200 duplicate", a.status, a)
		}
		if after := e.checkAuthorisedOnce(t); !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("redelivery changed the link: updatedAt %v -> %v", before.UpdatedAt, after.UpdatedAt)
		}
	})
}

// TestEventDeliveryCallsDynamoDBOnce pins the warm-path cost: one delivery
// of one consent event is one DynamoDB call (design bar: at most 2).
func TestEventDeliveryCallsDynamoDBOnce(t *testing.T) {
	e := newEventEnv(t)
	a := call(t.Context(), t, e.h, signedEvent(t, "event-webhook-consent-authorised.json"))
	if a.status != http.StatusOK {
		t.Fatalf("delivery = %d %s, want 200", a.status, a)
	}
	if got := e.proxy.Count(faultproxy.Any()); got != 1 {
		t.Errorf("DynamoDB calls = %d, want 1", got)
	}
}
