// Package tokensource serves the Klavi access token that every function of a
// deployment shares, and the Klavi credentials it comes from.
//
// The token lives in a Secrets Manager secret that only the token-refresh
// function writes (Rotate). Every other function reads it through Token: from
// memory while it is fresh, else from the token secret, else, when the secret
// is missing, unparsable, about to expire or holds a token Klavi has just
// rejected, from Klavi /auth directly. That last path never writes the secret,
// so readers need secretsmanager:GetSecretValue only.
//
// github.com/aws/aws-secretsmanager-caching-go is not used. It expires every
// entry on one fixed, randomised TTL, while the token must be dropped when its
// own expiresAt (part of the secret's content) comes near and at once after a
// 401; it has no way to invalidate one entry; it remembers a failed refresh and
// backs off before trying again, where a failed token refresh here must let
// the next caller retry (a held secretKey is the exception: see
// MinKeyReload); and each refresh calls DescribeSecret before GetSecretValue,
// which doubles the reads and widens every function's IAM policy. What it
// would save, a timestamp per value and a lock, is less than what it would
// take to work around.
package tokensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"golang.org/x/sync/singleflight"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

const (
	// DefaultRefreshBefore is how long before its expiry a token stops being
	// served. It covers clock skew and the duration of the call it is used for.
	DefaultRefreshBefore = 2 * time.Minute
	// DefaultTokenLifetime is assumed when Klavi /auth does not say how long
	// its token lives (its documentation says 1800 s).
	DefaultTokenLifetime = 30 * time.Minute
	// DefaultCredentialsTTL is how long credentials are kept in memory, so a
	// rotated key pair reaches every warm instance within that time.
	DefaultCredentialsTTL = 30 * time.Minute

	// refreshTimeout bounds a shared refresh. The refresh runs detached from
	// the caller that started it, so one caller giving up does not fail the
	// others waiting on the same refresh.
	refreshTimeout = 30 * time.Second
)

// SecretsAPI is the part of the Secrets Manager client the source calls.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

// authenticator exchanges credentials for a new access token (Klavi /auth).
type authenticator interface {
	Auth(ctx context.Context, creds klavi.Credentials) (klavi.Token, error)
}

// refresher is the optional part of an authenticator that trades a still
// valid token for a new one (Klavi GET /data/v1/refresh). *klavi.Client has
// it; Rotate prefers it to /auth.
type refresher interface {
	Refresh(ctx context.Context, accessToken string) (klavi.Token, error)
}

