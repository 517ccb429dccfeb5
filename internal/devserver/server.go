package devserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/integrationevents"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reports"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstream"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/revocation"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// linkStore is what the handlers need of the link store;
// linkstoretest.MemoryStore and linkstore.DynamoStore both are one.
type linkStore interface {
	CreateLink(ctx context.Context, l linkstore.Link) error
	GetLink(ctx context.Context, linkID string) (*linkstore.Link, error)
	CheckLink(ctx context.Context, linkID string) error
	ApplyEvent(ctx context.Context, e linkstore.EventChange) (linkstore.Outcome, error)
	ClaimAutoRequest(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordReportRequest(ctx context.Context, linkID string, r linkstore.ReportRequest) error
	RecordReport(ctx context.Context, linkID string, r linkstore.Report) error
	Purge(ctx context.Context, linkID string, now time.Time) (*linkstore.Link, error)
	RequestDeletion(ctx context.Context, linkID string, now time.Time) error
	ClaimRevoke(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordRevoke(ctx context.Context, linkID, consentID string, at time.Time) error
	ListAttention(ctx context.Context, kind linkstore.AttentionKind, before time.Time, limit int) ([]linkstore.Attention, error)
	ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error
	MarkPending(ctx context.Context, linkID string, w linkstore.PendingWork) error
	ClaimManualRequest(ctx context.Context, linkID, consentID string, products []string, cooldown time.Duration, now time.Time) error
	ReleaseManualRequest(ctx context.Context, linkID, consentID string, products []string, until time.Time) error
}

// reportObjects is what the handlers and the dev routes need of the
// report store; DiskStore and reportstore.Store both are one.
type reportObjects interface {
	Put(ctx context.Context, o reportstore.Object) (reportstore.PutResult, error)
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	DeletePrefix(ctx context.Context, prefix string) (int, error)
	Delete(ctx context.Context, key string) error
}

var (
	_ linkStore     = (*linkstoretest.MemoryStore)(nil)
	_ linkStore     = (*streamedStore)(nil)
	_ linkStore     = (*linkstore.DynamoStore)(nil)
	_ reportObjects = (*DiskStore)(nil)
	_ reportObjects = (*reportstore.Store)(nil)
)

// shutdownTimeout bounds Close's wait for requests in flight.
const shutdownTimeout = 5 * time.Second

// Server is the whole backend in one process: every function's routes
// through the same handlers, the stand-ins chosen by Config, and the demo
// page. Build it with New, run it with Start, stop it with Close.
type Server struct {
	cfg   Config
	log   *slog.Logger
	links linkStore
	// stream stands in for the table's stream; nil unless the link
	// store is in memory (memory is then that store).
	stream *tableStream
	memory *streamedStore
	feeds  []*changeFeed
	events *eventKeeper
	// downloads signs report download URLs: S3's presigned GET, or the
	// local stand-in (localDownloads) when reports are on disk.
	downloads      linkapi.URLSigner
	localDownloads *localDownloads // nil when reports go to S3
	objects        reportObjects
	disk           *DiskStore // nil when reports go to S3

	handler atomic.Pointer[http.ServeMux]

	mu      sync.Mutex
	started bool
	url     string
	sim     *klavisim.Simulator
	tokens  tokenSource
	// reportRequests is the report service the stream handler and the
	// links API use, also used by the sweep when the link store is a
	// DynamoDB table.
	reportRequests *reports.Service
	httpSrv        *http.Server
	ln             net.Listener
	conns          connTracker
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	closed         chan struct{}
	once           sync.Once
	err            error
}

// New checks cfg and builds the stores. Nothing listens or calls out until
// Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.NeedsAWS() && cfg.AWS == nil {
		return nil, errors.New("configuration: a link table, report bucket, Klavi secret or event bus is set but no AWS configuration was given")
	}
	s := &Server{cfg: cfg, log: withRequestIDs(cfg.Logger), closed: make(chan struct{})}

	if cfg.LinksTable != "" {
		s.links = linkstore.NewDynamo(dynamodb.NewFromConfig(*cfg.AWS), cfg.LinksTable)
	} else {
		s.stream = &tableStream{}
		s.memory = newStreamedStore(s.stream)
		s.links = s.memory
	}
	var bus eventPutter
	if cfg.EventBusName != "" {
		bus = eventbridge.NewFromConfig(*cfg.AWS)
	}
	s.events = newEventKeeper(bus, cfg.KeptEvents)
	if cfg.ReportsBucket != "" {
		s.objects = reportstore.New(s.s3Client(), cfg.ReportsBucket, reportstore.Options{})
		presigner, err := reportstore.NewPresigner(s3.NewPresignClient(s.s3Client()), cfg.ReportsBucket, cfg.ReportURLTTL)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		s.downloads = presigner
	} else {
		disk, err := NewDiskStore(cfg.ReportsDir)
		if err != nil {
			return nil, err
		}
		s.disk, s.objects = disk, disk
		s.localDownloads = newLocalDownloads(s.URL, cfg.ReportURLTTL)
		s.downloads = s.localDownloads
	}
	return s, nil
}

