package reportrequest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

// ErrUnknownEvent reports an invocation that is neither a DynamoDB stream
// batch nor an HTTP API request.
var ErrUnknownEvent = errors.New("report request: event is neither a stream batch nor an HTTP request")

// Handle is the Lambda entry point: one function serves both triggers, so it
// tells them apart by shape — a stream batch has "Records", an HTTP API
// request has "routeKey" — and passes each to its handler.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Records  json.RawMessage `json:"Records"`
		RouteKey string          `json:"routeKey"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownEvent, err)
	}
	switch {
	case len(probe.Records) > 0:
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode stream batch: %w", err)
		}
		return h.HandleStream(ctx, ev)
	case probe.RouteKey != "":
		var req httpapi.Request
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("decode HTTP request: %w", err)
		}
		return h.HandleHTTP(ctx, req)
	default:
		return nil, ErrUnknownEvent
	}
}
