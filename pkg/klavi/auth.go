package klavi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Credentials are the application's key pair issued by Klavi. The JSON tags
// match the body of POST /data/v1/auth and the credentials secret, so the
// secret can be decoded straight into this type. Formatting and logging
// print neither value.
type Credentials struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

func (c Credentials) String() string {
	return "klavi.Credentials{AccessKey:" + mask(c.AccessKey) + " SecretKey:" + mask(c.SecretKey) + "}"
}

// Format prints String for every verb, so %#v and %d cannot leak the keys.
func (c Credentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("accessKey", mask(c.AccessKey)),
		slog.String("secretKey", mask(c.SecretKey)),
	)
}

// Token is an access token and its lifetime. ExpiresIn is zero when Klavi did
// not say (its examples always send 1800 seconds). Formatting and logging
// do not print the token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

func (t Token) String() string {
	return "klavi.Token{AccessToken:" + mask(t.AccessToken) + " ExpiresIn:" + t.ExpiresIn.String() + "}"
}

// Format prints String for every verb, so %#v and %d cannot leak the token.
func (t Token) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("accessToken", mask(t.AccessToken)),
		slog.Duration("expiresIn", t.ExpiresIn),
	)
}

// tokenResponse is the body of /auth and /refresh.
type tokenResponse struct {
	AccessToken string  `json:"accessToken"`
	ExpireIn    seconds `json:"expireIn"`
}

func decodeToken(out *Token) func([]byte) error {
	return func(b []byte) error {
		var resp tokenResponse
		if err := json.Unmarshal(b, &resp); err != nil {
			return err
		}
		if resp.AccessToken == "" {
			return &shapeError{msg: "no accessToken in body"}
		}
		*out = Token{AccessToken: resp.AccessToken, ExpiresIn: time.Duration(resp.ExpireIn)}
		return nil
	}
}

// Auth exchanges the key pair for an access token (POST /data/v1/auth). It
// sends no Authorization header and needs no TokenSource. It is retried like
// any idempotent call; a 401 (wrong keys) is returned as it is.
func (c *Client) Auth(ctx context.Context, cr Credentials) (Token, error) {
	const endpoint = "POST /data/v1/auth"
	if cr.AccessKey == "" || cr.SecretKey == "" {
		return Token{}, fmt.Errorf("klavi %s: %w: accessKey and secretKey are required", endpoint, ErrInvalidRequest)
	}
	body, err := marshalBody(endpoint, cr)
	if err != nil {
		return Token{}, err
	}
	var tok Token
	err = c.do(ctx, &request{
		endpoint:   endpoint,
		method:     "POST",
		path:       "/data/v1/auth",
		body:       body,
		auth:       authNone,
		idempotent: true,
		sensitive:  []string{cr.AccessKey, cr.SecretKey},
	}, decodeToken(&tok))
	if err != nil {
		return Token{}, err
	}
	return tok, nil
}

// Refresh exchanges a still-valid access token for a new one
// (GET /data/v1/refresh, Bearer accessToken). It uses the token given, not
// the TokenSource, and does not retry after a 401: Klavi does not say whether
// an expired token can be refreshed, so on ErrUnauthorized call Auth.
func (c *Client) Refresh(ctx context.Context, accessToken string) (Token, error) {
	const endpoint = "GET /data/v1/refresh"
	if accessToken == "" {
		return Token{}, fmt.Errorf("klavi %s: %w: access token is required", endpoint, ErrInvalidRequest)
	}
	var tok Token
	err := c.do(ctx, &request{
		endpoint:   endpoint,
		method:     "GET",
		path:       "/data/v1/refresh",
		auth:       authGiven,
		token:      accessToken,
		idempotent: true,
	}, decodeToken(&tok))
	if err != nil {
		return Token{}, err
	}
	return tok, nil
}