// Config configures a Source.
type Config struct {
	// CredentialsSecretID names the secret holding
	// {"accessKey":"...","secretKey":"..."}.
	CredentialsSecretID string
	// TokenSecretID names the secret holding
	// {"accessToken":"...","expiresAt":"RFC3339"}.
	TokenSecretID string
	// RefreshBefore: a token is served until expiresAt-RefreshBefore.
	// Zero means DefaultRefreshBefore.
	RefreshBefore time.Duration
	// CredentialsTTL: how long credentials stay in memory. Zero means
	// DefaultCredentialsTTL.
	CredentialsTTL time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Source hands out the shared Klavi access token and the Klavi credentials.
// It is safe for concurrent use; concurrent refreshes collapse into one.
type Source struct {
	sm   SecretsAPI
	auth authenticator
	cfg  Config

	flight singleflight.Group

	mu        sync.Mutex
	token     string    // empty when nothing is cached
	expiresAt time.Time // of token
	// rejected is the last token given to Invalidate. If the token secret
	// still holds it, Klavi is asked for a new one instead.
	rejected  string
	creds     klavi.Credentials
	credsRead time.Time // zero when no credentials are cached
	// credsTried is when the credentials secret was last read, or a read
	// started, whatever its outcome. While a key is held, reads are at most
	// one per MinKeyReload from it (see ReloadSecretKey).
	credsTried time.Time
}

var _ klavi.TokenSource = (*Source)(nil)

// New returns a Source reading the secrets named in cfg through sm and
// asking auth for tokens when no usable one is stored.
func New(sm SecretsAPI, auth authenticator, cfg Config) (*Source, error) {
	var missing []string
	if sm == nil {
		missing = append(missing, "secrets client")
	}
	if auth == nil {
		missing = append(missing, "authenticator")
	}
	if cfg.CredentialsSecretID == "" {
		missing = append(missing, "CredentialsSecretID")
	}
	if cfg.TokenSecretID == "" {
		missing = append(missing, "TokenSecretID")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("new token source: missing %s", strings.Join(missing, ", "))
	}
	if cfg.RefreshBefore < 0 || cfg.CredentialsTTL < 0 {
		return nil, errors.New("new token source: RefreshBefore and CredentialsTTL must not be negative")
	}
	if cfg.RefreshBefore == 0 {
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	if cfg.CredentialsTTL == 0 {
		cfg.CredentialsTTL = DefaultCredentialsTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{sm: sm, auth: auth, cfg: cfg}, nil
}

// Token returns an access token that is valid for at least RefreshBefore.
// It looks in memory, then in the token secret, then asks Klavi /auth.
func (s *Source) Token(ctx context.Context) (string, error) {
	if tok, ok := s.cachedToken(); ok {
		return tok, nil
	}
	v, err := s.shared(ctx, "token", s.refreshToken)
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Invalidate drops token from memory after Klavi rejected it. A token other
// than the cached one (already replaced) is ignored. The next Token call
// reads the token secret again and goes to Klavi if the secret still holds
// the rejected token.
func (s *Source) Invalidate(token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != token {
		return
	}
	s.token, s.expiresAt = "", time.Time{}
	s.rejected = token
}

// Credentials returns the Klavi key pair from the credentials secret, kept in
// memory for CredentialsTTL.
func (s *Source) Credentials(ctx context.Context) (klavi.Credentials, error) {
	creds, _, err := s.credentials(ctx)
	return creds, err
}

// SecretKey returns the Klavi secretKey, which is also the HMAC key of
// webhook signatures. The slice is the caller's own copy.
func (s *Source) SecretKey(ctx context.Context) ([]byte, error) {
	creds, err := s.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	return []byte(creds.SecretKey), nil
}

// MinKeyReload bounds how often the credentials secret is read while a key
// is held: a stream of badly signed requests, or a Secrets Manager outage,
// must not become a stream of Secrets Manager reads.
const MinKeyReload = 30 * time.Second

// ErrReloadTooSoon is returned by ReloadSecretKey when the credentials
// secret was read, or a read was tried, less than MinKeyReload ago.
var ErrReloadTooSoon = errors.New("secret key reloaded less than 30s ago")

// ReloadSecretKey reads the credentials secret again and returns the
// secretKey. The webhooks call it when a well-formed signature does not
// verify with the cached key: after the key is rotated in the Klavi Console
// and the secret, warm instances would otherwise reject every delivery until
// their cache expires.
//
// Reads are bounded to one per MinKeyReload per instance, counted from the
// last read or attempted read, failed or not; a call inside that window
// reads nothing and returns ErrReloadTooSoon. The cached key stays in use
// until a read succeeds, so a forged delivery can neither make genuine ones
// wait for Secrets Manager nor, when a read fails, take their key away.
func (s *Source) ReloadSecretKey(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	if !s.credsTried.IsZero() && s.cfg.Now().Before(s.credsTried.Add(MinKeyReload)) {
		s.mu.Unlock()
		return nil, ErrReloadTooSoon
	}
	// Claim the window before reading, so that concurrent callers do not
	// all read.
	s.credsTried = s.cfg.Now()
	s.mu.Unlock()
	v, err := s.shared(ctx, "credentials", s.readCredentials)
	if err != nil {
		return nil, fmt.Errorf("reload secret key: %w", err)
	}
	return []byte(v.(klavi.Credentials).SecretKey), nil
}

// Rotate gets a new token from Klavi /auth, stores it in the token secret and
// in memory, and returns when it expires. It is the only writer of the token
// secret.
func (s *Source) Rotate(ctx context.Context) (time.Time, error) {
	tok, expiresAt, err := s.renew(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("rotate token: %w", err)
	}
	body, err := json.Marshal(tokenSecret{AccessToken: tok, ExpiresAt: expiresAt.UTC().Format(time.RFC3339)})
	if err != nil {
		return time.Time{}, fmt.Errorf("rotate token: encode token secret: %w", err)
	}
	_, err = s.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String(s.cfg.TokenSecretID),
		SecretString: aws.String(string(body)),
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("rotate token: put secret %q: %w", s.cfg.TokenSecretID, err)
	}
	s.store(tok, expiresAt)
	return expiresAt, nil
}

// renew gets the next token for Rotate. While the current token is still
// valid it is traded in at Klavi's refresh endpoint, which Klavi documents
// for exactly this ("refresh ... before the accessToken reaches its
// expiration"), so a schedule running every 20 minutes costs no /auth
// calls. Without a current token, or when the refresh fails for any reason
// (an expired or revoked token, an endpoint that refuses it), the credentials
// go to /auth as before.
func (s *Source) renew(ctx context.Context) (string, time.Time, error) {
	r, ok := s.auth.(refresher)
	if !ok {
		return s.authenticate(ctx)
	}
	current, currentExpiry := s.currentToken()
	if current == "" {
		tok, expiresAt, found, err := s.readTokenSecret(ctx)
		if err == nil && found {
			current, currentExpiry = tok, expiresAt
		}
	}
	if current == "" || !s.cfg.Now().Before(currentExpiry) {
		return s.authenticate(ctx)
	}
	tok, err := r.Refresh(ctx, current)
	if err != nil || tok.AccessToken == "" {
		return s.authenticate(ctx)
	}
	return tok.AccessToken, s.expiry(tok), nil
}

// currentToken returns the token in memory, fresh or not, with its expiry.
func (s *Source) currentToken() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.expiresAt
}

// expiry is when a token Klavi just issued stops being valid.
func (s *Source) expiry(tok klavi.Token) time.Time {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		// Klavi did not say. Assume its documented lifetime: if the token
		// dies sooner, the 401 invalidates it and a new one is fetched.
		lifetime = DefaultTokenLifetime
	}
	// Whole seconds, so memory and the RFC 3339 secret agree.
	return s.cfg.Now().Add(lifetime).Truncate(time.Second)
}

// shared runs fn once for all concurrent callers using key. fn runs detached
// from ctx's cancellation (bounded by refreshTimeout) so that a caller giving
// up neither fails the others nor wastes the work; each caller still returns
// as soon as its own ctx is done. Errors are not kept: the next call retries.
func (s *Source) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	ch := s.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("get %s: %w", key, ctx.Err())
	case r := <-ch:
		return r.Val, r.Err
	}
}

