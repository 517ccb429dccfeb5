package httpapi_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

// runtimeDecode is what the Lambda runtime does with the payload for a
// handler that takes the event type.
func runtimeDecode(payload []byte) (httpapi.Request, error) {
	var req httpapi.Request
	err := json.NewDecoder(bytes.NewReader(payload)).Decode(&req)
	return req, err
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		body    string
		wantErr bool
	}{
		{"plain", `{"version":"2.0","routeKey":"POST /x","headers":{"x-a":"1"},"requestContext":{"http":{"method":"POST","sourceIp":"1.2.3.4"}},"body":"{\n  \"a\": \"\\u00e7\\\"\"\n}","isBase64Encoded":false}`, "{\n  \"a\": \"\\u00e7\\\"\"\n}", false},
		{"escapes", `{"body":"\u00e7\ud83d\ude00\ud800\/\b\f\t\r","isBase64Encoded":false}`, "ç😀\ufffd/\b\f\t\r", false},
		{"invalid utf-8", "{\"body\":\"a\xffb\"}", "a\ufffdb", false},
		{"base64", `{"body":"eyJhIjoxfQ==","isBase64Encoded":true}`, "eyJhIjoxfQ==", false},
		{"repeated body, null keeps the last string", `{"body":"a","body":"b","body":null}`, "b", false},
		{"body key case", `{"BODY":"a"}`, "a", false},
		{"trailing bytes ignored", `{"body":"a"} garbage`, "a", false},
		{"null event", `null`, "", false},
		{"body not a string", `{"body":5}`, "", true},
		{"wrong type elsewhere", `{"body":"a","headers":[]}`, "", true},
		{"truncated body", `{"body":"abc`, "", true},
		{"control character in body", "{\"body\":\"a\nb\"}", "", true},
		{"empty", ``, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httpapi.ReadRequest([]byte(tc.payload))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ReadRequest() error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Body != tc.body {
				t.Errorf("Body = %q, want %q", got.Body, tc.body)
			}
			want, werr := runtimeDecode([]byte(tc.payload))
			if werr != nil {
				t.Fatalf("the runtime's decoding fails: %v", werr)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ReadRequest() differs from the runtime's decoding (-runtime +ReadRequest):\n%s", diff)
			}
		})
	}
}

// FuzzReadRequest holds ReadRequest to the runtime's decoding of the same
// payload (encoding/json into the event type): the same payloads accepted
// and the same request, body included. The seed corpus is in
// testdata/fuzz/FuzzReadRequest.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"version":"2.0","routeKey":"POST /webhooks/klavi/reports","headers":{"x-klavi-signature":"ab"},"requestContext":{"http":{"sourceIp":"1.2.3.4"}},"body":"{\"a\":\"\\u00e7\"}\n","isBase64Encoded":false}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		orig := bytes.Clone(payload)
		got, err := httpapi.ReadRequest(payload)
		if !bytes.Equal(payload, orig) {
			t.Fatalf("ReadRequest() modified its input")
		}
		want, werr := runtimeDecode(payload)
		if (err != nil) != (werr != nil) {
			t.Fatalf("ReadRequest() error = %v, the runtime's decoding gives %v", err, werr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ReadRequest() differs from the runtime's decoding (-runtime +ReadRequest):\n%s", diff)
		}
	})
}
