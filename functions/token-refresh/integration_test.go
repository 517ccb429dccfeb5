package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/klavisim"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

const (
	simAccessKey = "sim-access-key-0123"
	simSecretKey = "sim-secret-key-4567"
)

// env is one deployment: the two secrets in the emulator and a Klavi
// simulator. Every Source built from it is one Lambda instance.
type env struct {
	sm          *secretsmanager.Client
	sim         *klavisim.Simulator
	klaviURL    string
	klavi       *klavi.Client
	credsSecret string
	tokenSecret string
}

func newEnv(t *testing.T, credentials string) *env {
	t.Helper()
	e := &env{
		sm:          secretsmanager.NewFromConfig(awstest.Config(t)),
		sim:         klavisim.New(klavisim.Options{AccessKey: simAccessKey, SecretKey: simSecretKey}),
		credsSecret: awstest.Name(t, "klavi-credentials"),
		tokenSecret: awstest.Name(t, "klavi-token"),
	}
	srv := httptest.NewServer(e.sim)
	t.Cleanup(srv.Close)
	e.klaviURL = srv.URL
	kc, err := klavi.New(srv.URL)
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}
	e.klavi = kc

	if _, err := e.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name:         aws.String(e.credsSecret),
		SecretString: aws.String(credentials),
	}); err != nil {
		t.Fatalf("create credentials secret: %v", err)
	}
	// Created empty, as before token-refresh first runs.
	if _, err := e.sm.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
		Name: aws.String(e.tokenSecret),
	}); err != nil {
		t.Fatalf("create token secret: %v", err)
	}
	return e
}

func (e *env) source(t *testing.T) *tokensource.Source {
	t.Helper()
	src, err := tokensource.New(e.sm, e.klavi, tokensource.Config{
		CredentialsSecretID: e.credsSecret,
		TokenSecretID:       e.tokenSecret,
	})
	if err != nil {
		t.Fatalf("tokensource.New: %v", err)
	}
	return src
}

func (e *env) authCalls() int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Path == "/data/v1/auth" {
			n++
		}
	}
	return n
}

// tokenSecretValue returns the token secret's JSON fields, or nil when it has no
// value yet.
func (e *env) tokenSecretValue(t *testing.T) map[string]string {
	t.Helper()
	out, err := e.sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(e.tokenSecret)})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("read token secret: %v", err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v); err != nil {
		t.Fatalf("token secret is not JSON: %v", err)
	}
	return v
}

// acceptedBySimulator reports whether the simulator takes tok as a Bearer
// token.
func (e *env) acceptedBySimulator(t *testing.T, tok string) bool {
	t.Helper()
	_, err := e.klavi.Refresh(t.Context(), tok)
	if err != nil && !errors.Is(err, klavi.ErrUnauthorized) {
		t.Fatalf("refresh with token: %v", err)
	}
	return err == nil
}

func credentialsJSON(accessKey, secretKey string) string {
	b, _ := json.Marshal(map[string]string{"accessKey": accessKey, "secretKey": secretKey})
	return string(b)
}

func TestIntegrationRotateThenServeFromSecret(t *testing.T) {
	e := newEnv(t, credentialsJSON(simAccessKey, simSecretKey))
	var logs bytes.Buffer
	h := &handler{rotator: e.source(t), log: slog.New(slog.NewJSONHandler(&logs, nil))}

	if err := h.Handle(t.Context(), scheduledEvent(t)); err != nil {
		t.Fatalf("Handle() error = %v", err)
	}
	stored := e.tokenSecretValue(t)
	if stored == nil || stored["accessToken"] == "" {
		t.Fatalf("token secret after Handle = %v, want an accessToken", stored)
	}
	expiresAt, err := time.Parse(time.RFC3339, stored["expiresAt"])
	if err != nil {
		t.Fatalf("token secret expiresAt %q: %v", stored["expiresAt"], err)
	}
	if d := time.Until(expiresAt); d < 25*time.Minute || d > 31*time.Minute {
		t.Errorf("token secret expires in %v, want about 30m", d)
	}
	if strings.Contains(logs.String(), stored["accessToken"]) {
		t.Errorf("log contains the access token:\n%s", logs.String())
	}
	if got := e.authCalls(); got != 1 {
		t.Fatalf("simulator /auth calls after Handle = %d, want 1", got)
	}

	// Another instance (another function) reads the token from the secret.
	reader := e.source(t)
	for range 3 {
		tok, err := reader.Token(t.Context())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if tok != stored["accessToken"] {
			t.Fatalf("Token() returned a token other than the stored one")
		}
	}
	if got := e.authCalls(); got != 1 {
		t.Errorf("simulator /auth calls after Token() = %d, want 1 (the rotation only)", got)
	}
	if !e.acceptedBySimulator(t, stored["accessToken"]) {
		t.Error("simulator rejects the rotated token")
	}
}

