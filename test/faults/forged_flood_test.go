package faults_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/faultproxy"
	"github.com/openfinance-br/klavi-link-lambda/pkg/eventwebhook"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/tokensource"
	"github.com/openfinance-br/klavi-link-lambda/pkg/webhooksig"
)

// floodClock is the instance's clock during a flood: the token source, the
// signature verifier and the handler all read it, and the test moves it.
type floodClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *floodClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *floodClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestForgedSignatureFlood: 1,000 deliveries with well-formed signatures
// made with the wrong key (each one a reason to re-read the key) reach one
// warm event-webhook instance over about four minutes, with a genuine
// delivery after every 50th. The key comes from the credentials secret in
// the emulator through the shared token source, as deployed. Whether
// Secrets Manager answers or fails every read, the flood causes at most one
// read of the secret per tokensource.MinKeyReload, and every genuine
// delivery is answered 200.
func TestForgedSignatureFlood(t *testing.T) {
	const (
		forged      = 1000
		genuineEach = 50
		step        = 250 * time.Millisecond // between deliveries
	)
	for _, tc := range []struct {
		name  string
		fault bool
		// perRead is how many GetSecretValue requests one read makes: the
		// SDK retries a failing one.
		perRead int
	}{
		{"Secrets Manager answering", false, 1},
		{"Secrets Manager failing", true, sdkAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &floodClock{t: now}
			p, cfg := awsProxy(t)
			table, _ := newTable(t)
			credsID := awstest.Name(t, "klavi-credentials")
			creds, _ := json.Marshal(map[string]string{"accessKey": simAccessKey, "secretKey": webhookSecret})
			direct := secretsmanager.NewFromConfig(awstest.Config(t))
			if _, err := direct.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(credsID), SecretString: aws.String(string(creds))}); err != nil {
				t.Fatalf("create secret: %v", err)
			}
			keys, err := tokensource.New(secretsmanager.NewFromConfig(cfg), newKlaviSide(t).direct, tokensource.Config{
				CredentialsSecretID: credsID,
				TokenSecretID:       awstest.Name(t, "klavi-token"),
				Now:                 clk.Now,
			})
			if err != nil {
				t.Fatalf("tokensource.New: %v", err)
			}
			store := linkstore.NewDynamo(dynamodb.NewFromConfig(awstest.Config(t)), table, linkstore.WithClock(clk.Now))
			h := eventwebhook.New(keys, store, eventwebhook.Config{Verifier: webhooksig.Verifier{Now: clk.Now}, Now: clk.Now})

			template := loadEvent(t, "event-webhook-consent-authorised.json")
			deliver := func(i int, secret string) answer {
				req := template
				req.Body = strings.Replace(template.Body, "1495468585434-0e73d1719173766fe4dfe1a8", fmt.Sprintf("flood-%04d", i), 1)
				sig, ts := webhooksig.Sign([]byte(secret), []byte(req.Body), clk.Now())
				req.Headers = map[string]string{"content-type": "application/json", "x-klavi-signature": sig, "x-klavi-timestamp": ts}
				return call(t.Context(), t, h, req)
			}

			// A warm instance: the key was read by an earlier delivery.
			if a := deliver(-1, webhookSecret); a.status != http.StatusOK {
				t.Fatalf("warm-up delivery = %d %s, want 200", a.status, a)
			}
			reads := faultproxy.SecretsGet()
			if tc.fault {
				p.Inject(faultproxy.Rule{Match: reads, Times: 1 << 20, Fault: faultproxy.Throttle()})
			}
			p.ClearCounts()

			type read struct {
				at       time.Time
				requests int
			}
			var (
				readsAt []read
				last    int
				genuine int
			)
			for i := range forged {
				clk.Advance(step)
				if a := deliver(i, "forged-"+webhookSecret); a.status != http.StatusUnauthorized {
					t.Fatalf("forged delivery %d = %d %s, want 401", i, a.status, a)
				}
				if (i+1)%genuineEach == 0 {
					genuine++
					if a := deliver(forged+i, webhookSecret); a.status != http.StatusOK {
						t.Fatalf("genuine delivery %d during the flood = %d %s, want 200", genuine, a.status, a)
					}
				}
				if n := p.Count(reads); n != last {
					readsAt = append(readsAt, read{at: clk.Now(), requests: n - last})
					last = n
				}
			}

			elapsed := time.Duration(forged) * step
			t.Logf("%d forged and %d genuine deliveries over %s: %d reads of the secret (%d requests)", forged, genuine, elapsed, len(readsAt), last)
			if len(readsAt) == 0 {
				t.Fatalf("no read of the secret in %s of failed signatures, want one per %s to pick up a rotated key", elapsed, tokensource.MinKeyReload)
			}
			for i, r := range readsAt {
				if r.requests > tc.perRead {
					t.Errorf("read %d made %d GetSecretValue requests, want at most %d", i, r.requests, tc.perRead)
				}
				if i > 0 && r.at.Sub(readsAt[i-1].at) < tokensource.MinKeyReload {
					t.Errorf("reads at +%s and +%s: less than %s apart", readsAt[i-1].at.Sub(now), r.at.Sub(now), tokensource.MinKeyReload)
				}
			}
			if max := int(elapsed/tokensource.MinKeyReload) + 1; len(readsAt) > max {
				t.Errorf("reads = %d over %s, want at most %d", len(readsAt), elapsed, max)
			}
		})
	}
}
