package lambda_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// The functions under test, by directory name under functions/.
const (
	fnTokenRefresh  = "token-refresh"
	fnCreateLink    = "links-api"
	fnEventWebhook  = "event-webhook"
	fnReportRequest = "report-request"
	fnReportWebhook = "report-webhook"
	fnReconcile     = "reconcile"
	// fnIntegrationEvents publishes the table's stream to the bus.
	fnIntegrationEvents = "integration-events"
)

func functionNames() []string {
	return []string{fnTokenRefresh, fnCreateLink, fnEventWebhook, fnReportRequest, fnReportWebhook, fnReconcile, fnIntegrationEvents}
}

// Values of the deployment that the fixtures in events/ agree with.
const (
	simAccessKey = "ak-lambda-scenario"
	simSecretKey = "sk-lambda-scenario-3f9a1c"

	// The CPF of links-api-post.json, as sent and bare.
	cpfFormatted = "529.982.247-25"
	cpfBare      = "52998224725"

	// The redirectURL host of links-api-post.json.
	redirectHost = "app.example.com"
	// The report webhook links-api derives from the fixtures' domain.
	derivedWebhookURL = "https://abc123.execute-api.sa-east-1.amazonaws.com/webhooks/klavi/reports"

	// Placeholders the fixtures carry, replaced with live ids at run time.
	fixtureLinkID    = "4437b139-8a16-11ee-b636-487b6bad036a"
	fixtureConsentID = "f55c899f-11eb-231f-97c4-4b2c16484587"
	fixtureEventTime = "2026-11-24T12:00:00.000Z"

	// The token secret's value as the template creates it: already
	// expired, so the first reader gets a token instead of failing.
	initialTokenSecret = `{"accessToken":"","expiresAt":"1970-01-01T00:00:00Z"}`
)

// buildFunctions builds every function for the host, two at a time, once per
// test binary, and returns the binaries by function name.
func buildFunctions(t *testing.T) map[string]string {
	t.Helper()
	names := functionNames()
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "./functions/" + n
	}
	bins := lambdatest.BuildFor(t, lambdatest.Host(), pkgs...)
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = bins[i]
	}
	return out
}

// deployment is one stack in the emulators: the links table, the reports
// bucket, the two secrets, the event bus with a rule sending every event
// to an SQS queue (the consumer), the Klavi simulator on a local server,
// and every function running under its own Runtime Interface Emulator.
type deployment struct {
	sim         *klavisim.Simulator
	klaviURL    string
	cfg         aws.Config
	db          *dynamodb.Client
	s3          *s3.Client
	sm          *secretsmanager.Client
	sqs         *sqs.Client
	table       string
	bucket      string
	bus         string
	queueURL    string
	credsSecret string
	tokenSecret string
	fns         map[string]*lambdatest.Function
}

func deploy(t *testing.T) *deployment {
	t.Helper()
	return deployWith(t, nil)
}

// deployWith deploys with the simulator's options changed by simOptions
// (nil: none), which may keep d to reach the functions later.
func deployWith(t *testing.T, simOptions func(d *deployment, o *klavisim.Options)) *deployment {
	t.Helper()
	cfg := awstest.Config(t)
	bins := buildFunctions(t)
	d := &deployment{
		cfg:         cfg,
		db:          dynamodb.NewFromConfig(cfg),
		s3:          s3.NewFromConfig(cfg),
		sm:          secretsmanager.NewFromConfig(cfg),
		sqs:         sqs.NewFromConfig(cfg),
		table:       awstest.Name(t, "links"),
		bucket:      awstest.Name(t, "reports"),
		bus:         awstest.Name(t, "klavi-link"),
		credsSecret: awstest.Name(t, "klavi-credentials"),
		tokenSecret: awstest.Name(t, "klavi-token"),
		fns:         map[string]*lambdatest.Function{},
	}
	opts := klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey}
	if simOptions != nil {
		simOptions(d, &opts)
	}
	d.sim = klavisim.New(opts)
	t.Cleanup(d.sim.Close)
	srv := httptest.NewServer(d.sim)
	t.Cleanup(srv.Close)
	d.sim.SetPublicURL(srv.URL)
	d.klaviURL = srv.URL

	ctx := t.Context()
	if err := linkstoretest.CreateTable(ctx, d.db, d.table); err != nil {
		t.Fatalf("create links table: %v", err)
	}
	if _, err := d.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(d.bucket)}); err != nil {
		t.Fatalf("create reports bucket: %v", err)
	}
	creds, err := json.Marshal(map[string]string{"accessKey": simAccessKey, "secretKey": simSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{d.credsSecret: string(creds), d.tokenSecret: initialTokenSecret} {
		if _, err := d.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name:         aws.String(name),
			SecretString: aws.String(value),
		}); err != nil {
			t.Fatalf("create secret %s: %v", name, err)
		}
	}

	d.queueURL = createConsumer(t, cfg, d.bus)

	env := append(awstest.Env(t),
		"KLAVI_BASE_URL="+d.klaviURL,
		"KLAVI_CREDENTIALS_SECRET="+d.credsSecret,
		"KLAVI_TOKEN_SECRET="+d.tokenSecret,
		"LINKS_TABLE="+d.table,
		"REPORTS_BUCKET="+d.bucket,
		"ALLOWED_REDIRECT_HOSTS="+redirectHost,
		// The webhook fixtures come from this range.
		"KLAVI_SOURCE_IPS=18.231.92.0/24",
		"EVENT_BUS_NAME="+d.bus,
		"REPORT_URL_TTL="+reportURLTTL.String(),
	)
	for _, name := range functionNames() {
		d.fns[name] = lambdatest.Start(t, bins[name], env)
	}
	return d
}