func TestIntegrationWrongCredentials(t *testing.T) {
	e := newEnv(t, credentialsJSON(simAccessKey, "not-the-secret-key"))
	var logs bytes.Buffer
	h := &handler{rotator: e.source(t), log: slog.New(slog.NewJSONHandler(&logs, nil))}

	err := h.Handle(t.Context(), scheduledEvent(t))
	if !errors.Is(err, klavi.ErrUnauthorized) {
		t.Fatalf("Handle() error = %v, want klavi.ErrUnauthorized", err)
	}
	if !strings.Contains(logs.String(), `"error_code":"klavi_credentials_rejected"`) {
		t.Errorf("log lacks error_code klavi_credentials_rejected:\n%s", logs.String())
	}
	for _, s := range []string{"not-the-secret-key", simAccessKey} {
		if strings.Contains(logs.String(), s) || strings.Contains(err.Error(), s) {
			t.Errorf("credential %q leaked; log:\n%s\nerror: %v", s, logs.String(), err)
		}
	}
	if got := e.authCalls(); got != 1 {
		t.Errorf("simulator /auth calls = %d, want 1", got)
	}
	if v := e.tokenSecretValue(t); v != nil {
		t.Errorf("token secret written after a rejected rotation: %v", v)
	}
}

func TestIntegrationExpiredTokenInSecret(t *testing.T) {
	e := newEnv(t, credentialsJSON(simAccessKey, simSecretKey))
	expired := map[string]string{
		"accessToken": "simtok_long_gone",
		"expiresAt":   time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
	}
	b, _ := json.Marshal(expired)
	if _, err := e.sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String(e.tokenSecret),
		SecretString: aws.String(string(b)),
	}); err != nil {
		t.Fatalf("put expired token: %v", err)
	}

	reader := e.source(t)
	var first string
	for i := range 3 {
		tok, err := reader.Token(t.Context())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if i == 0 {
			first = tok
		}
		if tok == expired["accessToken"] || tok != first {
			t.Fatalf("Token() call %d served the expired token or a different one", i)
		}
	}
	if got := e.authCalls(); got != 1 {
		t.Errorf("simulator /auth calls = %d, want 1", got)
	}
	if !e.acceptedBySimulator(t, first) {
		t.Error("simulator rejects the token from /auth")
	}
	// Readers never write the shared secret.
	if got := e.tokenSecretValue(t); got["accessToken"] != expired["accessToken"] {
		t.Error("Token() rewrote the token secret")
	}
}

// TestIntegrationRejectedTokenIsReplaced: Klavi stops accepting the stored
// token before its expiresAt; the client's 401 handling invalidates it, the
// source finds the same token in the secret and goes to /auth once.
func TestIntegrationRejectedTokenIsReplaced(t *testing.T) {
	e := newEnv(t, credentialsJSON(simAccessKey, simSecretKey))
	if _, err := e.source(t).Rotate(t.Context()); err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	reader := e.source(t)
	kc, err := klavi.New(e.klaviURL, klavi.WithTokenSource(reader))
	if err != nil {
		t.Fatalf("klavi.New: %v", err)
	}
	if _, err := kc.CreateLink(t.Context(), klavi.CreateLinkRequest{}); err != nil {
		t.Fatalf("CreateLink() with the rotated token: %v", err)
	}
	if got := e.authCalls(); got != 1 {
		t.Fatalf("simulator /auth calls = %d, want 1 (the rotation)", got)
	}

	e.sim.ExpireTokens()
	if _, err := kc.CreateLink(t.Context(), klavi.CreateLinkRequest{}); err != nil {
		t.Fatalf("CreateLink() after the token was revoked: %v", err)
	}
	if got := e.authCalls(); got != 2 {
		t.Errorf("simulator /auth calls = %d, want 2", got)
	}
}
