package faults_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	// sdkAttempts is the standard retryer's default number of attempts,
	// set explicitly so that "beyond the SDK's retries" is a known count.
	sdkAttempts = 3

	// webhookSecret keys the webhook signatures (Klavi's secretKey).
	webhookSecret = "faults-webhook-secret-key"

	simAccessKey = "ak-faults"
	simSecretKey = "sk-faults-secret-key"

	fixtureLink = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureCPF  = "52998224725"
)

// now is the handlers' clock; webhook signatures are made at it.
var now = time.Date(2026, 11, 24, 12, 1, 30, 0, time.UTC)

func clock() time.Time { return now }

// awsProxy puts a fault proxy in front of the emulator and returns it with
// an SDK configuration that goes through it. Setup and checks use
// awstest.Config directly, so the proxy counts only the handler's calls.
//
// The configuration is loaded afresh with config.WithBaseEndpoint: setting
// BaseEndpoint on a copy of awstest.Config is not enough, because the
// clients resolve the endpoint again from the load options the copy still
// carries in ConfigSources, and would bypass the proxy.
func awsProxy(t *testing.T) (*faultproxy.Proxy, aws.Config) {
	t.Helper()
	p, url := serveProxy(t, awstest.Endpoint(t))
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion(awstest.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
		config.WithBaseEndpoint(url),
		config.WithRetryMaxAttempts(sdkAttempts),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = sdkAttempts
				// The retry decisions stay the SDK's; only the wait is cut.
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		}),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return p, cfg
}

// serveProxy serves a fault proxy to target until the test ends.
func serveProxy(t *testing.T, target string) (*faultproxy.Proxy, string) {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return p, srv.URL
}

// newTable creates a links table in the emulator and returns its name and
// a store over it that bypasses the proxy, for checks.
func newTable(t *testing.T) (string, *linkstore.DynamoStore) {
	t.Helper()
	db := dynamodb.NewFromConfig(awstest.Config(t))
	table := awstest.Name(t, "links")
	if err := linkstoretest.CreateTable(t.Context(), db, table); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return table, linkstore.NewDynamo(db, table)
}

// klaviSide is the Klavi simulator with a fault proxy in front of it and a
// client that goes through the proxy.
type klaviSide struct {
	sim    *klavisim.Simulator
	proxy  *faultproxy.Proxy
	client *klavi.Client // through the proxy
	direct *klavi.Client // straight to the simulator, for setup
	token  string
}

func newKlaviSide(t *testing.T) *klaviSide {
	t.Helper()
	sim := klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	sim.SetPublicURL(srv.URL)
	direct, err := klavi.New(srv.URL)
	if err != nil {
		t.Fatalf("klavi client: %v", err)
	}
	tok, err := direct.Auth(t.Context(), klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		t.Fatalf("klavi auth: %v", err)
	}
	k := &klaviSide{sim: sim, token: tok.AccessToken}
	k.direct, err = klavi.New(srv.URL, klavi.WithTokenSource(staticToken(tok.AccessToken)))
	if err != nil {
		t.Fatalf("klavi client: %v", err)
	}
	var proxyURL string
	k.proxy, proxyURL = serveProxy(t, srv.URL)
	k.client, err = klavi.New(proxyURL,
		klavi.WithTokenSource(staticToken(tok.AccessToken)),
		// The client's own retry rules apply; only its waits are cut.
		klavi.WithRetryPolicy(klavi.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}),
	)
	if err != nil {
		t.Fatalf("klavi client: %v", err)
	}
	return k
}

// received counts the requests the simulator itself got for path: those
// the proxy answered or dropped before forwarding are not among them.
func (k *klaviSide) received(path string) int {
	n := 0
	for _, r := range k.sim.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// staticToken is a token source holding one valid simulator token.
type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }
func (staticToken) Invalidate(string)                       {}

// staticKey hands the webhook handlers their HMAC key.
type staticKey string

func (k staticKey) SecretKey(context.Context) ([]byte, error) { return []byte(k), nil }

// loadEvent reads an API Gateway event from events/.
func loadEvent(t *testing.T, name string) httpapi.Request {
	t.Helper()
	raw, err := os.ReadFile("../../events/" + name)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	var req httpapi.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decode event %s: %v", name, err)
	}
	return req
}

// signedEvent loads a webhook event and signs its body with webhookSecret
// at now, as Klavi would.
func signedEvent(t *testing.T, name string) httpapi.Request {
	t.Helper()
	req := loadEvent(t, name)
	sig, ts := webhooksig.Sign([]byte(webhookSecret), []byte(req.Body), now)
	headers := make(map[string]string, len(req.Headers)+2)
	for k, v := range req.Headers {
		headers[k] = v
	}
	headers["x-klavi-signature"], headers["x-klavi-timestamp"] = sig, ts
	req.Headers = headers
	return req
}

// answer is a handler's response, decoded.
type answer struct {
	status int
	raw    string
	body   map[string]any
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) String() string { return a.raw }

type handler interface {
	Handle(ctx context.Context, req httpapi.Request) (httpapi.Response, error)
}

// call runs one request through h and decodes the answer. Handlers answer
// every failure with a status, never with an error.
func call(ctx context.Context, t *testing.T, h handler, req httpapi.Request) answer {
	t.Helper()
	resp, err := h.Handle(ctx, req)
	if err != nil {
		t.Fatalf("Handle returned error %v; handlers answer with a status instead", err)
	}
	a := answer{status: resp.StatusCode, raw: resp.Body}
	if err := json.Unmarshal([]byte(resp.Body), &a.body); err != nil {
		t.Fatalf("answer %q is not JSON: %v", resp.Body, err)
	}
	return a
}

// checkNoLeak fails when an answer carries a service's error text.
func checkNoLeak(t *testing.T, a answer) {
	t.Helper()
	for _, s := range []string{"Exception", "SlowDown", "InternalError", "faultproxy", "connection reset", fixtureCPF} {
		if strings.Contains(a.raw, s) {
			t.Errorf("answer leaks %q: %s", s, a.raw)
		}
	}
}
