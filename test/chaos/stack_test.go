package chaos_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openfinance-br/klavi-link-lambda/internal/devserver"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reconcile"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstream"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

const (
	simAccessKey = "chaos-access-key"
	simSecretKey = "chaos-secret-key"

	// The report-request function's stream settings (template.yaml), with
	// the waits between retries cut short.
	feedBatchSize  = 10
	feedMaxRetries = 5
	feedRetryBase  = 20 * time.Millisecond
)

// stack is the backend over HTTP, the simulator it talks to, and what the
// test needs to watch both.
type stack struct {
	sim        *klavisim.Simulator
	store      *linkstoretest.MemoryStore
	feed       *feed
	reconciler *reconcile.Reconciler
	clock      *clock
	products   *productLog
	url        string // the backend
	reportsDir string // the disk report store's root
	client     *http.Client
	logs       *syncBuffer
}

func newStack(t *testing.T, seed int64) *stack {
	t.Helper()
	s := &stack{
		clock:      &clock{},
		products:   &productLog{},
		reportsDir: filepath.Join(t.TempDir(), "reports"),
		logs:       &syncBuffer{},
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	s.sim = klavisim.New(klavisim.Options{
		Now:             klaviNow,
		AccessKey:       simAccessKey,
		SecretKey:       simSecretKey,
		GenerateReports: true,
		Seed:            seed,
		OnEvent:         s.products.observe,
	})
	simSrv := httptest.NewServer(s.sim)
	s.sim.SetPublicURL(simSrv.URL)

	// One token, taken before any chaos is switched on: the token path is
	// not what this test is about, and it lives 30 minutes.
	auth, err := klavi.New(simSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Auth(t.Context(), klavi.Credentials{AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		t.Fatalf("klavi auth: %v", err)
	}
	kc, err := klavi.New(simSrv.URL,
		klavi.WithTokenSource(staticToken(tok.AccessToken)),
		// The client's own retry rules apply; only its waits are cut.
		klavi.WithRetryPolicy(klavi.RetryPolicy{BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}),
	)
	if err != nil {
		t.Fatal(err)
	}

	s.feed = newFeed(log)
	s.store = linkstoretest.NewMemory(linkstoretest.WithConsentChanges(s.feed.add), linkstoretest.WithClock(s.clock.Now))
	disk, err := devserver.NewDiskStore(s.reportsDir)
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	backend := httptest.NewServer(mux)
	s.url = backend.URL
	webhookURL := backend.URL + "/webhooks/klavi/reports"
	keys := staticKey(simSecretKey)
	rr := reports.New(kc, s.store, disk, reports.Config{
		ReportWebhookURL: webhookURL,
		Logger:           log,
		Now:              s.clock.Now,
	})
	links := linkapi.New(kc, s.store, rr, linkapi.Config{
		AllowedRedirectHosts:  []string{"127.0.0.1"},
		ReportWebhookURL:      webhookURL,
		AllowLoopbackRedirect: true,
		Logger:                log,
		Now:                   s.clock.Now,
	})
	verifier := webhooksig.Verifier{Now: klaviNow}
	evh := eventwebhook.New(keys, s.store, eventwebhook.Config{Verifier: verifier, Logger: log, Now: s.clock.Now})
	rwh := reportwebhook.New(keys, disk, s.store, reportwebhook.Config{Verifier: verifier, Logger: log, Now: s.clock.Now})
	s.feed.handle = reportstream.New(rr, reportstream.Config{AutoRequest: true, Logger: log}).Handle
	s.reconciler = reconcile.New(s.store, kc, rr, reconcile.Config{AutoRequest: true, Logger: log, Now: s.clock.Now})

	mux.Handle("POST /links", lambdaRoute(links.Handle, "POST /links"))
	mux.Handle("GET /links/{linkId}", lambdaRoute(links.Handle, "GET /links/{linkId}", "linkId"))
	mux.Handle("POST /webhooks/klavi/events", lambdaRoute(evh.Handle, "POST /webhooks/klavi/events"))
	mux.Handle("POST /webhooks/klavi/reports", lambdaRoute(rwh.Handle, "POST /webhooks/klavi/reports"))
	s.sim.SetEventWebhookURL(backend.URL + "/webhooks/klavi/events")

	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		s.feed.run(ctx)
	}()
	t.Cleanup(func() {
		s.sim.Close() // no delivery outlives the backend
		stop()
		<-feedDone
		backend.Close()
		simSrv.Close()
		if t.Failed() {
			t.Logf("backend log:\n%s", s.logs.String())
		}
	})
	return s
}

// quiesce waits until nothing moves any more: the simulator has delivered
// (or given up on) every webhook and generated every report, and the feed
// has handed every consent change to the report-request function, which
// may have started new work at the simulator, and so on.
func (s *stack) quiesce(t *testing.T) {
	t.Helper()
	for range 100 {
		before := s.activity()
		s.sim.Wait()
		s.feed.wait()
		s.sim.Wait()
		if s.activity() == before {
			return
		}
	}
	t.Fatal("the stack never came to rest")
}

// activity changes whenever the simulator or the feed did something.
func (s *stack) activity() [3]int {
	return [3]int{len(s.sim.Deliveries()), len(s.sim.Requests()), s.feed.handled()}
}

// klaviNow is the simulator's clock, which stands still: its event ids
// begin with the event time and its chaos decisions are drawn from the ids,
// so a running clock would make every run meet different trouble. Webhook
// signatures are made and checked at this time.
func klaviNow() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }

// clock is the backend's clock: real time moved forward by what the test
// skips, so that the sweep can run past leases, grace periods and link
// expiry without waiting for them.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// productLog records, per link, the products the simulator generated
// (with their report ids) and those it failed to generate.
type productLog struct {
	mu        sync.Mutex
	generated map[string]map[string]string // linkId -> product -> productReportId
	failed    map[string][]string          // linkId -> products
}

func (p *productLog) observe(ev klavisim.Event) {
	if ev.Link == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Name {
	case klavisim.EventProductGeneratedSuccess:
		if p.generated == nil {
			p.generated = map[string]map[string]string{}
		}
		if p.generated[ev.Link.ID] == nil {
			p.generated[ev.Link.ID] = map[string]string{}
		}
		p.generated[ev.Link.ID][ev.ProductName] = ev.ProductReportID
	case klavisim.EventProductGeneratedFailed:
		if p.failed == nil {
			p.failed = map[string][]string{}
		}
		p.failed[ev.Link.ID] = append(p.failed[ev.Link.ID], ev.ProductName)
	}
}

// of returns what was generated and what failed for a link.
func (p *productLog) of(linkID string) (map[string]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gen := map[string]string{}
	for k, v := range p.generated[linkID] {
		gen[k] = v
	}
	return gen, slices.Clone(p.failed[linkID])
}

// feed stands in for the links table's stream and its event source
// mapping: the store's consent writes become stream records, handed in
// order and in batches to the report-request function, whose failed
// records are retried from the first failure a few times and then dropped
// (to the dead-letter queue, in a deployment). Unlike a real stream it can
// be paused: records then wait, as behind a throttled function.
type feed struct {
	handle func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)
	log    *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	seq     int
	queue   []events.DynamoDBEventRecord
	paused  bool
	busy    bool
	stopped bool
	done    int // records handled, successfully or not
	dropped int
}

