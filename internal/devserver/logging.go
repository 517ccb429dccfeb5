package devserver

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// requestIDHandler adds the Lambda request id of the record's context, as
// lambdacontext's own handler does in a function, but writes wherever the
// wrapped handler writes (lambdacontext's always writes to stdout).
type requestIDHandler struct{ slog.Handler }

// withRequestIDs wraps a logger so that records logged with an invocation's
// context carry its requestId.
func withRequestIDs(l *slog.Logger) *slog.Logger {
	return slog.New(requestIDHandler{l.Handler()})
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
