package reconcile

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics/metricstest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	simAccessKey = "sim-access-key-reconcile"
	simSecretKey = "sim-secret-key-reconcile"
	webhookURL   = "https://api.example.com/webhooks/klavi/reports"
)

// authTokens is a klavi.TokenSource over Klavi's /auth, standing in for
// the Secrets Manager-backed source of the functions.
type authTokens struct {
	client *klavi.Client
	creds  klavi.Credentials

	mu    sync.Mutex
	token string
}

func (a *authTokens) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		tok, err := a.client.Auth(ctx, a.creds)
		if err != nil {
			return "", err
		}
		a.token = tok.AccessToken
	}
	return a.token, nil
}

func (a *authTokens) Invalidate(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == token {
		a.token = ""
	}
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A consent_authorised event that never reached the webhook is recovered
// by the sweep against the DynamoDB store and the Klavi simulator: the
// consent ends AUTHORISED in the store and Klavi gets exactly one report
// request.
func TestDroppedAuthorisationRecovered(t *testing.T) {
	ctx := t.Context()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	clock := &testClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	store := linkstore.NewDynamo(db, table, linkstore.WithClock(clock.Now))

	// No event webhook is configured: the simulator's events go nowhere.
	sim := klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	authClient, err := klavi.New(srv.URL)
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}
	kc, err := klavi.New(srv.URL, klavi.WithTokenSource(&authTokens{
		client: authClient,
		creds:  klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey},
	}))
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}

	kl, err := kc.CreateLink(ctx, klavi.CreateLinkRequest{
		PersonalTaxID:       cpfA,
		InstitutionCode:     "001",
		RedirectURL:         "https://app.example.com/done",
		ProductsCallbackURL: map[string]string{"all": webhookURL},
	})
	if err != nil {
		t.Fatalf("create link at Klavi: %v", err)
	}
	if err := store.CreateLink(ctx, linkstore.Link{
		LinkID: kl.LinkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: cpfA, InstitutionCode: "001",
		ReportWebhookURL: webhookURL, CreatedAt: clock.Now(), ExpiresAt: clock.Now().Add(kl.ExpiresIn),
	}); err != nil {
		t.Fatalf("store link: %v", err)
	}
	consent, err := sim.AuthoriseConsent(kl.LinkID, "001")
	if err != nil {
		t.Fatalf("authorise consent: %v", err)
	}

	logs := &syncBuffer{}
	rec := metricstest.NewCapture("reconcile")
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	requester := reports.New(kc, store, nil, reports.Config{
		Logger: logger, Metrics: rec.Recorder, Now: clock.Now,
	})
	sweep := New(store, kc, requester, Config{
		AutoRequest: true, Now: clock.Now, Logger: logger, Metrics: rec.Recorder,
	})
	institutionRequests := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Path == "/data/v1/personal/institution-data" {
				n++
			}
		}
		return n
	}

	// The link is past its expiry: the sweep takes it up.
	clock.Advance(kl.ExpiresIn + time.Minute)
	sum, err := sweep.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionConsentFixed: 1, ActionReportRequested: 1}); diff != "" {
		t.Errorf("actions (-got +want):\n%s", diff)
	}
	l, err := store.GetLink(ctx, kl.LinkID)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	if len(l.Consents) != 1 || l.Consents[0].ConsentID != consent.ID ||
		l.Consents[0].Status != klavi.ConsentAuthorised || l.Consents[0].RequestID == "" {
		t.Fatalf("stored consents = %+v, want %s AUTHORISED with a request", l.Consents, consent.ID)
	}
	if got := l.Status(clock.Now()); got != linkstore.StatusReportsRequested {
		t.Errorf("link status = %s, want %s", got, linkstore.StatusReportsRequested)
	}
	reqs := sim.ReportRequests()
	if len(reqs) != 1 {
		t.Fatalf("report requests at Klavi = %d, want 1", len(reqs))
	}
	got := []string{reqs[0].ID, reqs[0].LinkID, strings.Join(reqs[0].ConsentIDs, ","), reqs[0].InstitutionCode, reqs[0].ProductsCallbackURL["all"]}
	want := []string{l.Consents[0].RequestID, kl.LinkID, consent.ID, "001", webhookURL}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("report request at Klavi (-got +want):\n%s", diff)
	}

	// The same sweep again finds nothing to do.
	if sum, err := sweep.Run(ctx); err != nil || sum.Due != 0 {
		t.Errorf("second Run = %+v, %v; want nothing due", sum, err)
	}
	// Once ReconcileAfter has passed without a report, the link is
	// reported and taken off the list; Klavi is not asked a second time.
	clock.Advance(linkstore.DefaultReportGrace + time.Minute)
	sum, err = sweep.Run(ctx)
	if err != nil {
		t.Fatalf("later Run: %v", err)
	}
	if diff := cmp.Diff(sum.Actions, map[Action]int{ActionReportsMissing: 1, ActionAttentionCleared: 1}); diff != "" {
		t.Errorf("later actions (-got +want):\n%s", diff)
	}
	if n := institutionRequests(); n != 1 {
		t.Errorf("report requests reaching Klavi = %d, want 1", n)
	}
	if strings.Contains(logs.String(), cpfA) {
		t.Errorf("logs carry the tax id:\n%s", logs.String())
	}
}
