package klavi

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds the client's retries (see the package documentation for
// what is retried).
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included. 0 means 4; 1
	// disables retries.
	MaxAttempts int
	// BaseDelay is the backoff ceiling before the first retry; it doubles
	// for each further retry. 0 means 200ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling and the Retry-After the client is
	// willing to wait. 0 means 5s.
	MaxDelay time.Duration
}

const (
	defaultMaxAttempts = 4
	defaultBaseDelay   = 200 * time.Millisecond
	defaultMaxDelay    = 5 * time.Second
)

func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.MaxAttempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
		return p, errors.New("retry policy: negative value")
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = defaultMaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = defaultBaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = defaultMaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p, nil
}

// retryWait decides whether the failed attempt number n (counted against
// MaxAttempts) is retried, and after how long.
func (c *Client) retryWait(ctx context.Context, r *request, res attemptResult, err error, n int) (time.Duration, bool) {
	if n >= c.retry.MaxAttempts || ctx.Err() != nil {
		return 0, false
	}
	switch {
	case res.err != nil:
		// A network error. An idempotent call can always be repeated; any
		// other only when the request never reached a connection.
		if !r.idempotent && res.maybeSent {
			return 0, false
		}
	case res.status == http.StatusTooManyRequests:
		// Refused before it was acted on: safe for every call.
	case r.idempotent && (res.status == http.StatusBadGateway ||
		res.status == http.StatusServiceUnavailable ||
		res.status == http.StatusGatewayTimeout):
	default:
		return 0, false
	}

	wait := c.backoff(n)
	if res.header != nil {
		if ra, ok := parseRetryAfter(res.header, c.now()); ok {
			if ra > c.retry.MaxDelay {
				// Waiting that long would hold the invocation; retrying
				// sooner would be refused again. Let the caller decide.
				return 0, false
			}
			wait = ra
		}
	}
	if deadline, ok := ctx.Deadline(); ok && !c.now().Add(wait).Before(deadline) {
		return 0, false
	}
	return wait, true
}

// backoff returns the full-jitter wait before retry n (n >= 1): a random
// duration in [0, min(MaxDelay, BaseDelay*2^(n-1))].
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.retry.MaxDelay
	if n-1 < 62 {
		if d := c.retry.BaseDelay << (n - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return c.jitter(ceiling)
}

func fullJitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

// parseRetryAfter reads a Retry-After header given in seconds or as an HTTP
// date. A date in the past means no wait.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// sleepContext waits for d or until ctx is done, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