// refreshToken finds a usable token in the token secret or, failing that, at
// Klavi. It does not write the secret.
func (s *Source) refreshToken(ctx context.Context) (any, error) {
	// A refresh may have finished between the caller's cache check and the
	// start of this one.
	if tok, ok := s.cachedToken(); ok {
		return tok, nil
	}
	tok, expiresAt, ok, err := s.readTokenSecret(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		s.store(tok, expiresAt)
		return tok, nil
	}
	tok, expiresAt, err = s.authenticate(ctx)
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	s.store(tok, expiresAt)
	return tok, nil
}

// tokenSecret is the JSON stored in the token secret.
type tokenSecret struct {
	AccessToken string `json:"accessToken"`
	ExpiresAt   string `json:"expiresAt"`
}

// readTokenSecret returns the token in the token secret when it is there,
// well-formed, not about to expire and not the one Klavi last rejected.
// ok=false with a nil error means the caller should go to Klavi.
func (s *Source) readTokenSecret(ctx context.Context) (tok string, expiresAt time.Time, ok bool, err error) {
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(s.cfg.TokenSecretID),
	})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		// Not written yet (first deploy before the first scheduled run).
		return "", time.Time{}, false, nil
	case err != nil:
		return "", time.Time{}, false, fmt.Errorf("get token: get secret %q: %w", s.cfg.TokenSecretID, err)
	case out.SecretString == nil:
		return "", time.Time{}, false, nil
	}
	var sec tokenSecret
	if json.Unmarshal([]byte(*out.SecretString), &sec) != nil || sec.AccessToken == "" {
		return "", time.Time{}, false, nil
	}
	expiresAt, perr := time.Parse(time.RFC3339, sec.ExpiresAt)
	if perr != nil || !s.fresh(expiresAt) {
		return "", time.Time{}, false, nil
	}
	s.mu.Lock()
	rejected := sec.AccessToken == s.rejected
	s.mu.Unlock()
	if rejected {
		return "", time.Time{}, false, nil
	}
	return sec.AccessToken, expiresAt, true, nil
}

