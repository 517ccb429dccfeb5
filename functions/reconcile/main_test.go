package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	simAccessKey = "sim-access-key-reconcile-fn"
	simSecretKey = "sim-secret-key-reconcile-fn"
	cpf          = "98765432100"
	webhookURL   = "https://api.example.com/webhooks/klavi/reports"
	// The token secret as the template creates it: already expired, so the
	// function's first read falls back to Klavi /auth.
	initialTokenSecret = `{"accessToken":"","expiresAt":"1970-01-01T00:00:00Z"}`
)

// authTokens gets a token straight from Klavi /auth for the test's own
// calls to the simulator.
type authTokens struct {
	client *klavi.Client
	mu     sync.Mutex
	token  string
}

func (a *authTokens) Token(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		tok, err := a.client.Auth(ctx, klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
		if err != nil {
			return "", err
		}
		a.token = tok.AccessToken
	}
	return a.token, nil
}

func (a *authTokens) Invalidate(string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.token = ""
}

// The built function, under the Lambda Runtime Interface Emulator and
// invoked with events/reconcile-schedule.json, recovers a link whose
// consent_authorised event was lost: the consent ends AUTHORISED in the
// table and the simulator gets one report request, however often the
// schedule fires.
func TestScheduledSweepRecoversLostAuthorisation(t *testing.T) {
	ctx := t.Context()
	cfg := awstest.Config(t)
	db := dynamodb.NewFromConfig(cfg)
	sm := secretsmanager.NewFromConfig(cfg)
	table := awstest.Name(t, "links")
	credsSecret := awstest.Name(t, "klavi-credentials")
	tokenSecret := awstest.Name(t, "klavi-token")
	if err := linkstoretest.CreateTable(ctx, db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	creds, err := json.Marshal(klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{credsSecret: string(creds), tokenSecret: initialTokenSecret} {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
			t.Fatalf("create secret %s: %v", name, err)
		}
	}

	sim := klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	authClient, err := klavi.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := klavi.New(srv.URL, klavi.WithTokenSource(&authTokens{client: authClient}))
	if err != nil {
		t.Fatal(err)
	}
	kl, err := kc.CreateLink(ctx, klavi.CreateLinkRequest{
		PersonalTaxID: cpf, InstitutionCode: "001", RedirectURL: "https://app.example.com/done",
		ProductsCallbackURL: map[string]string{"all": webhookURL},
	})
	if err != nil {
		t.Fatalf("create link at Klavi: %v", err)
	}
	if _, err := sim.AuthoriseConsent(kl.LinkID, "001"); err != nil {
		t.Fatalf("authorise consent: %v", err)
	}
	// The table holds the link as links-api stored it; its expiry has
	// passed (the function runs on the real clock), and the authorisation
	// event never arrived.
	store := linkstore.NewDynamo(db, table)
	now := time.Now().UTC()
	if err := store.CreateLink(ctx, linkstore.Link{
		LinkID: kl.LinkID, TaxIDType: linkstore.TaxIDPersonal, TaxID: cpf, InstitutionCode: "001",
		ReportWebhookURL: webhookURL, CreatedAt: now.Add(-31 * time.Minute), ExpiresAt: now.Add(-time.Minute),
	}); err != nil {
		t.Fatalf("store link: %v", err)
	}

	bin := lambdatest.Build(t, "./functions/reconcile")
	fn := lambdatest.Start(t, bin, append(awstest.Env(t),
		"KLAVI_BASE_URL="+srv.URL,
		"KLAVI_CREDENTIALS_SECRET="+credsSecret,
		"KLAVI_TOKEN_SECRET="+tokenSecret,
		"LINKS_TABLE="+table,
		// The sweep finishes purges, so it is configured with the bucket;
		// this scenario deletes nothing from it.
		"REPORTS_BUCKET="+awstest.Name(t, "reports"),
	))
	for i := range 2 {
		out, ierr := fn.InvokeFile(t, "events/reconcile-schedule.json")
		if ierr != nil {
			t.Fatalf("invocation %d: %v\nlogs:\n%s", i+1, ierr, fn.Logs())
		}
		if string(out) != "null" {
			t.Errorf("invocation %d answered %s, want null", i+1, out)
		}
	}

	l, err := store.GetLink(ctx, kl.LinkID)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	if len(l.Consents) != 1 || l.Consents[0].Status != klavi.ConsentAuthorised || l.Consents[0].RequestID == "" {
		t.Errorf("stored consents = %+v, want one AUTHORISED with its request", l.Consents)
	}
	if reqs := sim.ReportRequests(); len(reqs) != 1 {
		t.Errorf("report requests at Klavi = %d, want 1", len(reqs))
	}
	logs := fn.Logs()
	for _, want := range []string{`"action":"consent_fixed"`, `"action":"report_requested"`, `"Action":"report_requested"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, cpf) {
		t.Errorf("logs carry the tax id:\n%s", logs)
	}
}
