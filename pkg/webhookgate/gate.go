// Package webhookgate admits Klavi webhook deliveries. Both webhooks (events
// and reports) run the same checks in the same order before they look at a
// body, and nothing is written before a delivery is admitted:
//
//  1. source IP against the allow list (403),
//  2. body size, base64 decoded when API Gateway says so (413, 400),
//  3. Klavi's console connectivity test, an empty unsigned POST: a ping,
//     acknowledged with 200 and otherwise ignored,
//  4. X-Klavi-Signature and X-Klavi-Timestamp with the secretKey (401; 503
//     when the key cannot be read).
package webhookgate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// SecretKeySource gives the HMAC key (the Klavi secretKey).
type SecretKeySource interface {
	SecretKey(ctx context.Context) ([]byte, error)
}

// keyReloader is the optional part of a SecretKeySource that reads the key
// again, past its cache. A rotated secretKey then takes effect on the first
// delivery signed with it. The source bounds the reads and keeps the cached
// key when a read fails; an error leaves the delivery rejected.
type keyReloader interface {
	ReloadSecretKey(ctx context.Context) ([]byte, error)
}

// Gate holds one webhook's admission rules.
type Gate struct {
	// Webhook names the webhook in metrics ("Webhook" dimension) and logs.
	Webhook   string
	MaxBody   int
	SourceIPs httpapi.Allowlist
	Verifier  webhooksig.Verifier
	Keys      SecretKeySource
	Logger    *slog.Logger
	Metrics   *metrics.Recorder
}

// Admission is the gate's decision on one delivery.
type Admission struct {
	// Body is the verified raw body. It is read-only (see httpapi.Body).
	Body []byte
	// Ping marks the console's connectivity test: answer 200, change nothing.
	Ping bool
	// Reject, when set, is the answer to send instead of processing.
	Reject *httpapi.Response
}

// Admit checks one delivery.
func (g *Gate) Admit(ctx context.Context, req httpapi.Request) Admission {
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("webhook", g.Webhook)
	if !g.SourceIPs.Allows(req) {
		log.WarnContext(ctx, "webhook: source not allowed", "error_code", "source_not_allowed")
		g.Metrics.Count("SourceRejected", 1, "Webhook", g.Webhook)
		return reject(http.StatusForbidden, "source_not_allowed", "This source may not call the webhook.")
	}
	body, err := httpapi.Body(req, g.MaxBody)
	if errors.Is(err, httpapi.ErrBodyTooLarge) {
		log.ErrorContext(ctx, "webhook: body too large", "error_code", "body_too_large", "limit", g.MaxBody)
		g.Metrics.Count("BodyTooLarge", 1, "Webhook", g.Webhook)
		return reject(http.StatusRequestEntityTooLarge, "body_too_large", "The delivery is larger than this webhook accepts.")
	}
	if err != nil {
		return reject(http.StatusBadRequest, "invalid_body", "The body could not be read.")
	}
	sig := httpapi.Header(req, webhooksig.SignatureHeader)
	if sig == "" && len(bytes.TrimSpace(body)) == 0 {
		log.InfoContext(ctx, "webhook: empty connectivity check acknowledged")
		return Admission{Ping: true}
	}
	key, err := g.Keys.SecretKey(ctx)
	if err != nil {
		log.ErrorContext(ctx, "webhook: signature key unavailable", "error_code", "key_unavailable", "error", err)
		return reject(http.StatusServiceUnavailable, "dependency_unavailable", "The webhook cannot verify deliveries right now.")
	}
	ts := httpapi.Header(req, webhooksig.TimestampHeader)
	err = g.Verifier.Verify(key, body, sig, ts)
	// Only a signature as Klavi writes it, with a timestamp in tolerance,
	// may cost a key reload (itself bounded by the source): after a key
	// rotation that is what a genuine delivery looks like.
	if r, ok := g.Keys.(keyReloader); ok && errors.Is(err, webhooksig.ErrInvalidSignature) && webhooksig.WellFormed(sig) {
		if fresh, rerr := r.ReloadSecretKey(ctx); rerr == nil && !bytes.Equal(fresh, key) {
			log.InfoContext(ctx, "webhook: signature key changed, verifying with the new key")
			err = g.Verifier.Verify(fresh, body, sig, ts)
		}
	}
	if err != nil {
		code := webhooksig.ErrorCode(err)
		log.WarnContext(ctx, "webhook: signature rejected", "error_code", code)
		g.Metrics.Count("SignatureRejected", 1, "Webhook", g.Webhook, "Reason", code)
		return reject(http.StatusUnauthorized, code, "The delivery's signature could not be verified.")
	}
	return Admission{Body: body}
}

func reject(status int, code, message string) Admission {
	resp := httpapi.Error(status, code, message)
	return Admission{Reject: &resp}
}
