package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Stable values of the error_code log field, for metric filters and alarms.
const (
	codeCredentialsRejected = "klavi_credentials_rejected"
	codeRefreshFailed       = "token_refresh_failed"
)

// tokenRotator gets a new Klavi token and stores it where every function
// reads it.
type tokenRotator interface {
	Rotate(ctx context.Context) (expiresAt time.Time, err error)
}

type handler struct {
	rotator tokenRotator
	log     *slog.Logger
}

// Handle runs on the EventBridge schedule. A failure is returned, not only
// logged, so that Lambda counts an error and the alarm on it fires; the
// schedule itself is the retry.
func (h *handler) Handle(ctx context.Context, _ events.EventBridgeEvent) error {
	expiresAt, err := h.rotator.Rotate(ctx)
	if err != nil {
		code := codeRefreshFailed
		if errors.Is(err, klavi.ErrUnauthorized) {
			code = codeCredentialsRejected
		}
		h.log.ErrorContext(ctx, "klavi token refresh failed", "error_code", code, "error", err)
		return fmt.Errorf("refresh klavi token (%s): %w", code, err)
	}
	h.log.InfoContext(ctx, "klavi token refreshed", "expiresAt", expiresAt.UTC().Format(time.RFC3339))
	return nil
}
