package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// leakyErr carries a token it must not print, as an error from a real
// client might hold one internally.
type leakyErr struct {
	Token string
	cause error
}

func (e *leakyErr) Error() string { return "klavi auth failed" }
func (e *leakyErr) Unwrap() error { return e.cause }

type fakeRotator struct {
	fn    func(ctx context.Context) (time.Time, error)
	calls int
}

func (f *fakeRotator) Rotate(ctx context.Context) (time.Time, error) {
	f.calls++
	return f.fn(ctx)
}

// scheduledEvent is what EventBridge Scheduler/rules deliver to the function.
func scheduledEvent(t *testing.T) events.EventBridgeEvent {
	t.Helper()
	const raw = `{
  "version": "0",
  "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "account": "123456789012",
  "time": "2026-03-01T12:00:00Z",
  "region": "us-east-1",
  "resources": ["arn:aws:events:us-east-1:123456789012:rule/token-refresh"],
  "detail": {}
}`
	var ev events.EventBridgeEvent
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	return ev
}

func TestHandle(t *testing.T) {
	const token = "eyJhbGciOiJFUzI1NiJ9.secret-token"
	expiresAt := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

	tests := []struct {
		name      string
		rotate    func(context.Context) (time.Time, error)
		wantErr   bool
		wantLevel string
		wantCode  string // error_code field; empty: none
		wantIs    error
	}{
		{
			name:      "success",
			rotate:    func(context.Context) (time.Time, error) { return expiresAt, nil },
			wantLevel: "INFO",
		},
		{
			name: "klavi rejects the credentials",
			rotate: func(context.Context) (time.Time, error) {
				return time.Time{}, fmt.Errorf("rotate token: klavi auth: %w", &leakyErr{Token: token, cause: klavi.ErrUnauthorized})
			},
			wantErr:   true,
			wantLevel: "ERROR",
			wantCode:  "klavi_credentials_rejected",
			wantIs:    klavi.ErrUnauthorized,
		},
		{
			name: "other failure",
			rotate: func(context.Context) (time.Time, error) {
				return time.Time{}, fmt.Errorf("rotate token: put secret %q: %w", "klavi/token", &leakyErr{Token: token, cause: errors.New("throttled")})
			},
			wantErr:   true,
			wantLevel: "ERROR",
			wantCode:  "token_refresh_failed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			rot := &fakeRotator{fn: tc.rotate}
			h := &handler{rotator: rot, log: slog.New(slog.NewJSONHandler(&buf, nil))}

			err := h.Handle(t.Context(), scheduledEvent(t))

			if (err != nil) != tc.wantErr {
				t.Fatalf("Handle() error = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Handle() error = %v, want it to match %v", err, tc.wantIs)
			}
			if rot.calls != 1 {
				t.Errorf("Rotate calls = %d, want 1", rot.calls)
			}
			if strings.Contains(buf.String(), token) || (err != nil && strings.Contains(err.Error(), token)) {
				t.Errorf("token leaked; log:\n%s\nerror: %v", buf.String(), err)
			}

			rec := onlyRecord(t, &buf)
			if got := rec["level"]; got != tc.wantLevel {
				t.Errorf("level = %v, want %s", got, tc.wantLevel)
			}
			if got, _ := rec["error_code"].(string); got != tc.wantCode {
				t.Errorf("error_code = %q, want %q", got, tc.wantCode)
			}
			if tc.wantCode != "" && !strings.Contains(err.Error(), tc.wantCode) {
				t.Errorf("Handle() error = %q, want it to carry %q", err, tc.wantCode)
			}
			if !tc.wantErr {
				if got := rec["expiresAt"]; got != "2026-03-01T12:30:00Z" {
					t.Errorf("expiresAt = %v, want %q", got, "2026-03-01T12:30:00Z")
				}
			}
		})
	}
}

// onlyRecord decodes the single JSON log record in buf.
func onlyRecord(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log records, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log record is not JSON: %v\n%s", err, lines[0])
	}
	return rec
}
