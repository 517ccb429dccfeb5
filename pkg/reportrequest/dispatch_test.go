package reportrequest

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

func TestHandleDispatchesByShape(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		file string
		want any
	}{
		{"report-request-stream-authorised.json", events.DynamoDBEventResponse{}},
		{"report-request-http.json", httpapi.Response{}},
	} {
		raw, err := os.ReadFile("../../events/" + tc.file)
		if err != nil {
			t.Fatalf("read %s: %v", tc.file, err)
		}
		got, err := e.h.Handle(t.Context(), raw)
		if err != nil {
			t.Fatalf("Handle(%s): %v", tc.file, err)
		}
		switch tc.want.(type) {
		case events.DynamoDBEventResponse:
			if _, ok := got.(events.DynamoDBEventResponse); !ok {
				t.Errorf("Handle(%s) = %T, want a stream batch response", tc.file, got)
			}
		case httpapi.Response:
			if _, ok := got.(httpapi.Response); !ok {
				t.Errorf("Handle(%s) = %T, want an HTTP response", tc.file, got)
			}
		}
	}
	for _, raw := range []string{`{}`, `[1]`, `not json`} {
		if _, err := e.h.Handle(t.Context(), json.RawMessage(raw)); !errors.Is(err, ErrUnknownEvent) {
			t.Errorf("Handle(%s) error = %v, want ErrUnknownEvent", raw, err)
		}
	}
}
