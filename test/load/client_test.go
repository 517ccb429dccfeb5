package load_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// Route keys, as API Gateway and the server's access log name them.
const (
	routeCreateLink = "POST /links"
	routeGetLink    = "GET /links/{linkId}"
	routeEvents     = "POST /webhooks/klavi/events"
	routeReports    = "POST /webhooks/klavi/reports"
)

// routes lists the route keys in the order the burst uses them.
func routes() []string { return []string{routeCreateLink, routeEvents, routeReports, routeGetLink} }

// wantStatus is each route's only acceptable answer in a burst.
func wantStatus() map[string]int {
	return map[string]int{
		routeCreateLink: http.StatusCreated,
		routeGetLink:    http.StatusOK,
		routeEvents:     http.StatusOK,
		routeReports:    http.StatusOK,
	}
}

// client sends the burst's requests to the backend and records each one.
type client struct {
	base   string
	http   *http.Client
	secret []byte // Klavi's secretKey, to sign webhooks
	rec    *recorder
}

// newClient returns a client for the backend at base. It dials loopback
// addresses only, and never goes through a proxy.
func newClient(base string, secret []byte, rec *recorder) (*client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse backend URL: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("backend %s is not on a loopback address", base)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("refusing to dial %s: not a loopback address", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		// One connection per worker, kept between requests, so that the
		// figures are about the backend rather than about dialing.
		MaxIdleConns:        2 * workers,
		MaxIdleConnsPerHost: 2 * workers,
		IdleConnTimeout:     time.Minute,
	}
	return &client{
		base:   base,
		http:   &http.Client{Transport: transport, Timeout: callTimeout},
		secret: secret,
		rec:    rec,
	}, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// send makes one request on route and records its latency and status. A
// webhook (signed) is signed at the moment it is sent, as Klavi signs each
// delivery. Only a failure to get an answer at all is an error.
func (c *client) send(ctx context.Context, route, method, path string, body []byte, signed bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build %s: %w", route, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	if signed {
		sig, ts := webhooksig.Sign(c.secret, body, start)
		req.Header.Set(webhooksig.SignatureHeader, sig)
		req.Header.Set(webhooksig.TimestampHeader, ts)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.rec.add(route, start, time.Since(start), 0)
		return 0, nil, fmt.Errorf("%s: %w", route, err)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		c.rec.add(route, start, elapsed, 0)
		return 0, nil, fmt.Errorf("%s: read answer: %w", route, err)
	}
	c.rec.add(route, start, elapsed, resp.StatusCode)
	return resp.StatusCode, answer, nil
}

// each calls fn for 0..n-1 with at most workers calls at a time. The first
// error stops the rest and is returned.
func each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The burst's deadline may have passed between two calls.
	return ctx.Err()
}