func newFeed(log *slog.Logger) *feed {
	f := &feed{log: log}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// add queues the stream record of one consent write. The store calls it
// while other writes wait: it only queues.
func (f *feed) add(linkID string, old, new *linkstore.Consent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.queue = append(f.queue, linkstoretest.StreamRecord(linkID, old, new, fmt.Sprintf("%021d", f.seq)))
	f.cond.Broadcast()
}

func (f *feed) pause()  { f.setPaused(true) }
func (f *feed) resume() { f.setPaused(false) }

func (f *feed) setPaused(p bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = p
	f.cond.Broadcast()
}

// wait returns once no record waits and none is being handled; while the
// feed is paused, once none is being handled.
func (f *feed) wait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.busy || (len(f.queue) > 0 && !f.paused && !f.stopped) {
		f.cond.Wait()
	}
}

func (f *feed) handled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

func (f *feed) droppedRecords() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

// run hands records to the function until ctx ends.
func (f *feed) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stopped = true
		f.cond.Broadcast()
	})
	defer stop()
	for {
		f.mu.Lock()
		for !f.stopped && (f.paused || len(f.queue) == 0) {
			f.cond.Wait()
		}
		if f.stopped {
			f.mu.Unlock()
			return
		}
		n := min(len(f.queue), feedBatchSize)
		batch := slices.Clone(f.queue[:n])
		f.queue = f.queue[n:]
		f.busy = true
		f.mu.Unlock()

		dropped := f.deliver(ctx, batch)

		f.mu.Lock()
		f.busy = false
		f.done += len(batch)
		f.dropped += dropped
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// deliver invokes the function with batch, retrying failed records, and
// returns how many were dropped after the retries.
func (f *feed) deliver(ctx context.Context, batch []events.DynamoDBEventRecord) int {
	for attempt := 0; ; attempt++ {
		if attempt > feedMaxRetries {
			f.log.Error("stream records dropped after retries", "records", len(batch))
			return len(batch)
		}
		if attempt > 0 && !sleep(ctx, feedRetryBase<<(attempt-1)) {
			return len(batch)
		}
		ictx := lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: rand.Text()})
		resp, err := f.handle(ictx, events.DynamoDBEvent{Records: batch})
		if err != nil {
			continue // the whole batch again, as after a function error
		}
		first := -1
		for _, item := range resp.BatchItemFailures {
			i := slices.IndexFunc(batch, func(r events.DynamoDBEventRecord) bool {
				return r.Change.SequenceNumber == item.ItemIdentifier
			})
			if i < 0 {
				i = 0 // an unknown identifier fails the whole batch
			}
			if first < 0 || i < first {
				first = i
			}
		}
		if first < 0 {
			return 0
		}
		batch = batch[first:]
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// lambdaRoute serves one route of a function as API Gateway's HTTP API
// does: the request becomes a payload 2.0 event, the response is written
// back. A function error is API Gateway's 500.
func lambdaRoute(h func(context.Context, httpapi.Request) (httpapi.Response, error), routeKey string, params ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, `{"message":"Bad Request"}`, http.StatusBadRequest)
			return
		}
		requestID := rand.Text()
		headers := map[string]string{"host": r.Host}
		for name, values := range r.Header {
			headers[strings.ToLower(name)] = strings.Join(values, ",")
		}
		sourceIP, _, _ := net.SplitHostPort(r.RemoteAddr)
		ev := httpapi.Request{
			Version:        "2.0",
			RouteKey:       routeKey,
			RawPath:        r.URL.EscapedPath(),
			RawQueryString: r.URL.RawQuery,
			Headers:        headers,
		}
		if len(params) > 0 {
			ev.PathParameters = map[string]string{}
			for _, p := range params {
				ev.PathParameters[p] = r.PathValue(p)
			}
		}
		ev.RequestContext.RouteKey = routeKey
		ev.RequestContext.Stage = "$default"
		ev.RequestContext.RequestID = requestID
		ev.RequestContext.DomainName = r.Host
		ev.RequestContext.TimeEpoch = time.Now().UnixMilli()
		ev.RequestContext.HTTP.Method = r.Method
		ev.RequestContext.HTTP.Path = r.URL.Path
		ev.RequestContext.HTTP.Protocol = r.Proto
		ev.RequestContext.HTTP.SourceIP = sourceIP
		ev.RequestContext.HTTP.UserAgent = r.UserAgent()
		// The frontend's identity, as API Gateway's JWT authorizer gives it:
		// the links API answers 401 without one.
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "chaos-frontend"}},
		}
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}

		ctx := lambdacontext.NewContext(r.Context(), &lambdacontext.LambdaContext{AwsRequestID: requestID})
		resp, err := h(ctx, ev)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"message":"Internal Server Error"}`)
			return
		}
		out := []byte(resp.Body)
		if resp.IsBase64Encoded {
			if out, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(out)
	})
}

// staticToken is a token source holding one valid simulator token.
type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }
func (staticToken) Invalidate(string)                       {}

// staticKey hands the webhook handlers their HMAC key.
type staticKey string

func (k staticKey) SecretKey(context.Context) ([]byte, error) { return []byte(k), nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