// reportURLTTL is the deployment's REPORT_URL_TTL.
const reportURLTTL = 2 * time.Minute

// createConsumer creates the bus and, as a fintech's system would, a rule
// sending every klavi-link event on it to a new SQS queue, whose URL it
// returns.
func createConsumer(t *testing.T, cfg aws.Config, bus string) string {
	t.Helper()
	ctx := t.Context()
	eb := eventbridge.NewFromConfig(cfg)
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("create bus: %v", err)
	}
	q := sqs.NewFromConfig(cfg)
	queue, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(awstest.Name(t, "consumer"))})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: queue.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("queue arn: %v", err)
	}
	rule := awstest.Name(t, "all-klavi-link")
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(bus),
		EventPattern: aws.String(`{"source":["klavi-link"]}`)}); err != nil {
		t.Fatalf("put rule: %v", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(rule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("consumer"), Arn: aws.String(attrs.Attributes["QueueArn"])}}}); err != nil {
		t.Fatalf("put targets: %v", err)
	}
	return aws.ToString(queue.QueueUrl)
}

// invoke sends payload to a function and fails the test unless the function
// answered with a result.
func (d *deployment) invoke(t *testing.T, fn string, payload []byte) []byte {
	t.Helper()
	f := d.fns[fn]
	out, ierr := f.Invoke(t, payload)
	if ierr != nil {
		t.Fatalf("invoke %s: %v\nlogs:\n%s", fn, ierr, tail(f.Logs()))
	}
	return out
}

// invokeHTTP invokes a function with an API Gateway HTTP API event and
// returns the status and the decoded body of its answer.
func (d *deployment) invokeHTTP(t *testing.T, fn string, event []byte) (int, []byte) {
	t.Helper()
	out := d.invoke(t, fn, event)
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s answer is not an HTTP API response: %v\n%s", fn, err, out)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			t.Fatalf("%s answer body is not base64: %v", fn, err)
		}
	}
	return resp.StatusCode, body
}

// fixture returns events/<name> with each old string replaced by its new
// one (pairs, as strings.NewReplacer takes them).
func fixture(t *testing.T, name string, oldnew ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lambdatest.ModuleRoot(t), "events", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if len(oldnew) == 0 {
		return b
	}
	return []byte(strings.NewReplacer(oldnew...).Replace(string(b)))
}

// fixtureBody returns the body of an HTTP API fixture.
func fixtureBody(t *testing.T, event []byte) string {
	t.Helper()
	var ev struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("fixture is not an HTTP API event: %v", err)
	}
	return ev.Body
}

// webhookEvent returns the HTTP API event with its body replaced by body and
// the Klavi signature headers set to a signature of signedBody made now with
// the simulator's secretKey. Passing a signedBody other than body gives a
// tampered delivery.
func webhookEvent(t *testing.T, event []byte, body, signedBody string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("fixture is not a JSON object: %v", err)
	}
	headers, ok := ev["headers"].(map[string]any)
	if !ok {
		t.Fatal("fixture has no headers object")
	}
	sig, ts := webhooksig.Sign([]byte(simSecretKey), []byte(signedBody), time.Now())
	headers["x-klavi-signature"] = sig
	headers["x-klavi-timestamp"] = ts
	ev["body"] = body
	ev["isBase64Encoded"] = false
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// item reads one item of the links table, nil when there is none.
func (d *deployment) item(t *testing.T, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := d.db.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk},
			"sk": &types.AttributeValueMemberS{Value: sk},
		},
	})
	if err != nil {
		t.Fatalf("get item %s %s: %v", pk, sk, err)
	}
	return out.Item
}

// partition returns every item of pk, in sort key order.
func (d *deployment) partition(t *testing.T, pk string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := d.db.Query(t.Context(), &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
	})
	if err != nil {
		t.Fatalf("query %s: %v", pk, err)
	}
	return out.Items
}

// snapshot is a partition as plain JSON values, for comparing before and
// after a call that must change nothing.
func (d *deployment) snapshot(t *testing.T, pk string) []any {
	t.Helper()
	items := d.partition(t, pk)
	images := make([]map[string]events.DynamoDBAttributeValue, len(items))
	for i, it := range items {
		images[i] = awstest.StreamImage(it)
	}
	b, err := json.Marshal(images)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// attr returns a string or number attribute's text, "" when absent.
func attr(it map[string]types.AttributeValue, name string) string {
	switch v := it[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

// requestsSince returns the simulator's requests after the first n.
func (d *deployment) requestsSince(n int) []klavisim.Request {
	all := d.sim.Requests()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// calls lists requests as "METHOD /path -> status", for messages and
// comparisons.
func calls(reqs []klavisim.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Method + " " + r.Path + " -> " + strconv.Itoa(r.Status)
	}
	return out
}

// tail keeps failure messages readable when a log is long.
func tail(s string) string {
	const limit = 6 << 10
	if len(s) <= limit {
		return s
	}
	return "...\n" + s[len(s)-limit:]
}
