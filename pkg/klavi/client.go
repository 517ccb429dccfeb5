package klavi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultBaseURL is the Klavi sandbox API host, used when New gets "".
const DefaultBaseURL = "https://api-sandbox.klavi.ai"

const (
	userAgent = "klavi-link-lambda (+https://github.com/openfinance-br/klavi-link-lambda)"

	// maxResponseBytes bounds what is read from a successful response. Klavi's
	// data API answers with small JSON documents (reports come by webhook),
	// so anything larger is a fault, not data.
	maxResponseBytes = 1 << 20
	// maxErrorBodyBytes bounds what is read from an error response; only a
	// few small fields are kept from it.
	maxErrorBodyBytes = 64 << 10
)

// TokenSource supplies the Bearer token for API calls.
type TokenSource interface {
	// Token returns a valid access token.
	Token(ctx context.Context) (string, error)
	// Invalidate drops token if it is still the cached one. The client calls
	// it after Klavi answered 401 to a call made with token.
	Invalidate(token string)
}

// Call describes one HTTP attempt, for metrics.
type Call struct {
	// Endpoint is the route template, such as "POST /data/v1/links" or
	// "GET /data/v1/consents/{consentId}"; never a path with ids or a query.
	Endpoint string
	// Attempt counts from 1 within one method call.
	Attempt int
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Duration is the time from sending the request to reading the body.
	Duration time.Duration
	// Err is the attempt's error, nil on success.
	Err error
}

// Client calls the Klavi data API. It is safe for concurrent use; build one
// per process and share it.
type Client struct {
	baseURL    string // scheme://host[/prefix], no trailing slash
	httpClient *http.Client
	tokens     TokenSource
	retry      RetryPolicy
	observe    func(Call)
	optErr     error

	// Seams for tests in this package: they make retries run without real
	// waiting and make jitter deterministic.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(limit time.Duration) time.Duration
	now    func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default HTTP client. The client's own timeouts
// then apply to each attempt; a nil client makes New fail.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc == nil {
			c.optErr = errors.New("nil http client")
			return
		}
		c.httpClient = hc
	}
}

// WithTokenSource sets where Bearer tokens come from. Every call except Auth
// and Refresh needs it.
func WithTokenSource(ts TokenSource) Option {
	return func(c *Client) { c.tokens = ts }
}

// WithRetryPolicy replaces the default retry policy. Zero fields keep their
// defaults; MaxAttempts 1 disables retries.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *Client) { c.retry = p }
}

// WithObserver registers a function called synchronously after every HTTP
// attempt. It must be fast and safe for concurrent use.
func WithObserver(fn func(Call)) Option {
	return func(c *Client) { c.observe = fn }
}

// New returns a Client for baseURL (DefaultBaseURL when empty), such as
// "https://api.klavi.ai". baseURL must be an absolute http or https URL
// without credentials, query or fragment; a path prefix is kept.
func New(baseURL string, opts ...Option) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		baseURL: base,
		sleep:   sleepContext,
		jitter:  fullJitter,
		now:     time.Now,
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.optErr != nil {
		return nil, fmt.Errorf("new klavi client: %w", c.optErr)
	}
	if c.httpClient == nil {
		c.httpClient = defaultHTTPClient()
	}
	if c.retry, err = c.retry.withDefaults(); err != nil {
		return nil, fmt.Errorf("new klavi client: %w", err)
	}
	return c, nil
}

