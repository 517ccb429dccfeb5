package s3lite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/smithy-go"
)

// emptySHA256 is the hex SHA-256 of an empty payload.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// maxResultBytes bounds the XML read from a successful List or Delete
// response: a page of 1000 keys of 1024 bytes each, with their other
// fields, stays well below it.
const maxResultBytes = 8 << 20

// request is one S3 operation, sent as one or more HTTP attempts.
type request struct {
	op     string // operation name, for errors
	method string
	bucket string
	key    string // empty for bucket operations
	query  url.Values
	header http.Header
	// body is read from its position at the time of the call; it is
	// rewound there before each attempt. nil sends no body.
	body        io.ReadSeeker
	bodyStart   int64
	length      int64
	payloadHash string // hex SHA-256 of the body
	// readAll makes send read the whole response body within the attempt,
	// so that a connection failure while reading it is retried too.
	readAll bool
}

// response is a successful (2xx) answer. For a request with readAll, data
// holds the body and Body is already closed; otherwise the caller closes
// Body.
type response struct {
	*http.Response
	data []byte
}

// send performs r with retries. Errors are wrapped in a
// *smithy.OperationError naming the operation.
func (c *Client) send(ctx context.Context, r *request) (*response, error) {
	resp, err := c.sendAttempts(ctx, r)
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: serviceID, OperationName: r.op, Err: err}
	}
	return resp, nil
}

func (c *Client) sendAttempts(ctx context.Context, r *request) (*response, error) {
	u, err := c.objectURL(r.bucket, r.key)
	if err != nil {
		return nil, err
	}
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	if r.payloadHash == "" {
		r.payloadHash = emptySHA256
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.attempt(ctx, r, u)
		if err == nil {
			return resp, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w: %w", ctxErr, err)
			}
			return nil, err
		}
		if attempt >= c.maxAttempts || !retryable(err) {
			return nil, err
		}
		if werr := sleep(ctx, c.backoff(attempt)); werr != nil {
			return nil, fmt.Errorf("wait to retry: %w; last attempt: %w", werr, err)
		}
	}
}

// attempt sends r once. An error is a *APIError for an S3 error response,
// or the transport's or reader's error.
func (c *Client) attempt(ctx context.Context, r *request, u *url.URL) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// u.String() re-escapes the path its own way; keep S3's escaping,
	// which is the one signed.
	uc := *u
	req.URL = &uc
	req.Host = u.Host
	req.Header = r.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	// Without this Go's transport asks for gzip and silently decompresses,
	// which would change the bytes and length of a gzip-encoded object.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("X-Amz-Content-Sha256", r.payloadHash)

	var body *attemptBody
	if r.body != nil && r.length > 0 {
		if _, err := r.body.Seek(r.bodyStart, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind body: %w", err)
		}
		body = &attemptBody{r: io.LimitReader(r.body, r.length)}
		req.Body = body
		req.ContentLength = r.length
	} else if r.method == http.MethodPut || r.method == http.MethodPost {
		req.Body = http.NoBody
	}
	// The transport may go on reading the body in its own goroutine after
	// Do returns; detaching stops that before the body is rewound for the
	// next attempt or handed back to the caller.
	if body != nil {
		defer body.detach()
	}

	creds, sign, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	if sign {
		if err := c.signer.SignHTTP(ctx, creds, req, r.payloadHash, signingName, c.region, time.Now()); err != nil {
			return nil, fmt.Errorf("sign request: %w", err)
		}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, readError(resp)
	}
	if !r.readAll {
		return &response{Response: resp}, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResultBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(data) > maxResultBytes {
		return nil, errors.New("read response: body larger than expected")
	}
	return &response{Response: resp, data: data}, nil
}

// attemptBody is a request body that can be cut off from its reader.
type attemptBody struct {
	mu sync.Mutex
	r  io.Reader // nil once detached
}

var errDetached = errors.New("request body no longer available")

func (b *attemptBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.r == nil {
		return 0, errDetached
	}
	return b.r.Read(p)
}

func (b *attemptBody) Close() error {
	b.detach()
	return nil
}

// detach waits for a Read in progress and makes later ones fail.
func (b *attemptBody) detach() {
	b.mu.Lock()
	b.r = nil
	b.mu.Unlock()
}

// backoff returns the wait before retry number n (from 1): between half
// and all of base*2^(n-1), capped at the maximum.
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffBase
	for i := 1; i < n && d < c.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.backoffMax)
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hashSeeker returns the hex SHA-256 of the n bytes of r from start and
// leaves r at start.
func hashSeeker(r io.ReadSeeker, start, n int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(r, n)); err != nil {
		return "", fmt.Errorf("hash body: %w", err)
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", fmt.Errorf("rewind body: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
