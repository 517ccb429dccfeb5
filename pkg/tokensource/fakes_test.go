package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

const (
	credsID = "klavi/credentials"
	tokenID = "klavi/token"

	accessKey = "AK-very-private-access-key"
	secretKey = "SK-very-private-secret-key"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeSecrets keeps secrets in a map. getFn and putFn, when set, replace
// the map behaviour; calls are counted either way.
type fakeSecrets struct {
	getFn func(ctx context.Context, id string) (*secretsmanager.GetSecretValueOutput, error)
	putFn func(ctx context.Context, id, value string) error

	mu     sync.Mutex
	values map[string]string
	gets   map[string]int
	puts   map[string]int
}

func newFakeSecrets() *fakeSecrets {
	return &fakeSecrets{values: map[string]string{}, gets: map[string]int{}, puts: map[string]int{}}
}

func (f *fakeSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	id := aws.ToString(in.SecretId)
	f.mu.Lock()
	f.gets[id]++
	v, ok := f.values[id]
	f.mu.Unlock()
	if f.getFn != nil {
		return f.getFn(ctx, id)
	}
	if !ok {
		return nil, errNotFound()
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func (f *fakeSecrets) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	id := aws.ToString(in.SecretId)
	f.mu.Lock()
	f.puts[id]++
	f.mu.Unlock()
	if f.putFn != nil {
		if err := f.putFn(ctx, id, aws.ToString(in.SecretString)); err != nil {
			return nil, err
		}
	}
	f.set(id, aws.ToString(in.SecretString))
	return &secretsmanager.PutSecretValueOutput{}, nil
}

func (f *fakeSecrets) set(id, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[id] = value
}

func (f *fakeSecrets) value(id string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.values[id]
	return v, ok
}

func (f *fakeSecrets) getCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets[id]
}

func (f *fakeSecrets) putCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts[id]
}

func (f *fakeSecrets) resetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets, f.puts = map[string]int{}, map[string]int{}
}

// fakeAuth answers Auth with fn, or with a numbered token valid 30 minutes.
type fakeAuth struct {
	fn func(ctx context.Context, creds klavi.Credentials) (klavi.Token, error)

	mu    sync.Mutex
	calls int
	creds []klavi.Credentials
}

func (f *fakeAuth) Auth(ctx context.Context, creds klavi.Credentials) (klavi.Token, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.creds = append(f.creds, creds)
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx, creds)
	}
	return klavi.Token{AccessToken: "klavi-token-" + strconv.Itoa(n), ExpiresIn: 30 * time.Minute}, nil
}

func (f *fakeAuth) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeAuth) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.creds = 0, nil
}

func credentialsJSON(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"accessKey": accessKey, "secretKey": secretKey})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tokenJSON(t *testing.T, token string, expiresAt time.Time) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"accessToken": token, "expiresAt": expiresAt.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixture is a Source over fakes, the credentials secret filled in.
type fixture struct {
	src   *Source
	sm    *fakeSecrets
	auth  *fakeAuth
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{sm: newFakeSecrets(), auth: &fakeAuth{}, clock: &clock{now: t0}}
	f.sm.set(credsID, credentialsJSON(t))
	src, err := New(f.sm, f.auth, Config{CredentialsSecretID: credsID, TokenSecretID: tokenID, Now: f.clock.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.src = src
	return f
}

func (f *fixture) token(t *testing.T) string {
	t.Helper()
	tok, err := f.src.Token(t.Context())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func (f *fixture) wantCalls(t *testing.T, tokenReads, credReads, auths int) {
	t.Helper()
	if got := f.sm.getCount(tokenID); got != tokenReads {
		t.Errorf("token secret reads = %d, want %d", got, tokenReads)
	}
	if got := f.sm.getCount(credsID); got != credReads {
		t.Errorf("credentials secret reads = %d, want %d", got, credReads)
	}
	if got := f.auth.count(); got != auths {
		t.Errorf("auth calls = %d, want %d", got, auths)
	}
}

var errBoom = errors.New("boom")

func errNotFound() error {
	return &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
}
