package klavi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuth(t *testing.T) {
	tests := []struct {
		name     string
		response string
		want     Token
	}{
		{name: "number", response: `{"accessToken":"` + testToken + `","expireIn":1800}`, want: Token{testToken, 30 * time.Minute}},
		{name: "string", response: `{"accessToken":"` + testToken + `","expireIn":"1800"}`, want: Token{testToken, 30 * time.Minute}},
		{name: "float", response: `{"accessToken":"` + testToken + `","expireIn":1800.5}`, want: Token{testToken, 1800500 * time.Millisecond}},
		{name: "missing", response: `{"accessToken":"` + testToken + `"}`, want: Token{testToken, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			var body map[string]string
			var authz []string
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/auth", func(w http.ResponseWriter, r *http.Request) {
				authz = r.Header.Values("Authorization")
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					t.Errorf("decode body: %v", err)
				}
				keys = sortedKeys(body)
				writeJSON(w, 200, tc.response)
			})
			srv := newServer(t, mux)
			// A token source is set to show Auth does not use it.
			c, _ := testClient(t, srv.URL, WithTokenSource(newFakeTokens(testToken2)))

			got, err := c.Auth(t.Context(), Credentials{AccessKey: testAccessKey, SecretKey: testSecretKey})
			if err != nil {
				t.Fatalf("Auth: %v", err)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("token (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(keys, []string{"accessKey", "secretKey"}); diff != "" {
				t.Errorf("body keys (-got +want):\n%s", diff)
			}
			if body["accessKey"] != testAccessKey || body["secretKey"] != testSecretKey {
				t.Errorf("body = %v, want the credentials", body)
			}
			if len(authz) != 0 {
				t.Errorf("Authorization header = %q, want none", authz)
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestAuthFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		response string
		wantIs   error
	}{
		{
			name:     "bad keys",
			status:   401,
			response: `{"statusCode":401,"error":"Unauthorized","message":"Invalid accessKey or secretKey"}`,
			wantIs:   ErrUnauthorized,
		},
		{
			name:     "keys echoed",
			status:   401,
			response: `{"statusCode":401,"error":"Unauthorized","message":"bad key ` + testAccessKey + ` / ` + testSecretKey + `"}`,
			wantIs:   ErrUnauthorized,
		},
		{name: "no token", status: 200, response: `{"expireIn":1800}`, wantIs: ErrMalformedResponse},
		{name: "token echoed in garbage", status: 200, response: `{"accessToken":"` + testToken + `","expireIn":"soon"}`, wantIs: ErrMalformedResponse},
		{name: "not json", status: 200, response: `<html>` + testToken, wantIs: ErrMalformedResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits int
			mux := http.NewServeMux()
			mux.HandleFunc("POST /data/v1/auth", func(w http.ResponseWriter, r *http.Request) {
				hits++
				writeJSON(w, tc.status, tc.response)
			})
			srv := newServer(t, mux)
			tokens := newFakeTokens(testToken)
			c, _ := testClient(t, srv.URL, WithTokenSource(tokens))

			_, err := c.Auth(t.Context(), Credentials{AccessKey: testAccessKey, SecretKey: testSecretKey})
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Auth error = %v, want %v", err, tc.wantIs)
			}
			assertNoSecrets(t, err)
			if hits != 1 {
				t.Errorf("server got %d requests, want 1", hits)
			}
			if inv := tokens.Invalidated(); len(inv) != 0 {
				t.Errorf("Invalidate called with %q, want no call", inv)
			}
		})
	}
}

func TestAuthValidation(t *testing.T) {
	c, _ := testClient(t, "http://127.0.0.1:1")
	for _, cr := range []Credentials{{}, {AccessKey: testAccessKey}, {SecretKey: testSecretKey}} {
		_, err := c.Auth(t.Context(), cr)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Auth(%v) error = %v, want ErrInvalidRequest", cr, err)
		}
		assertNoSecrets(t, err)
	}
	if _, err := c.Refresh(t.Context(), ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("Refresh(\"\") error = %v, want ErrInvalidRequest", err)
	}
}