func parseBaseURL(raw string) (string, error) {
	// The URL is echoed in errors only as scheme and host, never as given:
	// it might carry credentials.
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("new klavi client: base URL does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("new klavi client: base URL scheme must be http or https")
	case u.Host == "":
		return "", errors.New("new klavi client: base URL has no host")
	case u.User != nil:
		return "", errors.New("new klavi client: base URL must not carry credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("new klavi client: base URL must not have a query or fragment")
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// defaultHTTPClient bounds every phase of an attempt: a Lambda invocation has
// a hard deadline, and a hung connection must fail the attempt, not the
// invocation. Redirects are not followed: the API does not redirect, and a
// redirected POST would not carry its body or Authorization header anyway.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          16,
			MaxIdleConnsPerHost:   16,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type authMode int

const (
	authNone   authMode = iota // Auth
	authSource                 // token from the TokenSource, 401 handling
	authGiven                  // Refresh: the caller's token, no 401 handling
)

// request is one logical API call, possibly sent several times.
type request struct {
	endpoint   string // route template, used in errors and metrics
	method     string
	path       string // escaped path below the base URL
	query      url.Values
	body       []byte
	auth       authMode
	token      string // for authGiven
	idempotent bool
	// sensitive lists values the request carries (credentials, tax ids) that
	// must be cut out of any error message Klavi sends back.
	sensitive []string
}

// attemptResult is what one HTTP attempt produced.
type attemptResult struct {
	status   int
	header   http.Header
	body     []byte
	tooLarge bool
	err      error // network error, already free of the URL
	// maybeSent is false only when the request provably never reached a
	// connection, so even a non-idempotent call can be repeated.
	maybeSent bool
}

// do sends r, retrying as the package documentation describes, and decodes
// a 2xx body into out with decode (skipped when decode is nil).
func (c *Client) do(ctx context.Context, r *request, decode func([]byte) error) error {
	if r.auth == authSource && c.tokens == nil {
		return fmt.Errorf("klavi %s: %w: no token source configured", r.endpoint, ErrInvalidRequest)
	}
	var (
		attempt  int  // every HTTP attempt, for the observer
		counted  int  // attempts counted against MaxAttempts
		reauthed bool // the single extra attempt after a 401 was used
	)
	for {
		token, err := c.bearer(ctx, r)
		if err != nil {
			return err
		}
		attempt++
		counted++
		start := c.now()
		res := c.send(ctx, r, token)
		err = c.result(r, res, token, decode)
		if c.observe != nil {
			c.observe(Call{
				Endpoint: r.endpoint,
				Attempt:  attempt,
				Status:   res.status,
				Duration: c.now().Sub(start),
				Err:      err,
			})
		}
		if err == nil {
			return nil
		}
		if r.auth == authSource && res.status == http.StatusUnauthorized && !reauthed {
			reauthed = true
			counted--
			c.tokens.Invalidate(token)
			continue
		}
		wait, ok := c.retryWait(ctx, r, res, err, counted)
		if !ok {
			return err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (retry abandoned: %w)", err, serr)
		}
	}
}

func (c *Client) bearer(ctx context.Context, r *request) (string, error) {
	switch r.auth {
	case authGiven:
		return r.token, nil
	case authSource:
		token, err := c.tokens.Token(ctx)
		if err != nil {
			return "", fmt.Errorf("klavi %s: get access token: %w", r.endpoint, err)
		}
		if token == "" {
			return "", fmt.Errorf("klavi %s: get access token: token source returned an empty token", r.endpoint)
		}
		return token, nil
	}
	return "", nil
}

// send performs one HTTP attempt.
func (c *Client) send(ctx context.Context, r *request, token string) attemptResult {
	var gotConn, wrote, dialFailed atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn:      func(httptrace.GotConnInfo) { gotConn.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
		DNSDone: func(i httptrace.DNSDoneInfo) {
			if i.Err != nil {
				dialFailed.Store(true)
			}
		},
		ConnectDone: func(_, _ string, err error) {
			if err != nil {
				dialFailed.Store(true)
			}
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err != nil {
				dialFailed.Store(true)
			}
		},
	}
	req, err := c.newHTTPRequest(httptrace.WithClientTrace(ctx, trace), r, token)
	if err != nil {
		return attemptResult{err: err}
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		// WroteRequest can fire after Do returns (it runs on the transport's
		// writer goroutine), so a connection handed to the request already
		// makes the outcome ambiguous.
		provablyUnsent := !gotConn.Load() && !wrote.Load() && (dialFailed.Load() || isDialError(err))
		return attemptResult{err: c.transportError(r, err), maybeSent: !provablyUnsent}
	}
	defer resp.Body.Close()

	limit := int64(maxErrorBodyBytes)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		limit = maxResponseBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	res := attemptResult{status: resp.StatusCode, header: resp.Header, maybeSent: true}
	if err != nil {
		res.err = c.transportError(r, err)
		return res
	}
	if int64(len(body)) > limit {
		body = body[:limit]
		res.tooLarge = true
	}
	res.body = body
	// Drain a little so the connection can be reused; give up on more.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	return res
}

func (c *Client) newHTTPRequest(ctx context.Context, r *request, token string) (*http.Request, error) {
	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		// The URL is not part of the message: it may hold tax ids.
		return nil, fmt.Errorf("klavi %s: build request: %w", r.endpoint, ErrInvalidRequest)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// result turns an attempt into nil, an *APIError, a malformed-response
// error or a network error, decoding a 2xx body on the way.
func (c *Client) result(r *request, res attemptResult, token string, decode func([]byte) error) error {
	if res.err != nil {
		return res.err
	}
	if res.status < 200 || res.status > 299 {
		return newAPIError(r, res, token, c.now())
	}
	if res.tooLarge {
		return fmt.Errorf("klavi %s: %w: body exceeds %d bytes", r.endpoint, ErrMalformedResponse, maxResponseBytes)
	}
	if decode == nil {
		return nil
	}
	if err := decode(res.body); err != nil {
		return fmt.Errorf("klavi %s: %w: %s", r.endpoint, ErrMalformedResponse, describeDecodeError(err))
	}
	return nil
}

// networkError carries a transport failure without the request URL, which
// *url.Error would print and which may hold tax ids.
type networkError struct {
	endpoint string
	err      error
}

func (e *networkError) Error() string {
	return "klavi " + e.endpoint + ": " + sanitizeText(e.err.Error(), nil, 512)
}

func (e *networkError) Unwrap() error { return e.err }

func (c *Client) transportError(r *request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &networkError{endpoint: r.endpoint, err: err}
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// describeDecodeError says what was wrong with a response body without
// quoting it.
func describeDecodeError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var shape *shapeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s: unexpected JSON %s", typ.Field, typ.Value)
		}
		return fmt.Sprintf("unexpected JSON %s", typ.Value)
	case errors.As(err, &shape):
		return shape.msg
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "undecodable body"
}

// shapeError reports a well-formed body that lacks what the call needs. Its
// message is fixed text, never response content.
type shapeError struct{ msg string }

func (e *shapeError) Error() string { return e.msg }

// decodeInto returns a decoder for a JSON object into v.
func decodeInto(v any) func([]byte) error {
	return func(b []byte) error { return json.Unmarshal(b, v) }
}

// marshalBody encodes a request body. The request types hold only strings,
// maps of strings and validated raw JSON, so failure means a bug; the error
// never includes the values.
func marshalBody(endpoint string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("klavi %s: %w: encode body", endpoint, ErrInvalidRequest)
	}
	return b, nil
}
