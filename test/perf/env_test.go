package perf_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/lambdaapp"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	simAccessKey = "ak-perf"
	simSecretKey = "sk-perf-secret-key" // also the webhook HMAC key

	fixtureCPF  = "52998224725"
	institution = "260"
	webhookURL  = "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"

	authPath = "/data/v1/auth"
)

// Matchers for the calls counted at the proxies. faultproxy names single
// operations; the bars count every call to a service.
var (
	anyDynamoDB faultproxy.Matcher = func(r *http.Request) bool {
		return strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	}
	// anyS3 selects requests signed for S3 (SigV4 credential scope
	// .../s3/aws4_request), whatever the operation.
	anyS3 faultproxy.Matcher = func(r *http.Request) bool {
		return r.Header.Get("X-Amz-Target") == "" &&
			strings.Contains(r.Header.Get("Authorization"), "/s3/aws4_request")
	}
	secretsReads = faultproxy.SecretsGet()
	klaviAuth    = faultproxy.KlaviPath(authPath)
	klaviRefresh = faultproxy.KlaviPath("/data/v1/refresh")
)

// fakeClock is the deployment's clock in the schedule simulation: token
// sources, the token-refresh run and the Klavi simulator's token expiry all
// read it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// deployment is what every function instance shares: the tables, bucket and
// secrets in the emulator, Klavi (the simulator) behind its counting proxy,
// and the token-refresh function's token source.
type deployment struct {
	now func() time.Time

	awsEndpoint string // the emulator, for the instances' proxies

	sim      *klavisim.Simulator
	klavi    *faultproxy.Proxy // every Klavi call of the deployment
	klaviURL string            // the proxy's URL
	// setupKlavi goes straight to the simulator, for setup only.
	setupKlavi *klavi.Client

	table   string
	bucket  string
	credsID string
	tokenID string
	check   *linkstore.DynamoStore // bypasses the proxies

	// refresher is the token-refresh function's token source: Secrets
	// Manager straight, Klavi /auth through the proxy, so that its /auth
	// calls count for the deployment.
	refresher *tokensource.Source
}

// newDeployment builds a deployment whose clock is now (time.Now when nil).
func newDeployment(tb testing.TB, now func() time.Time) *deployment {
	tb.Helper()
	ctx := context.Background()
	if now == nil {
		now = time.Now
	}
	d := &deployment{now: now, awsEndpoint: awstest.Endpoint(tb)}
	direct := awstest.Config(tb)

	d.table = awstest.Name(tb, "links")
	if err := linkstoretest.CreateTable(ctx, dynamodb.NewFromConfig(direct), d.table); err != nil {
		tb.Fatalf("create table: %v", err)
	}
	d.check = linkstore.NewDynamo(dynamodb.NewFromConfig(direct), d.table)
	d.bucket = awstest.Name(tb, "reports")
	if _, err := s3.NewFromConfig(direct).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(d.bucket)}); err != nil {
		tb.Fatalf("create bucket: %v", err)
	}

	// The token secret starts as the template creates it: expired, so
	// nothing is served from it before the first refresh.
	sm := secretsmanager.NewFromConfig(direct)
	d.credsID, d.tokenID = awstest.Name(tb, "klavi-credentials"), awstest.Name(tb, "klavi-token")
	creds, _ := json.Marshal(klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	for id, value := range map[string]string{
		d.credsID: string(creds),
		d.tokenID: `{"accessToken":"","expiresAt":"1970-01-01T00:00:00Z"}`,
	} {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(value)}); err != nil {
			tb.Fatalf("create secret: %v", err)
		}
	}

	d.sim = klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey, Now: now})
	simSrv := httptest.NewServer(d.sim)
	tb.Cleanup(func() {
		d.sim.Close()
		simSrv.Close()
	})
	d.sim.SetPublicURL(simSrv.URL)
	d.klavi, d.klaviURL = serveProxy(tb, simSrv.URL)

	authClient, err := klavi.New(simSrv.URL)
	if err != nil {
		tb.Fatalf("klavi client: %v", err)
	}
	tok, err := authClient.Auth(ctx, klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		tb.Fatalf("klavi auth for setup: %v", err)
	}
	if d.setupKlavi, err = klavi.New(simSrv.URL, klavi.WithTokenSource(staticToken(tok.AccessToken))); err != nil {
		tb.Fatalf("klavi client: %v", err)
	}

	refreshAuth, err := klavi.New(d.klaviURL)
	if err != nil {
		tb.Fatalf("klavi client: %v", err)
	}
	d.refresher, err = tokensource.New(sm, refreshAuth, tokensource.Config{
		CredentialsSecretID: d.credsID,
		TokenSecretID:       d.tokenID,
		Now:                 now,
	})
	if err != nil {
		tb.Fatalf("token source: %v", err)
	}
	return d
}

