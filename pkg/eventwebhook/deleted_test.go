package eventwebhook

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// revocations is Klavi's revoke endpoint; it accepts every revocation.
type revocations struct {
	mu    sync.Mutex
	calls []string
}

func (r *revocations) RevokeConsent(_ context.Context, consentID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, consentID)
	return nil
}

// After DELETE /links/{linkId} (the deletion service with the route's
// purge, against DynamoDB and S3 in the emulator), Klavi's later events for
// the link (the consent_revoked the revocation causes, a late
// consent_authorised, a redelivery of the first authorisation) are
// acknowledged so that Klavi stops, and change nothing: the link stays
// DELETED, no consent comes back and nothing puts it on the
// reconciliation list again.
func TestEventsAfterDeleteChangeNothing(t *testing.T) {
	ctx := t.Context()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	s3c := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "reports")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	clock := func() time.Time { return now }
	store := linkstore.NewDynamo(db, table, linkstore.WithClock(clock))
	if err := store.CreateLink(ctx, linkstore.Link{LinkID: fixtureLink, TaxIDType: linkstore.TaxIDPersonal, TaxID: fixtureCPF,
		CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(30 * time.Minute)}); err != nil {
		t.Fatalf("create link: %v", err)
	}
	e := newEnvWith(t, store)
	authorised := fixture(t)
	authorised = signed(authorised, authorised.Body, testSecret, now)
	if resp, _ := e.call(t, authorised); resp.StatusCode != http.StatusOK {
		t.Fatalf("authorisation = %d %s, want 200", resp.StatusCode, resp.Body)
	}
	if got := e.status(t); got != linkstore.StatusAuthorised {
		t.Fatalf("status before the delete = %s, want AUTHORISED", got)
	}

	klavi := &revocations{}
	purger := reports.New(nil, store, reportstore.New(s3c, bucket, reportstore.Options{}), reports.Config{Now: clock})
	svc := revocation.New(klavi, store, purger, revocation.Config{Now: clock})
	link, err := store.GetLink(ctx, fixtureLink)
	if err != nil {
		t.Fatalf("GetLink: %v", err)
	}
	if status, err := svc.Delete(ctx, link); err != nil || status != linkstore.StatusDeleted {
		t.Fatalf("Delete = %q, %v; want DELETED", status, err)
	}
	if len(klavi.calls) != 1 || klavi.calls[0] != fixtureCons {
		t.Fatalf("revocations = %v, want the authorised consent", klavi.calls)
	}

	later := now.Add(time.Minute).Format(time.RFC3339)
	for name, body := range map[string]string{
		"consent_revoked":         "[" + consentEvent("ev-after-revoked", "consent_revoked", later) + "]",
		"late consent_authorised": "[" + consentEvent("ev-after-authorised", "consent_authorised", later) + "]",
		"redelivery":              authorised.Body,
	} {
		if resp, _ := e.call(t, signed(fixture(t), body, testSecret, now.Add(time.Minute))); resp.StatusCode != http.StatusOK {
			t.Errorf("%s after the delete = %d %s, want 200", name, resp.StatusCode, resp.Body)
		}
	}
	// The new events are only recorded (their ids, so a redelivery is a
	// duplicate), the redelivery is a duplicate; none is applied.
	for outcome, want := range map[linkstore.Outcome]float64{linkstore.Recorded: 2, linkstore.Duplicate: 1, linkstore.Applied: 1} {
		if got := e.metrics.Sum("EventsProcessed", map[string]string{"Outcome": string(outcome)}); got != want {
			t.Errorf("EventsProcessed{Outcome=%s} = %v, want %v (the authorisation before the delete is the one applied)", outcome, got, want)
		}
	}

	l, err := store.GetLink(ctx, fixtureLink)
	if err != nil {
		t.Fatalf("GetLink after: %v", err)
	}
	if got := l.Status(now); got != linkstore.StatusDeleted || len(l.Consents) != 0 || l.TaxID != "" {
		t.Errorf("link after late events = status %s, consents %+v, tax id kept %v; want a DELETED tombstone", got, l.Consents, l.TaxID != "")
	}
	for _, kind := range []linkstore.AttentionKind{linkstore.AwaitingConsent, linkstore.AwaitingReports,
		linkstore.PendingWorkDue, linkstore.DeletionRequested} {
		due, err := store.ListAttention(ctx, kind, now.Add(365*24*time.Hour), 0)
		if err != nil {
			t.Fatalf("list %s: %v", kind, err)
		}
		if len(due) != 0 {
			t.Errorf("%s entries after the delete = %+v, want none", kind, due)
		}
	}
}