// authenticate asks Klavi for a new token. When Klavi rejects credentials
// that came from memory, they are read again once: the key pair may have
// been rotated since they were cached.
func (s *Source) authenticate(ctx context.Context) (string, time.Time, error) {
	creds, fromMemory, err := s.credentials(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := s.auth.Auth(ctx, creds)
	if errors.Is(err, klavi.ErrUnauthorized) && fromMemory {
		s.dropCredentials(creds)
		if creds, _, err = s.credentials(ctx); err != nil {
			return "", time.Time{}, err
		}
		tok, err = s.auth.Auth(ctx, creds)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("klavi auth: %w", err)
	}
	if tok.AccessToken == "" {
		return "", time.Time{}, errors.New("klavi auth: empty access token")
	}
	return tok.AccessToken, s.expiry(tok), nil
}

// credentials returns the cached credentials or reads the credentials
// secret. fromMemory reports whether they came from the cache.
//
// Credentials past CredentialsTTL are read again, but while they are held
// the secret is read at most once per MinKeyReload, and a failed read keeps
// them in use: an expired cache during a Secrets Manager outage must not
// turn every webhook delivery into a read and a 503. Without credentials
// there is nothing to serve, so a failed read is not remembered and the
// next call tries again.
func (s *Source) credentials(ctx context.Context) (creds klavi.Credentials, fromMemory bool, err error) {
	s.mu.Lock()
	held := !s.credsRead.IsZero()
	now := s.cfg.Now()
	if held && (now.Before(s.credsRead.Add(s.cfg.CredentialsTTL)) || now.Before(s.credsTried.Add(MinKeyReload))) {
		creds = s.creds
		s.mu.Unlock()
		return creds, true, nil
	}
	old := s.creds
	s.credsTried = now
	s.mu.Unlock()
	v, err := s.shared(ctx, "credentials", s.readCredentials)
	if err != nil {
		if held {
			return old, true, nil
		}
		return klavi.Credentials{}, false, err
	}
	return v.(klavi.Credentials), false, nil
}

func (s *Source) readCredentials(ctx context.Context) (any, error) {
	id := s.cfg.CredentialsSecretID
	out, err := s.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return nil, fmt.Errorf("get credentials: get secret %q: %w", id, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("get credentials: secret %q has no string value", id)
	}
	// klavi.Credentials carries the secret's JSON field names.
	var creds klavi.Credentials
	// The decoder's error is not wrapped: a syntax error quotes the
	// offending character of the secret.
	if json.Unmarshal([]byte(*out.SecretString), &creds) != nil {
		return nil, fmt.Errorf(`get credentials: secret %q is not a JSON object {"accessKey","secretKey"} of strings`, id)
	}
	var missing []string
	if creds.AccessKey == "" {
		missing = append(missing, `"accessKey"`)
	}
	if creds.SecretKey == "" {
		missing = append(missing, `"secretKey"`)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("get credentials: secret %q: missing or empty %s", id, strings.Join(missing, " and "))
	}
	s.mu.Lock()
	s.creds, s.credsRead = creds, s.cfg.Now()
	s.mu.Unlock()
	return creds, nil
}

// dropCredentials forgets creds if they are still the cached ones.
func (s *Source) dropCredentials(creds klavi.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creds == creds {
		s.creds, s.credsRead = klavi.Credentials{}, time.Time{}
	}
}

func (s *Source) cachedToken() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == "" || !s.fresh(s.expiresAt) {
		return "", false
	}
	return s.token, true
}

func (s *Source) store(tok string, expiresAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.expiresAt = tok, expiresAt
}

// fresh reports whether a token expiring at expiresAt may still be served.
func (s *Source) fresh(expiresAt time.Time) bool {
	return s.cfg.Now().Before(expiresAt.Add(-s.cfg.RefreshBefore))
}
