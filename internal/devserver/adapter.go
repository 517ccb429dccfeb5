package devserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

// MaxRequestBytes is the largest request body passed on to a handler:
// Lambda's limit for a synchronous invocation. API Gateway answers 413
// beyond it without invoking the function, and so does the adapter.
const MaxRequestBytes = 6 << 20

// lambdaFunc is the shape of every HTTP API handler of the project.
type lambdaFunc func(ctx context.Context, req httpapi.Request) (httpapi.Response, error)

// gatewayAccount and gatewayAPIID fill the request context fields API
// Gateway sets from the deployment.
const (
	gatewayAccount = "000000000000"
	gatewayAPIID   = "local"
)

// lambdaRoute serves one API Gateway route by turning the HTTP request into
// an HTTP API payload 2.0 event, invoking the handler with a Lambda context,
// and writing the handler's response back, as API Gateway and the Lambda
// runtime do around a deployed function.
type lambdaRoute struct {
	function string // for logs, e.g. "links-api"
	routeKey string // e.g. "GET /links/{linkId}"
	params   []string
	handle   lambdaFunc
	log      *slog.Logger
	now      func() time.Time
}

// newLambdaRoute returns the adapter for routeKey ("METHOD /path/{param}");
// the path parameters are read from the request's ServeMux pattern, which
// must use the same names.
func newLambdaRoute(function, routeKey string, h lambdaFunc, log *slog.Logger) *lambdaRoute {
	var params []string
	_, path, _ := strings.Cut(routeKey, " ")
	for seg := range strings.SplitSeq(path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			params = append(params, strings.TrimSuffix(name, "}"))
		}
	}
	return &lambdaRoute{function: function, routeKey: routeKey, params: params, handle: h, log: log, now: time.Now}
}

func (a *lambdaRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := a.now()
	requestID := newRequestID()
	status := a.serve(w, r, requestID, start)
	// One access log line per request, like the API's access log: no
	// query string and no body, which may hold personal data.
	a.log.Info("request", "requestId", requestID, "function", a.function, "routeKey", a.routeKey,
		"status", status, "latencyMs", a.now().Sub(start).Milliseconds())
}

func (a *lambdaRoute) serve(w http.ResponseWriter, r *http.Request, requestID string, start time.Time) int {
	if r.ContentLength > MaxRequestBytes {
		return writeGatewayError(w, http.StatusRequestEntityTooLarge, requestID)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes+1))
	switch {
	case err != nil:
		return writeGatewayError(w, http.StatusBadRequest, requestID)
	case len(body) > MaxRequestBytes:
		return writeGatewayError(w, http.StatusRequestEntityTooLarge, requestID)
	}
	ev := toEvent(r, body, a.routeKey, a.params, requestID, start)
	ctx := lambdacontext.NewContext(r.Context(), &lambdacontext.LambdaContext{
		AwsRequestID:       requestID,
		InvokedFunctionArn: "arn:aws:lambda:local:" + gatewayAccount + ":function:" + a.function,
	})
	resp, err := a.invoke(ctx, ev)
	if err != nil {
		// The function failed: API Gateway answers 500 and never shows why.
		a.log.ErrorContext(ctx, "function returned an error", "function", a.function, "error", err)
		return writeGatewayError(w, http.StatusInternalServerError, requestID)
	}
	status, err := writeResponse(w, resp, requestID)
	if err != nil {
		a.log.ErrorContext(ctx, "function returned an unusable response", "function", a.function, "error", err)
	}
	return status
}

// LocalCaller is the JWT subject every request to the /links routes
// carries on the local server. A deployment's authorizer names the caller;
// here there is one user, and the links API refuses a request with no
// identity (401), so the server stands in for the authorizer. It is an
// ordinary caller, not the back office: links it did not create (first
// seen in an event) answer 404, as they would to a frontend user.
const LocalCaller = "local-developer"