// emulated reports whether AWS points at an emulator (AWS_ENDPOINT_URL),
// where the server may create the table and bucket it is told to use.
func (s *Server) emulated() bool { return s.cfg.AWS != nil && s.cfg.AWS.BaseEndpoint != nil }

func (s *Server) s3Client() *s3.Client {
	return s3.NewFromConfig(*s.cfg.AWS, func(o *s3.Options) {
		// Emulators are reached by IP or localhost, which virtual-hosted
		// bucket names cannot use.
		o.UsePathStyle = s.emulated()
	})
}

// Handler is the server's whole HTTP surface. Before Start it answers 503.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux := s.handler.Load()
		if mux == nil {
			writeGatewayError(w, http.StatusServiceUnavailable, newRequestID())
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// URL is the base URL the server answers on, "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Start listens on addr (such as "127.0.0.1:8080", or port 0 for any free
// port), wires every part for the URL it is reached at, serves in the
// background and returns that URL. The server runs until Close, or until
// ctx is done.
func (s *Server) Start(ctx context.Context, addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return "", errors.New("devserver: closed")
	default:
	}
	if s.started {
		return "", errors.New("devserver: already started")
	}
	s.started = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.url = s.cfg.PublicURL
	if s.url == "" {
		s.url = "http://" + loopbackAddr(ln.Addr())
	}
	mux, err := s.wire(ctx)
	if err != nil {
		ln.Close()
		return "", err
	}
	s.handler.Store(mux)

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.ln = ln
	s.httpSrv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ConnState: s.conns.track}
	s.wg.Go(func() {
		err := s.httpSrv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("server stopped", "error", err)
		}
	})
	s.wg.Go(func() { s.refreshTokens(bg) })
	for _, f := range s.feeds {
		s.wg.Go(func() { f.Run(bg) })
	}
	// The sweep also runs behind the change feed: a report request that
	// failed at Klavi holds its consent's claim until the lease ends, and the
	// feed's retry finds it held, so locally, as in a deployment, the sweep is
	// what asks again.
	if !s.cfg.ManualReportsOnly {
		sw := &sweeper{store: s.links, requests: s.reportRequests, interval: s.cfg.SweepInterval, log: s.log}
		s.wg.Go(func() { sw.Run(bg) })
	}
	context.AfterFunc(ctx, func() { _ = s.Close() })
	return s.url, nil
}

