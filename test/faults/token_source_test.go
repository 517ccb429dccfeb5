package faults_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
)

// TestTokenSourceSecretsManagerFaults: a Secrets Manager failure that
// outlasts the SDK's retries reaches the caller as an error, is not
// remembered, and does not turn into Klavi /auth calls; the next call reads
// the secret and succeeds, and the one after is served from memory.
func TestTokenSourceSecretsManagerFaults(t *testing.T) {
	for _, fault := range []faultproxy.Fault{
		faultproxy.Throttle(),
		faultproxy.Status(500),
		faultproxy.Reset(),
		faultproxy.ResetAfterForward(),
	} {
		t.Run(fault.String(), func(t *testing.T) {
			p, cfg := awsProxy(t)
			k := newKlaviSide(t)
			direct := secretsmanager.NewFromConfig(awstest.Config(t))
			credsID, tokenID := awstest.Name(t, "klavi-credentials"), awstest.Name(t, "klavi-token")
			creds, _ := json.Marshal(map[string]string{"accessKey": simAccessKey, "secretKey": simSecretKey})
			stored, _ := json.Marshal(map[string]string{"accessToken": k.token, "expiresAt": time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)})
			for id, value := range map[string][]byte{credsID: creds, tokenID: stored} {
				if _, err := direct.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(id), SecretString: aws.String(string(value))}); err != nil {
					t.Fatalf("create secret: %v", err)
				}
			}
			src, err := tokensource.New(secretsmanager.NewFromConfig(cfg), k.direct, tokensource.Config{
				CredentialsSecretID: credsID,
				TokenSecretID:       tokenID,
			})
			if err != nil {
				t.Fatalf("tokensource.New: %v", err)
			}
			reads := faultproxy.SecretsGet()
			p.Inject(faultproxy.Rule{Match: reads, Times: sdkAttempts, Fault: fault})
			auths := k.received("/data/v1/auth") // the setup's own

			_, err = src.Token(t.Context())

			if err == nil {
				t.Fatalf("Token with Secrets Manager failing = nil error, want an error")
			}
			if msg := err.Error(); strings.Contains(msg, k.token) || strings.Contains(msg, simSecretKey) {
				t.Errorf("error leaks a secret: %s", msg)
			}
			if got := p.Count(reads); got != sdkAttempts {
				t.Errorf("GetSecretValue attempts = %d, want %d", got, sdkAttempts)
			}
			if got := k.received("/data/v1/auth") - auths; got != 0 {
				t.Errorf("Klavi /auth calls = %d, want 0 (a Secrets Manager outage is not a reason to mint tokens)", got)
			}

			tok, err := src.Token(t.Context())

			if err != nil || tok != k.token {
				t.Fatalf("Token after the fault = %v (same as stored: %v), want the stored token", err, tok == k.token)
			}
			if got := p.Count(reads); got != sdkAttempts+1 {
				t.Errorf("GetSecretValue calls = %d, want %d", got, sdkAttempts+1)
			}
			if tok, err = src.Token(t.Context()); err != nil || tok != k.token {
				t.Fatalf("warm Token = %v, want the cached token", err)
			}
			if got := p.Count(reads); got != sdkAttempts+1 {
				t.Errorf("GetSecretValue calls after a warm Token = %d, want %d (memory)", got, sdkAttempts+1)
			}
			// The webhook key comes from the credentials secret: the same
			// holds for it.
			p.Inject(faultproxy.Rule{Match: reads, Times: sdkAttempts, Fault: fault})
			if _, err := src.SecretKey(t.Context()); err == nil {
				t.Errorf("SecretKey with Secrets Manager failing = nil error, want an error")
			}
			key, err := src.SecretKey(t.Context())
			if err != nil || string(key) != simSecretKey {
				t.Errorf("SecretKey after the fault = %v (same as stored: %v), want the stored key", err, string(key) == simSecretKey)
			}
			if got := p.Count(reads); got != 2*sdkAttempts+2 {
				t.Errorf("GetSecretValue calls = %d, want %d", got, 2*sdkAttempts+2)
			}
		})
	}
}