// asLocalCaller gives every request the identity a JWT authorizer would,
// with LocalCaller as its subject.
func asLocalCaller(h lambdaFunc) lambdaFunc {
	return func(ctx context.Context, req httpapi.Request) (httpapi.Response, error) {
		req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
				Claims: map[string]string{"sub": LocalCaller, "iss": "http://localhost/"},
			},
		}
		return h(ctx, req)
	}
}

// invoke calls the handler; a panic becomes an error, as the Lambda
// runtime reports a crashed invocation.
func (a *lambdaRoute) invoke(ctx context.Context, ev httpapi.Request) (resp httpapi.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return a.handle(ctx, ev)
}

// toEvent builds the HTTP API payload 2.0 event API Gateway would send for
// r, whose body was already read.
func toEvent(r *http.Request, body []byte, routeKey string, params []string, requestID string, at time.Time) httpapi.Request {
	headers := map[string]string{}
	var cookies []string
	for name, values := range r.Header {
		name = strings.ToLower(name)
		if name == "cookie" {
			// Payload 2.0 moves cookies out of the headers.
			for _, v := range values {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[name] = strings.Join(values, ",")
	}
	headers["host"] = r.Host
	sourceIP := remoteIP(r.RemoteAddr)
	if _, ok := headers["x-forwarded-for"]; !ok {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		headers["x-forwarded-proto"] = "https"
	}
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		headers["x-forwarded-port"] = port
	}
	if len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}

	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = make(map[string]string, len(q))
		for k, v := range q {
			query[k] = strings.Join(v, ",")
		}
	}
	var pathParams map[string]string
	if len(params) > 0 {
		pathParams = make(map[string]string, len(params))
		for _, p := range params {
			pathParams[p] = r.PathValue(p)
		}
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	prefix, _, _ := strings.Cut(host, ".")

	ev := httpapi.Request{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        pathParams,
	}
	ev.RequestContext.RouteKey = routeKey
	ev.RequestContext.AccountID = gatewayAccount
	ev.RequestContext.APIID = gatewayAPIID
	ev.RequestContext.Stage = "$default"
	ev.RequestContext.RequestID = requestID
	ev.RequestContext.DomainName = r.Host
	ev.RequestContext.DomainPrefix = prefix
	ev.RequestContext.Time = at.UTC().Format("02/Jan/2006:15:04:05 -0700")
	ev.RequestContext.TimeEpoch = at.UnixMilli()
	ev.RequestContext.HTTP.Method = r.Method
	ev.RequestContext.HTTP.Path = r.URL.Path
	ev.RequestContext.HTTP.Protocol = r.Proto
	ev.RequestContext.HTTP.SourceIP = sourceIP
	ev.RequestContext.HTTP.UserAgent = r.UserAgent()
	switch {
	case len(body) == 0:
	case utf8.Valid(body):
		ev.Body = string(body)
	default:
		ev.Body = base64.StdEncoding.EncodeToString(body)
		ev.IsBase64Encoded = true
	}
	return ev
}

// writeResponse writes a handler's response as API Gateway would and
// returns the status written. A base64 body that does not decode is the
// function's fault: 502, as API Gateway answers a malformed response.
func writeResponse(w http.ResponseWriter, resp httpapi.Response, requestID string) (int, error) {
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		raw, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return writeGatewayError(w, http.StatusBadGateway, requestID), fmt.Errorf("response body is not valid base64: %w", err)
		}
		body = raw
	}
	h := w.Header()
	for name, values := range resp.MultiValueHeaders {
		for _, v := range values {
			h.Add(name, v)
		}
	}
	for name, v := range resp.Headers {
		h.Set(name, v)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	h.Set("Apigw-Requestid", requestID)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status, nil
}

// writeGatewayError answers as API Gateway does when it, not the
// function, fails the request: {"message": "<status text>"}.
func writeGatewayError(w http.ResponseWriter, status int, requestID string) int {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Apigw-Requestid", requestID)
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"message":%q}`, http.StatusText(status))
	return status
}

// remoteIP is the address part of a RemoteAddr ("ip:port").
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// newRequestID returns a random id in the UUID shape request ids have.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
