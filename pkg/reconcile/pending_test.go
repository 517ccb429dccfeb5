package reconcile

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
)

// TestPendingPurgeRedone: a purge the stream gave up on (its mark is all
// that is left once the stream's records expire) is done by the sweep,
// against DynamoDB and S3 in the emulator.
func TestPendingPurgeRedone(t *testing.T) {
	ctx := t.Context()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	clock := &testClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	store := linkstore.NewDynamo(db, table, linkstore.WithClock(clock.Now))
	s3c := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "reports")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	objects := reportstore.New(s3c, bucket, reportstore.Options{})

	const linkID = "5548c24a-9b27-11ee-b636-487b6bad036a"
	if err := store.CreateLink(ctx, linkstore.Link{LinkID: linkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: cpfA,
		CreatedAt: clock.Now(), ExpiresAt: clock.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("create link: %v", err)
	}
	if _, err := store.ApplyEvent(ctx, linkstore.EventChange{EventID: "e1", LinkID: linkID, ConsentID: "c1",
		ConsentStatus: klavi.ConsentDeletedByUser, EventTime: clock.Now()}); err != nil {
		t.Fatalf("apply deletion: %v", err)
	}
	key := reportstore.ReportKey(linkID, "pf_checking_account", "pr-1")
	if _, err := objects.Put(ctx, reportstore.Object{Key: key, Body: []byte(`{"report":true}`)}); err != nil {
		t.Fatalf("put report: %v", err)
	}
	// What the stream handler leaves when the purge keeps failing.
	if err := store.MarkPending(ctx, linkID, linkstore.PendingWork{Work: linkstore.WorkPurge, ConsentID: "c1", At: clock.Now()}); err != nil {
		t.Fatalf("mark: %v", err)
	}

	purger := reports.New(nil, store, objects, reports.Config{Now: clock.Now})
	sweep := New(store, nil, nil, Config{Purger: purger, Now: clock.Now})
	clock.Advance(time.Minute)
	sum, err := sweep.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionPurged: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	l, err := store.GetLink(ctx, linkID)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	if l.PurgedAt.IsZero() || l.TaxID != "" || len(l.Consents) != 0 || l.Pending != (linkstore.PendingWork{}) {
		t.Errorf("link = %+v, want a tombstone without pending work", l)
	}
	listed, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil || len(listed.Contents) != 0 {
		t.Errorf("objects left = %d, %v; want none", len(listed.Contents), err)
	}
	if sum, err := sweep.Run(ctx); err != nil || sum.Due != 0 {
		t.Errorf("second Run = %+v, %v; want nothing due", sum, err)
	}
}

// TestRequestedDeletionFinishedAgainstKlavi: DELETE /links/{linkId} that
// Klavi's failure stopped before the purge is finished by the sweep, on
// DynamoDB and S3 in the emulator and the Klavi simulator: the consent is
// REVOKED at Klavi, the link's reports are gone and the link is DELETED.
func TestRequestedDeletionFinishedAgainstKlavi(t *testing.T) {
	ctx := t.Context()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	clock := &testClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	store := linkstore.NewDynamo(db, table, linkstore.WithClock(clock.Now))
	s3c := s3.NewFromConfig(cfg)
	bucket := awstest.Name(t, "reports")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	objects := reportstore.New(s3c, bucket, reportstore.Options{})

	sim := klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	authClient, err := klavi.New(srv.URL)
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}
	kc, err := klavi.New(srv.URL, klavi.WithTokenSource(&authTokens{
		client: authClient, creds: klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey},
	}))
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}
	kl, err := kc.CreateLink(ctx, klavi.CreateLinkRequest{PersonalTaxID: cpfA, InstitutionCode: "001"})
	if err != nil {
		t.Fatalf("create link at Klavi: %v", err)
	}
	if err := store.CreateLink(ctx, linkstore.Link{LinkID: kl.LinkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: cpfA,
		InstitutionCode: "001", CreatedAt: clock.Now(), ExpiresAt: clock.Now().Add(kl.ExpiresIn)}); err != nil {
		t.Fatalf("store link: %v", err)
	}
	consent, err := sim.AuthoriseConsent(kl.LinkID, "001")
	if err != nil {
		t.Fatalf("authorise: %v", err)
	}
	if _, err := store.ApplyEvent(ctx, linkstore.EventChange{EventID: "e1", LinkID: kl.LinkID, ConsentID: consent.ID,
		InstitutionCode: "001", ConsentStatus: klavi.ConsentAuthorised, EventTime: clock.Now()}); err != nil {
		t.Fatalf("apply authorisation: %v", err)
	}
	key := reportstore.ReportKey(kl.LinkID, "pf_checking_account", "pr-1")
	if _, err := objects.Put(ctx, reportstore.Object{Key: key, Body: []byte(`{"report":true}`)}); err != nil {
		t.Fatalf("put report: %v", err)
	}

	requester := reports.New(kc, store, objects, reports.Config{Now: clock.Now})
	deleter := revocation.New(kc, store, requester, revocation.Config{Now: clock.Now})
	// Klavi fails the revocation, through the client's retries.
	sim.FailNext(klavisim.Rule{Method: "DELETE", Path: "/data/v1/consents", Status: 500, Times: 10})
	link, err := store.GetLink(ctx, kl.LinkID)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	if _, err := deleter.Delete(ctx, link); !errors.Is(err, revocation.ErrIncomplete) {
		t.Fatalf("Delete = %v, want ErrIncomplete", err)
	}
	sim.Reset()
	if c, _ := sim.Consent(consent.ID); c.Status != klavi.ConsentAuthorised {
		t.Fatalf("consent at Klavi = %s, want still AUTHORISED", c.Status)
	}

	sweep := New(store, kc, requester, Config{AutoRequest: true, Purger: requester, Deleter: deleter, Now: clock.Now})
	clock.Advance(2 * time.Minute) // past the failed revocation's claim
	sum, err := sweep.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionDeleted: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	if c, _ := sim.Consent(consent.ID); c.Status != klavi.ConsentRevoked {
		t.Errorf("consent at Klavi = %s, want REVOKED", c.Status)
	}
	if n := len(sim.ReportRequests()); n != 0 {
		t.Errorf("report requests at Klavi = %d, want none for a link being deleted", n)
	}
	l, err := store.GetLink(ctx, kl.LinkID)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	if got := l.Status(clock.Now()); got != linkstore.StatusDeleted || l.TaxID != "" || len(l.Consents) != 0 {
		t.Errorf("link = status %s, %d consents, tax id kept %v; want a DELETED tombstone", got, len(l.Consents), l.TaxID != "")
	}
	listed, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil || len(listed.Contents) != 0 {
		t.Errorf("objects left = %d, %v; want none", len(listed.Contents), err)
	}
	if sum, err := sweep.Run(ctx); err != nil || sum.Due != 0 {
		t.Errorf("second Run = %+v, %v; want nothing due", sum, err)
	}
}
