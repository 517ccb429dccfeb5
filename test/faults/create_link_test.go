package faults_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

const linksPath = "/data/v1/links"

type createEnv struct {
	h      *linkapi.Handler
	klavi  *klaviSide
	aws    *faultproxy.Proxy
	table  string
	check  *linkstore.DynamoStore
	direct *dynamodb.Client
}

func newCreateEnv(t *testing.T) *createEnv {
	t.Helper()
	p, cfg := awsProxy(t)
	table, check := newTable(t)
	k := newKlaviSide(t)
	store := linkstore.NewDynamo(dynamodb.NewFromConfig(cfg), table, linkstore.WithClock(clock))
	h := linkapi.New(k.client, store, nil, linkapi.Config{
		AllowedRedirectHosts: []string{"app.example.com"},
		Now:                  clock,
	})
	return &createEnv{h: h, klavi: k, aws: p, table: table, check: check, direct: dynamodb.NewFromConfig(awstest.Config(t))}
}

// storedLinks counts the link items in the table.
func (e *createEnv) storedLinks(t *testing.T) int {
	t.Helper()
	out, err := e.direct.Scan(t.Context(), &dynamodb.ScanInput{
		TableName:                 aws.String(e.table),
		Select:                    types.SelectCount,
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("#t = :link"),
		ExpressionAttributeNames:  map[string]string{"#t": "type"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":link": &types.AttributeValueMemberS{Value: linkstore.ItemTypeLink}},
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return int(out.Count)
}

// TestCreateLinkFaults: whatever fails, the caller gets the stable error
// code and nothing is stored; the caller's retry then creates exactly one
// link. Klavi links created for a failed call (the "orphaned" column) are
// never shown to anyone; they expire at Klavi unused.
func TestCreateLinkFaults(t *testing.T) {
	klaviLinks := faultproxy.KlaviPath(linksPath)
	tests := []struct {
		name    string
		klavi   bool // the rule is on the Klavi side, else on DynamoDB
		rule    faultproxy.Rule
		timeout time.Duration // of the caller's context, 0 for none
		status  int
		code    string
		// calls is how many POST /links the client sent; reached how many
		// of them got to the simulator, each creating a Klavi link.
		calls, reached int
	}{
		{
			// The client does not repeat a POST on 5xx: the link might
			// have been created.
			name:   "Klavi 503",
			klavi:  true,
			rule:   faultproxy.Rule{Match: klaviLinks, Times: 1, Fault: faultproxy.Status(http.StatusServiceUnavailable)},
			status: http.StatusBadGateway, code: "klavi_error",
			calls: 1, reached: 0,
		},
		{
			// 429 means refused before acting, so the client retries it,
			// up to its 4 attempts.
			name:   "Klavi 429 beyond the client's retries",
			klavi:  true,
			rule:   faultproxy.Rule{Match: klaviLinks, Times: 4, Fault: faultproxy.Throttle()},
			status: http.StatusServiceUnavailable, code: "klavi_busy",
			calls: 4, reached: 0,
		},
		{
			// The connection broke after the request was written: the
			// client cannot tell whether Klavi acted, so it does not retry.
			name:   "reset before Klavi",
			klavi:  true,
			rule:   faultproxy.Rule{Match: klaviLinks, Times: 1, Fault: faultproxy.Reset()},
			status: http.StatusServiceUnavailable, code: "klavi_unavailable",
			calls: 1, reached: 0,
		},
		{
			// Klavi created the link and the answer was lost: one orphaned
			// Klavi link, and no second one from a blind retry.
			name:   "reset after Klavi created the link",
			klavi:  true,
			rule:   faultproxy.Rule{Match: klaviLinks, Times: 1, Fault: faultproxy.ResetAfterForward()},
			status: http.StatusServiceUnavailable, code: "klavi_unavailable",
			calls: 1, reached: 1,
		},
		{
			name:    "Klavi slower than the caller's deadline",
			klavi:   true,
			rule:    faultproxy.Rule{Match: klaviLinks, Times: 1, Fault: faultproxy.Delay(time.Minute)},
			timeout: 200 * time.Millisecond,
			status:  http.StatusServiceUnavailable, code: "klavi_unavailable",
			calls: 1, reached: 0,
		},
		{
			// The link store's write is an UpdateItem (a conditional
			// upsert, so a link first seen in an event is adopted). Klavi
			// has the link; we could not record it.
			name:   "store throttled beyond the SDK's retries",
			rule:   faultproxy.Rule{Match: faultproxy.DynamoDBOp("UpdateItem"), Times: sdkAttempts, Fault: faultproxy.Throttle()},
			status: http.StatusServiceUnavailable, code: "storage_unavailable",
			calls: 1, reached: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newCreateEnv(t)
			if tc.klavi {
				e.klavi.proxy.Inject(tc.rule)
			} else {
				e.aws.Inject(tc.rule)
			}
			req := loadEvent(t, "links-api-post.json")
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}

			a := call(ctx, t, e.h, req)

			if a.status != tc.status || a.code() != tc.code {
				t.Fatalf("answer = %d %s, want %d %s", a.status, a, tc.status, tc.code)
			}
			checkNoLeak(t, a)
			if got := e.klavi.proxy.Count(klaviLinks); got != tc.calls {
				t.Errorf("POST /links sent = %d, want %d", got, tc.calls)
			}
			if n := e.klavi.proxy.Armed() + e.aws.Armed(); n != 0 {
				t.Errorf("fault applications left = %d, want 0", n)
			}
			if got := e.klavi.received(linksPath); got != tc.reached {
				t.Errorf("POST /links at Klavi = %d, want %d", got, tc.reached)
			}
			if got := len(e.klavi.sim.Links()); got != tc.reached {
				t.Errorf("Klavi links = %d, want %d", got, tc.reached)
			}
			if got := e.storedLinks(t); got != 0 {
				t.Errorf("stored links = %d, want 0", got)
			}

			// The caller tries again once the fault is over.
			a = call(t.Context(), t, e.h, req)

			if a.status != http.StatusCreated {
				t.Fatalf("retry = %d %s, want 201", a.status, a)
			}
			id, _ := a.body["linkId"].(string)
			if _, err := e.check.GetLink(t.Context(), id); err != nil {
				t.Errorf("link %s of the 201 not stored: %v", id, err)
			}
			if got := e.storedLinks(t); got != 1 {
				t.Errorf("stored links after the retry = %d, want 1", got)
			}
			if got := len(e.klavi.sim.Links()); got != tc.reached+1 {
				t.Errorf("Klavi links after the retry = %d, want %d", got, tc.reached+1)
			}
		})
	}
}

// TestCreateLinkCalls pins the warm-path cost: Klavi 1 and DynamoDB 1.
func TestCreateLinkCalls(t *testing.T) {
	e := newCreateEnv(t)
	a := call(t.Context(), t, e.h, loadEvent(t, "links-api-post.json"))
	if a.status != http.StatusCreated {
		t.Fatalf("create = %d %s, want 201", a.status, a)
	}
	if k, d := e.klavi.proxy.Count(faultproxy.Any()), e.aws.Count(faultproxy.Any()); k != 1 || d != 1 {
		t.Errorf("calls: Klavi %d, DynamoDB %d; want 1, 1", k, d)
	}
}