// refresh runs the token-refresh function once.
func (d *deployment) refresh(tb testing.TB) {
	tb.Helper()
	if _, err := d.refresher.Rotate(context.Background()); err != nil {
		tb.Fatalf("token refresh: %v", err)
	}
}

// instance is one warm function instance: what lambdaapp builds once per
// cold start, with the AWS configuration pointed at its own counting proxy.
type instance struct {
	aws     *faultproxy.Proxy
	tokens  *tokensource.Source
	klavi   *klavi.Client
	links   *linkstore.DynamoStore
	reports *reportstore.Store
}

// newInstance wires an instance as lambdaapp.Load, App.Tokens, App.Klavi
// and the functions' main do: config.LoadDefaultConfig, the SDK's own
// clients. The endpoint is a load option (config.WithBaseEndpoint), as
// AWS_ENDPOINT_URL is for the functions, so the clients resolve it to the
// proxy.
func (d *deployment) newInstance(tb testing.TB) *instance {
	tb.Helper()
	p, url := serveProxy(tb, d.awsEndpoint)
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(awstest.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
		config.WithBaseEndpoint(url),
	)
	if err != nil {
		tb.Fatalf("load AWS config: %v", err)
	}
	authClient, err := klavi.New(d.klaviURL)
	if err != nil {
		tb.Fatalf("klavi auth client: %v", err)
	}
	src, err := tokensource.New(secretsmanager.NewFromConfig(cfg), authClient, tokensource.Config{
		CredentialsSecretID: d.credsID,
		TokenSecretID:       d.tokenID,
		Now:                 d.now,
	})
	if err != nil {
		tb.Fatalf("token source: %v", err)
	}
	kc, err := klavi.New(d.klaviURL, klavi.WithTokenSource(src))
	if err != nil {
		tb.Fatalf("klavi client: %v", err)
	}
	return &instance{
		aws:     p,
		tokens:  src,
		klavi:   kc,
		links:   linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), d.table),
		reports: reportstore.New(s3.NewFromConfig(cfg, lambdaapp.S3Options), d.bucket, reportstore.Options{}),
	}
}

// serveProxy serves a counting proxy to target until the test ends.
func serveProxy(tb testing.TB, target string) (*faultproxy.Proxy, string) {
	tb.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return p, srv.URL
}

// calls counts what one instance sent out, by service. Klavi counts the
// whole deployment's Klavi calls, /auth included; auth counts /auth alone.
type calls struct {
	klavi, auth, refresh, dynamodb, s3, secrets int
	// otherAWS is every AWS call that is none of the above (an STS call, a
	// DescribeSecret): none is expected.
	otherAWS int
}

func (d *deployment) count(in *instance) calls {
	c := calls{
		klavi:    d.klavi.Count(faultproxy.Any()),
		auth:     d.klavi.Count(klaviAuth),
		refresh:  d.klavi.Count(klaviRefresh),
		dynamodb: in.aws.Count(anyDynamoDB),
		s3:       in.aws.Count(anyS3),
		secrets:  in.aws.Count(secretsReads),
	}
	c.otherAWS = in.aws.Count(faultproxy.Any()) - c.dynamodb - c.s3 - c.secrets
	return c
}

func (c calls) minus(o calls) calls {
	return calls{
		klavi:    c.klavi - o.klavi,
		auth:     c.auth - o.auth,
		refresh:  c.refresh - o.refresh,
		dynamodb: c.dynamodb - o.dynamodb,
		s3:       c.s3 - o.s3,
		secrets:  c.secrets - o.secrets,
		otherAWS: c.otherAWS - o.otherAWS,
	}
}

func (c calls) String() string {
	return fmt.Sprintf("Klavi %d (/auth %d, /refresh %d), DynamoDB %d, S3 %d, Secrets Manager reads %d, other AWS %d",
		c.klavi, c.auth, c.refresh, c.dynamodb, c.s3, c.secrets, c.otherAWS)
}

// staticToken is a token source holding one simulator token, for setup.
type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }
func (staticToken) Invalidate(string)                       {}

// newID returns a random lowercase UUID-shaped id, the form Klavi's ids take.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
