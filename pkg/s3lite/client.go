// Package s3lite is a small S3 client for the four object operations the
// report store calls: PutObject, GetObject, ListObjectsV2 and
// DeleteObjects. It takes and returns the SDK's own input and output types,
// so it stands in for *s3.Client wherever a consumer declares an interface
// with those methods, but it links only net/http, the SigV4 signer and
// encoding/xml: the SDK's S3 client adds its whole middleware stack,
// endpoint rules, SigV4a and checksum machinery to every binary that
// builds one, which is more than a Lambda function storing reports needs.
//
// What it does and does not do:
//
//   - Requests are signed with SigV4 over the payload's SHA-256 (never
//     UNSIGNED-PAYLOAD). Option functions (func(*s3.Options)) are accepted
//     for interface compatibility and ignored.
//   - Each method documents the input fields it sends. Other fields are
//     ignored: they are not used by this project, and this client does not
//     claim to support them.
//   - Addressing: with a base endpoint (aws.Config.BaseEndpoint, or a
//     service-specific AWS_ENDPOINT_URL_S3 / shared-config endpoint) it uses
//     path-style URLs under that endpoint, which every S3 emulator accepts.
//     Without one it uses virtual-hosted URLs on s3.<region>.amazonaws.com
//     (amazonaws.com.cn in China regions), falling back to path-style for
//     bucket names that cannot be a TLS host label (dots, capitals,
//     underscores). FIPS, dual-stack, access points and S3 Express are not
//     supported.
//   - Retries: throttling, 5xx, S3's RequestTimeout and connection failures
//     (before a response, or while reading a List or Delete result) are
//     retried up to aws.Config.RetryMaxAttempts attempts in total (3 when
//     zero) with jittered exponential backoff, bounded by the context.
//     aws.Config.Retryer and RetryMode are ignored. A conditional PutObject
//     whose first attempt was stored but whose answer was lost gets 412 on
//     the retry, as it would from the SDK.
//   - Errors from S3 are *APIError values, which satisfy smithy.APIError
//     and carry the HTTP status. They are wrapped in *smithy.OperationError
//     like the SDK's, and never hold a request or response body or
//     credentials.
package s3lite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	serviceID   = "S3" // as the SDK names it in errors and endpoint config
	signingName = "s3"

	defaultMaxAttempts = 3
	defaultBackoffBase = 200 * time.Millisecond
	defaultBackoffMax  = 5 * time.Second
)

