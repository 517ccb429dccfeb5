// Package faultproxy is a reverse proxy for tests that stands between a
// client (the AWS SDK, the Klavi client) and the server it talks to (the AWS
// emulator, the Klavi simulator) and makes chosen requests fail the way the
// real services fail: throttling, 5xx answers, connections reset before or
// after the request took effect, and slow answers.
//
//	p, err := faultproxy.New(awstest.Endpoint(t))
//	srv := httptest.NewServer(p)
//	cfg, err := config.LoadDefaultConfig(ctx, config.WithBaseEndpoint(srv.URL), ...)
//	p.Inject(faultproxy.Rule{Match: faultproxy.DynamoDBOp("TransactWriteItems"), Times: 3, Fault: faultproxy.Throttle()})
//
// Load the SDK configuration with config.WithBaseEndpoint: setting
// BaseEndpoint on a copy of a loaded configuration is not enough, because
// the service clients resolve the endpoint again from the load options the
// copy still carries (ConfigSources) and would bypass the proxy.
//
// The proxy also counts the requests it sees by operation (Count), which is how a
// test tells how many calls a handler made to each dependency, and how many
// of them reached the server (Forwarded).
//
// Clients retry on their own: the AWS SDK's standard retryer repeats
// throttling errors, 5xx answers and connection errors (3 attempts unless
// configured otherwise), and the Klavi client repeats what it knows to be
// safe. A rule meant to make the caller see a failure must therefore cover
// every attempt (Times at least the client's attempts).
//
// The proxy forwards the Host header unchanged, so a request signed for the
// proxy's address stays valid for a server that checks signatures.
package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Matcher selects requests. It must only read the method, URL and headers,
// never the body.
type Matcher func(*http.Request) bool

// Rule applies Fault to the next Times requests that Match selects. Times 0
// (or less) applies it to every matching request until ClearRules. A nil
// Match selects every request; the zero Fault forwards the request as if
// no rule had matched, using up one of Times.
type Rule struct {
	Match Matcher
	Times int
	Fault Fault
}

// Proxy is an http.Handler forwarding to one target server, except for the
// requests a Rule makes fail. It is safe for concurrent use.
type Proxy struct {
	transport *http.Transport
	rp        *httputil.ReverseProxy

	mu    sync.Mutex
	rules []*armed
	seen  []*seen
	ids   int
}

type armed struct {
	rule Rule
	left int // applications left; unused when rule.Times <= 0
}

// seen is one request the proxy received.
type seen struct {
	req       *http.Request // method, URL and headers only
	forwarded bool
}

// New returns a Proxy forwarding to target, an absolute http or https URL
// such as an httptest server's.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new fault proxy: target %q is not an absolute http(s) URL", target)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &Proxy{transport: tr}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// The client signed its request for the host it called.
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			// The target failed or the client went away; a plain 502 is
			// what a real proxy answers, and the test sees it as such.
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return p, nil
}

// Inject arms rules. Each request is matched against the armed rules in the
// order they were injected; the first one that still applies decides its
// fault.
func (p *Proxy) Inject(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rules {
		if r.Match == nil {
			r.Match = Any()
		}
		p.rules = append(p.rules, &armed{rule: r, left: r.Times})
	}
}

// ClearRules disarms every rule; later requests are all forwarded.
func (p *Proxy) ClearRules() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// ClearCounts forgets the requests seen so far.
func (p *Proxy) ClearCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

// Armed returns how many fault applications the rules with a limited Times
// still have; 0 once each of them has been used up. A test asserts it to
// show its faults were actually hit.
func (p *Proxy) Armed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.rules {
		if a.rule.Times > 0 {
			n += a.left
		}
	}
	return n
}

// Count returns how many requests selected by m the proxy received, failed
// or forwarded.
func (p *Proxy) Count(m Matcher) int {
	return p.count(m, false)
}

// Forwarded returns how many requests selected by m were passed on to the
// target, including those whose answer a ResetAfterForward then dropped.
func (p *Proxy) Forwarded(m Matcher) int {
	return p.count(m, true)
}

func (p *Proxy) count(m Matcher, forwardedOnly bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.seen {
		if (!forwardedOnly || s.forwarded) && m(s.req) {
			n++
		}
	}
	return n
}

// Close closes the idle connections to the target.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
}

// ServeHTTP forwards r, or fails it as the first applicable rule says.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, fault, faulty, id := p.arrive(r)
	if !faulty || fault.kind == 0 {
		p.forward(w, r, s)
		return
	}
	switch fault.kind {
	case kindThrottle, kindStatus:
		drain(r)
		writeFault(w, r, fault, id)
	case kindReset:
		// The request is read whole first, so that it reached the proxy
		// but provably not the target.
		drain(r)
		reset(w)
	case kindResetAfterForward:
		// The target acts on the request and answers in full; only then is
		// the client's connection dropped.
		p.forward(&discard{header: http.Header{}}, r, s)
		reset(w)
	case kindDelay:
		// The server notices a client hanging up only once the request
		// body was read, so it is buffered before the wait.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(fault.delay)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			// The client gave up (its deadline, or it hung up): the
			// request never reaches the target.
			return
		case <-t.C:
		}
		p.forward(w, r, s)
	}
}

// arrive records r and picks its fault, if any.
func (p *Proxy) arrive(r *http.Request) (s *seen, f Fault, faulty bool, id string) {
	req := r.Clone(context.Background())
	req.Body = http.NoBody
	s = &seen{req: req}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, s)
	p.ids++
	id = "faultproxy-" + strconv.Itoa(p.ids)
	for _, a := range p.rules {
		if a.rule.Times > 0 && a.left == 0 {
			continue
		}
		if !a.rule.Match(r) {
			continue
		}
		if a.rule.Times > 0 {
			a.left--
		}
		return s, a.rule.Fault, true, id
	}
	return s, Fault{}, false, id
}

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, s *seen) {
	p.mu.Lock()
	s.forwarded = true
	p.mu.Unlock()
	p.rp.ServeHTTP(w, r)
}

// drain reads the request body, bounded, so that the client finished
// sending before it gets its answer or loses its connection.
func drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
}

// reset closes the client's connection without an answer. On TCP it sets
// SO_LINGER to 0 so that the client sees a reset rather than an orderly
// close, as when a load balancer or the service drops it.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// discard is the response writer of a ResetAfterForward: the target's answer
// is read in full and thrown away.
type discard struct {
	header http.Header
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}