func TestRefresh(t *testing.T) {
	var authz string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data/v1/refresh", func(w http.ResponseWriter, r *http.Request) {
		authz = r.Header.Get("Authorization")
		writeJSON(w, 200, `{"accessToken":"`+testToken2+`","expireIn":"1800"}`)
	})
	srv := newServer(t, mux)
	c, _ := testClient(t, srv.URL) // no token source: Refresh uses the token given

	got, err := c.Refresh(t.Context(), testToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if diff := cmp.Diff(got, Token{AccessToken: testToken2, ExpiresIn: 30 * time.Minute}); diff != "" {
		t.Errorf("token (-got +want):\n%s", diff)
	}
	if want := "Bearer " + testToken; authz != want {
		t.Errorf("Authorization = %q, want %q", authz, want)
	}
}

func TestRefreshUnauthorizedIsNotRetried(t *testing.T) {
	var hits int
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data/v1/refresh", func(w http.ResponseWriter, r *http.Request) {
		hits++
		writeJSON(w, 401, `{"statusCode":401,"error":"Unauthorized","message":"jwt expired"}`)
	})
	srv := newServer(t, mux)
	tokens := newFakeTokens(testToken, testToken2)
	c, _ := testClient(t, srv.URL, WithTokenSource(tokens))

	_, err := c.Refresh(t.Context(), testToken)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Refresh error = %v, want ErrUnauthorized", err)
	}
	assertNoSecrets(t, err)
	if hits != 1 {
		t.Errorf("server got %d requests, want 1", hits)
	}
	if inv := tokens.Invalidated(); len(inv) != 0 {
		t.Errorf("Invalidate called with %q, want no call", inv)
	}
}

func TestSecondsDecoding(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: `1800`, want: 30 * time.Minute},
		{in: `"1800"`, want: 30 * time.Minute},
		{in: `" 1800 "`, want: 30 * time.Minute},
		{in: `1800.0`, want: 30 * time.Minute},
		{in: `"1800.25"`, want: 1800250 * time.Millisecond},
		{in: `1.8e3`, want: 30 * time.Minute},
		{in: `0`, want: 0},
		{in: `null`, want: 0},
		{in: `""`, want: 0},
		{in: `-1`, wantErr: true},
		{in: `"soon"`, wantErr: true},
		{in: `"NaN"`, wantErr: true},
		{in: `1e30`, wantErr: true},
		{in: `true`, wantErr: true},
		{in: `{}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var v struct {
				ExpireIn seconds `json:"expireIn"`
			}
			err := json.Unmarshal([]byte(`{"expireIn":`+tc.in+`}`), &v)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("decode %s = %v, want an error", tc.in, time.Duration(v.ExpireIn))
				}
				return
			}
			if err != nil {
				t.Fatalf("decode %s: %v", tc.in, err)
			}
			if got := time.Duration(v.ExpireIn); got != tc.want {
				t.Errorf("decode %s = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSecretsAreNotFormatted(t *testing.T) {
	cr := Credentials{AccessKey: testAccessKey, SecretKey: testSecretKey}
	tok := Token{AccessToken: testToken, ExpiresIn: time.Minute}

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("x", "credentials", cr, "token", tok, "tokenPtr", &tok)

	outputs := map[string]string{"log": logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		outputs[verb] = fmt.Sprintf(verb+" "+verb+" "+verb, cr, tok, &cr)
	}
	for name, out := range outputs {
		for _, secret := range []string{testAccessKey, testSecretKey, testToken} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output %q contains %q", name, out, secret)
			}
		}
	}
	if !strings.Contains(logs.String(), `"expiresIn"`) {
		t.Errorf("log %q lacks the token lifetime", logs.String())
	}
}