// Client calls S3. It is safe for concurrent use; build one per process.
type Client struct {
	http        aws.HTTPClient
	creds       aws.CredentialsProvider // nil when the config has none
	anonymous   bool
	signer      *v4.Signer
	region      string
	endpoint    *url.URL // nil: AWS's own hosts
	endpointErr error    // why the configured endpoint is unusable
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithBackoff sets the wait before the first retry (base) and the longest
// wait between attempts (limit, raised to base if lower). Each wait is drawn
// between half and all of base doubled per retry, capped at limit. The
// defaults, 200ms and 5s, keep three attempts well inside a webhook's
// time budget.
func WithBackoff(base, limit time.Duration) Option {
	return func(c *Client) {
		if base <= 0 {
			return
		}
		c.backoffBase, c.backoffMax = base, max(base, limit)
	}
}

// New returns a Client configured from cfg: region, credentials (wrapped in
// an aws.CredentialsCache unless they already are one), HTTP client, base
// endpoint and maximum attempts. Problems with the configuration, such as
// a missing region, surface as errors from the first request.
func New(cfg aws.Config, opts ...Option) *Client {
	c := &Client{
		http:        cfg.HTTPClient,
		region:      cfg.Region,
		signer:      v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		maxAttempts: cfg.RetryMaxAttempts,
		backoffBase: defaultBackoffBase,
		backoffMax:  defaultBackoffMax,
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = defaultMaxAttempts
	}
	switch p := cfg.Credentials.(type) {
	case nil:
	case aws.AnonymousCredentials:
		c.anonymous = true
	case *aws.CredentialsCache:
		c.creds = p
	default:
		c.creds = aws.NewCredentialsCache(p)
	}
	if ep := baseEndpoint(cfg); ep != "" {
		// An unusable endpoint fails every request rather than New, as
		// with the SDK's own clients.
		u, err := url.Parse(ep)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
			c.endpointErr = errors.New("invalid base endpoint")
		}
		c.endpoint = u
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		// S3 redirects (wrong region) cannot be followed with the same
		// signature; the 3xx is returned as an error instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// serviceEndpointSource is what the SDK's config sources implement to
// supply AWS_ENDPOINT_URL_S3 and the shared config's services section.
type serviceEndpointSource interface {
	GetServiceBaseEndpoint(ctx context.Context, sdkID string) (string, bool, error)
}

type ignoreEndpointsSource interface {
	GetIgnoreConfiguredEndpoints(ctx context.Context) (bool, bool, error)
}

// baseEndpoint resolves the endpoint the way the SDK's S3 client does: the
// config's BaseEndpoint, overridden by an S3-specific setting unless only
// the general AWS_ENDPOINT_URL is set in the environment.
func baseEndpoint(cfg aws.Config) string {
	ep := aws.ToString(cfg.BaseEndpoint)
	_, general := os.LookupEnv("AWS_ENDPOINT_URL")
	_, specific := os.LookupEnv("AWS_ENDPOINT_URL_S3")
	if general && !specific {
		return ep
	}
	ctx := context.Background()
	for _, src := range cfg.ConfigSources {
		if s, ok := src.(ignoreEndpointsSource); ok {
			if ignore, found, err := s.GetIgnoreConfiguredEndpoints(ctx); err == nil && found {
				if ignore {
					return ep
				}
				break
			}
		}
	}
	for _, src := range cfg.ConfigSources {
		if s, ok := src.(serviceEndpointSource); ok {
			if v, found, err := s.GetServiceBaseEndpoint(ctx, serviceID); err == nil && found {
				return v
			}
		}
	}
	return ep
}

// objectURL returns the URL of key in bucket; an empty key addresses the
// bucket itself.
func (c *Client) objectURL(bucket, key string) (*url.URL, error) {
	if bucket == "" || strings.ContainsAny(bucket, "/?#") {
		return nil, errors.New("invalid bucket name")
	}
	if c.endpointErr != nil {
		return nil, c.endpointErr
	}
	if c.endpoint != nil {
		u := *c.endpoint
		u.RawQuery, u.Fragment = "", ""
		u.Path, u.RawPath = joinPath(u.Path, u.EscapedPath(), bucket, key)
		return &u, nil
	}
	if c.region == "" {
		return nil, errors.New("region not set")
	}
	if !validHostLabel(c.region) {
		return nil, errors.New("invalid region")
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(c.region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	host := "s3." + c.region + "." + domain
	u := &url.URL{Scheme: "https", Host: host}
	if virtualHostable(bucket) {
		u.Host = bucket + "." + host
		u.Path, u.RawPath = "/"+key, "/"+escapeKey(key)
		return u, nil
	}
	u.Path, u.RawPath = joinPath("", "", bucket, key)
	return u, nil
}

// joinPath appends "/bucket[/key]" to a base path, in plain and escaped
// form.
func joinPath(base, rawBase, bucket, key string) (path, rawPath string) {
	base, rawBase = strings.TrimSuffix(base, "/"), strings.TrimSuffix(rawBase, "/")
	path, rawPath = base+"/"+bucket, rawBase+"/"+escapeKey(bucket)
	if key != "" {
		path, rawPath = path+"/"+key, rawPath+"/"+escapeKey(key)
	}
	return path, rawPath
}

// escapeKey percent-encodes every byte of key except the unreserved
// characters of RFC 3986 and '/', which S3 keeps as a separator. S3 signs
// the path exactly as sent, so this one encoding serves for both.
func escapeKey(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// virtualHostable reports whether bucket can be the first label of a TLS
// host name under *.s3.<region>.amazonaws.com: names with dots would not
// match the wildcard certificate, and legacy names with capitals or
// underscores are not valid host names.
func virtualHostable(bucket string) bool {
	return len(bucket) >= 3 && len(bucket) <= 63 && validHostLabel(bucket)
}

// validHostLabel reports whether s is lowercase letters, digits and inner
// hyphens.
func validHostLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// credentials returns the credentials to sign with, or ok false for
// anonymous requests.
func (c *Client) credentials(ctx context.Context) (creds aws.Credentials, ok bool, err error) {
	if c.anonymous {
		return aws.Credentials{}, false, nil
	}
	if c.creds == nil {
		return aws.Credentials{}, false, errors.New("no credentials provider configured")
	}
	creds, err = c.creds.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, false, fmt.Errorf("retrieve credentials: %w", err)
	}
	return creds, true, nil
}