// wire builds every URL-dependent part (the token source, the simulator,
// the Klavi client and the handlers) and the routes.
func (s *Server) wire(ctx context.Context) (*http.ServeMux, error) {
	if err := s.prepareAWS(ctx); err != nil {
		return nil, err
	}
	klaviBase := s.cfg.KlaviBaseURL
	if s.cfg.Simulated() {
		klaviBase = s.url + "/klavi"
	}
	authClient, err := klavi.New(klaviBase)
	if err != nil {
		return nil, fmt.Errorf("build Klavi client: %w", err)
	}
	creds := s.cfg.KlaviCredentials
	if s.cfg.CredentialsSecret != "" {
		src, err := tokensource.New(secretsmanager.NewFromConfig(*s.cfg.AWS), authClient, tokensource.Config{
			CredentialsSecretID: s.cfg.CredentialsSecret,
			TokenSecretID:       s.cfg.TokenSecret,
		})
		if err != nil {
			return nil, err
		}
		if s.cfg.Simulated() {
			// The simulator must accept the key pair the secret holds.
			if creds, err = src.Credentials(ctx); err != nil {
				return nil, fmt.Errorf("read the Klavi credentials secret: %w", err)
			}
		}
		s.tokens = src
	} else {
		s.tokens = newMemoryTokens(authClient, creds)
	}
	if s.cfg.Simulated() {
		s.sim = klavisim.New(klavisim.Options{
			AccessKey:        creds.AccessKey,
			SecretKey:        creds.SecretKey,
			PublicURL:        klaviBase,
			EventWebhookURL:  s.url + "/webhooks/klavi/events",
			ReportWebhookURL: s.url + httpapi.ReportWebhookPath,
			GenerateReports:  true,
			Seed:             s.cfg.Seed,
		})
	}
	kc, err := klavi.New(klaviBase, klavi.WithTokenSource(s.tokens))
	if err != nil {
		return nil, fmt.Errorf("build Klavi client: %w", err)
	}

	webhookURL := s.cfg.ReportWebhookURL
	if webhookURL == "" {
		webhookURL = s.url + httpapi.ReportWebhookPath
	}
	verifier := webhooksig.Verifier{Tolerance: s.cfg.SignatureTolerance}
	svc := reports.New(kc, s.links, s.objects, reports.Config{
		Products:         s.cfg.ReportProducts,
		ReportWebhookURL: webhookURL,
		Logger:           s.log,
	})
	s.reportRequests = svc
	revoker := revocation.New(kc, s.links, svc, revocation.Config{Logger: s.log})
	links := linkapi.New(kc, s.links, svc, linkapi.Config{
		AllowedRedirectHosts:  s.cfg.AllowedRedirectHosts,
		ReportWebhookURL:      webhookURL,
		AllowLoopbackRedirect: true,
		Downloads:             s.downloads,
		Revocation:            revoker,
		Logger:                s.log,
	})
	evh := eventwebhook.New(s.tokens, s.links, eventwebhook.Config{SourceIPs: s.cfg.SourceIPs, Verifier: verifier, Logger: s.log})
	rwh := reportwebhook.New(s.tokens, s.objects, s.links, reportwebhook.Config{SourceIPs: s.cfg.SourceIPs, Verifier: verifier, Logger: s.log})
	stream := reportstream.New(svc, reportstream.Config{Marks: s.links, AutoRequest: !s.cfg.ManualReportsOnly, Logger: s.log})
	if s.stream != nil {
		publisher, err := integrationevents.New(s.events, s.memory, integrationevents.Config{
			EventBusName:  s.busName(),
			ReportsBucket: s.bucketName(),
			Logger:        s.log,
		})
		if err != nil {
			return nil, err
		}
		s.feeds = []*changeFeed{
			newChangeFeed(reportRequestMapping, stream.Handle, s.log),
			newChangeFeed(integrationMapping, publisher.Handle, s.log),
		}
		s.stream.feeds = s.feeds
	}

	mux := http.NewServeMux()
	route := func(function, routeKey string, h lambdaFunc) {
		mux.Handle(routeKey, newLambdaRoute(function, routeKey, h, s.log))
	}
	linksAPI := asLocalCaller(links.Handle)
	route("links-api", "POST /links", linksAPI)
	route("links-api", "GET /links/{linkId}", linksAPI)
	route("links-api", "POST /links/{linkId}/reports", linksAPI)
	route("links-api", "GET /links/{linkId}/reports/{productReportId}", linksAPI)
	route("links-api", "POST /links/{linkId}/revoke", linksAPI)
	route("links-api", "DELETE /links/{linkId}", linksAPI)
	route("event-webhook", "POST /webhooks/klavi/events", evh.Handle)
	route("report-webhook", "POST /webhooks/klavi/reports", rwh.Handle)
	if s.sim != nil {
		mux.Handle("/klavi/", http.StripPrefix("/klavi", s.sim))
		// The consent page posts its form to /link/{linkId}/decision on
		// the host it was served from.
		mux.Handle("/link/", s.sim)
	}
	s.devRoutes(mux)
	return mux, nil
}

// busName is the bus integration events go to: EVENT_BUS_NAME, else the
// in-process one.
func (s *Server) busName() string {
	if s.cfg.EventBusName != "" {
		return s.cfg.EventBusName
	}
	return localBusName
}

// bucketName is the bucket Report Stored names: the reports bucket, else
// the disk store's stand-in name.
func (s *Server) bucketName() string {
	if s.cfg.ReportsBucket != "" {
		return s.cfg.ReportsBucket
	}
	return DiskBucketName
}

// prepareAWS creates the table and bucket in an emulator when they are
// missing. Against AWS itself they must exist (the template makes them).
func (s *Server) prepareAWS(ctx context.Context) error {
	if !s.emulated() {
		return nil
	}
	if s.cfg.LinksTable != "" {
		if err := linkstoretest.CreateTable(ctx, dynamodb.NewFromConfig(*s.cfg.AWS), s.cfg.LinksTable); err != nil {
			return err
		}
	}
	if s.cfg.ReportsBucket != "" {
		in := &s3.CreateBucketInput{Bucket: aws.String(s.cfg.ReportsBucket)}
		if r := s.cfg.AWS.Region; r != "" && r != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(r)}
		}
		_, err := s.s3Client().CreateBucket(ctx, in)
		var owned *s3types.BucketAlreadyOwnedByYou
		var exists *s3types.BucketAlreadyExists
		if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
			return fmt.Errorf("create bucket %s: %w", s.cfg.ReportsBucket, err)
		}
	}
	return nil
}

// refreshTokens gets a token at once, which checks the credentials, then
// renews it every TokenRefresh, as the token-refresh function's schedule
// does.
func (s *Server) refreshTokens(ctx context.Context) {
	t := time.NewTicker(s.cfg.TokenRefresh)
	defer t.Stop()
	for {
		exp, err := s.tokens.Rotate(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("Klavi token refresh failed; calls to Klavi will fail until it succeeds", "error", err)
		default:
			s.log.Info("Klavi token refreshed", "expiresAt", exp.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the background work and the simulator's deliveries, then
// the HTTP server, waiting up to a few seconds for requests in flight. It
// is safe to call more than once and from several goroutines.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		sim, cancel, srv, ln := s.sim, s.cancel, s.httpSrv, s.ln
		s.mu.Unlock()
		if sim != nil {
			sim.Close() // deliveries in flight end before the server does
		}
		if cancel != nil {
			cancel()
		}
		if srv != nil {
			s.err = s.shutdown(srv, ln)
		}
		s.wg.Wait()
		close(s.closed)
	})
	<-s.closed
	return s.err
}

// shutdown stops accepting, closes the connections that never sent a
// request (http.Server.Shutdown waits 5 seconds for those: clients dial
// spare connections), then waits for requests in flight, for at most
// shutdownTimeout, after which it cuts them.
func (s *Server) shutdown(srv *http.Server, ln net.Listener) error {
	_ = ln.Close()
	s.conns.closeUnused()
	ctx, stop := context.WithTimeout(context.Background(), shutdownTimeout)
	defer stop()
	err := srv.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) { // the listener, closed above
		err = nil
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// connTracker knows the state of every connection of the server.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func (c *connTracker) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[net.Conn]http.ConnState{}
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(c.conns, conn)
	default:
		c.conns[conn] = state
	}
}

// closeUnused closes the connections on which no request has started.
func (c *connTracker) closeUnused() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn, state := range c.conns {
		if state == http.StateNew {
			_ = conn.Close()
		}
	}
}

// loopbackAddr turns a listener address into one a browser can open: an
// unspecified host (":8080", "0.0.0.0", "::") becomes 127.0.0.1.
func loopbackAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
