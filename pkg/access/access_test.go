package access

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

func jwtRequest(claims map[string]string) httpapi.Request {
	var req httpapi.Request
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims},
	}
	return req
}

func iamRequest(arn string) httpapi.Request {
	var req httpapi.Request
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: arn, AccountID: "123456789012"},
	}
	return req
}

func TestIdentify(t *testing.T) {
	const iss = "https://cognito-idp.sa-east-1.amazonaws.com/pool"
	tests := []struct {
		name    string
		policy  Policy
		req     httpapi.Request
		want    Caller
		wantErr bool
	}{
		{name: "no authorizer", req: httpapi.Request{}, wantErr: true},
		{name: "lambda authorizer only", req: func() httpapi.Request {
			var r httpapi.Request
			r.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: map[string]any{"sub": "x"}}
			return r
		}(), wantErr: true},
		{name: "jwt sub", req: jwtRequest(map[string]string{"sub": "user-123", "iss": iss}), want: Caller{ID: "user-123"}},
		{name: "jwt without sub", req: jwtRequest(map[string]string{"iss": iss, "client_id": "app"}), wantErr: true},
		{name: "jwt with empty sub", req: jwtRequest(map[string]string{"sub": "", "iss": iss}), wantErr: true},
		{name: "jwt with blank sub", req: jwtRequest(map[string]string{"sub": "  ", "iss": iss}), wantErr: true},
		{name: "jwt without any claim", req: jwtRequest(nil), wantErr: true},
		{name: "client_id claim", policy: Policy{OwnerClaim: "client_id"},
			req: jwtRequest(map[string]string{"sub": "user-123", "client_id": "machine-1"}), want: Caller{ID: "machine-1"}},
		{name: "client_id claim missing, sub present", policy: Policy{OwnerClaim: "client_id"},
			req: jwtRequest(map[string]string{"sub": "user-123"}), wantErr: true},
		{name: "azp claim", policy: Policy{OwnerClaim: "azp"},
			req: jwtRequest(map[string]string{"azp": "backend-7"}), want: Caller{ID: "backend-7"}},
		{name: "admin scope, space separated", req: jwtRequest(map[string]string{"sub": "ops-1", "scope": "openid klavi-link/admin email"}),
			want: Caller{ID: "ops-1", Admin: true}},
		{name: "admin scope alone", req: jwtRequest(map[string]string{"sub": "ops-1", "scope": "klavi-link/admin"}),
			want: Caller{ID: "ops-1", Admin: true}},
		{name: "scp array as the authorizer passes it", req: jwtRequest(map[string]string{"sub": "ops-1", "scp": "[openid klavi-link/admin]"}),
			want: Caller{ID: "ops-1", Admin: true}},
		{name: "scp array as JSON", req: jwtRequest(map[string]string{"sub": "ops-1", "scp": `["openid","klavi-link/admin"]`}),
			want: Caller{ID: "ops-1", Admin: true}},
		{name: "scp single string", req: jwtRequest(map[string]string{"sub": "ops-1", "scp": "klavi-link/admin"}),
			want: Caller{ID: "ops-1", Admin: true}},
		{name: "scope prefix only is not the scope", req: jwtRequest(map[string]string{"sub": "u", "scope": "klavi-link/admin2 klavi-link/adm"}),
			want: Caller{ID: "u"}},
		{name: "other scopes", req: jwtRequest(map[string]string{"sub": "u", "scope": "openid klavi-link/read"}), want: Caller{ID: "u"}},
		{name: "admin scope in another claim", req: jwtRequest(map[string]string{"sub": "u", "cognito:groups": "[klavi-link/admin]"}),
			want: Caller{ID: "u"}},
		{name: "configured admin scope", policy: Policy{AdminScope: "backoffice"},
			req: jwtRequest(map[string]string{"sub": "u", "scope": "klavi-link/admin backoffice"}), want: Caller{ID: "u", Admin: true}},
		{name: "configured admin scope, default not accepted", policy: Policy{AdminScope: "backoffice"},
			req: jwtRequest(map[string]string{"sub": "u", "scope": "klavi-link/admin"}), want: Caller{ID: "u"}},
		{name: "admin scope without owner claim", req: jwtRequest(map[string]string{"scope": "klavi-link/admin"}), wantErr: true},
		{name: "iam user", req: iamRequest("arn:aws:iam::123456789012:user/backend"),
			want: Caller{ID: "arn:aws:iam::123456789012:user/backend", Admin: true}},
		{name: "iam user with path", req: iamRequest("arn:aws:iam::123456789012:user/ops/backend"),
			want: Caller{ID: "arn:aws:iam::123456789012:user/ops/backend", Admin: true}},
		{name: "assumed role session", req: iamRequest("arn:aws:sts::123456789012:assumed-role/backoffice/session-a"),
			want: Caller{ID: "arn:aws:iam::123456789012:role/backoffice", Admin: true}},
		{name: "another session of the same role", req: iamRequest("arn:aws:sts::123456789012:assumed-role/backoffice/i-0abc@example"),
			want: Caller{ID: "arn:aws:iam::123456789012:role/backoffice", Admin: true}},
		{name: "assumed role in another partition", req: iamRequest("arn:aws-us-gov:sts::123456789012:assumed-role/backoffice/s"),
			want: Caller{ID: "arn:aws-us-gov:iam::123456789012:role/backoffice", Admin: true}},
		{name: "assumed role without session", req: iamRequest("arn:aws:sts::123456789012:assumed-role/backoffice"), wantErr: true},
		{name: "assumed role without role", req: iamRequest("arn:aws:sts::123456789012:assumed-role//s"), wantErr: true},
		{name: "account root", req: iamRequest("arn:aws:iam::123456789012:root"),
			want: Caller{ID: "arn:aws:iam::123456789012:root", Admin: true}},
		{name: "iam without arn", req: iamRequest(""), wantErr: true},
		{name: "iam with something not an arn", req: iamRequest("backend"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.policy.Identify(tc.req)
			if tc.wantErr {
				if !errors.Is(err, ErrNoIdentity) {
					t.Fatalf("Identify() = %+v, %v; want ErrNoIdentity", got, err)
				}
				if got != (Caller{}) {
					t.Errorf("Identify() caller = %+v with an error, want the zero Caller", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Identify() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestIdentifyFromEventJSON reads the authorizer context from the JSON API
// Gateway sends, so that the field names are the wire's.
func TestIdentifyFromEventJSON(t *testing.T) {
	tests := map[string]struct {
		raw  string
		want Caller
	}{
		"iam session": {
			raw:  `{"requestContext":{"authorizer":{"iam":{"accountId":"123456789012","userArn":"arn:aws:sts::123456789012:assumed-role/ops/bob","userId":"AROAEXAMPLE:bob"}}}}`,
			want: Caller{ID: "arn:aws:iam::123456789012:role/ops", Admin: true},
		},
		"jwt scp": {
			raw:  `{"requestContext":{"authorizer":{"jwt":{"claims":{"sub":"u-1","scp":"[read klavi-link/admin]"},"scopes":null}}}}`,
			want: Caller{ID: "u-1", Admin: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var req httpapi.Request
			if err := json.Unmarshal([]byte(tc.raw), &req); err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, err := Policy{}.Identify(req)
			if err != nil || got != tc.want {
				t.Errorf("Identify() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMaySee(t *testing.T) {
	tests := []struct {
		name   string
		caller Caller
		owner  string
		want   bool
	}{
		{name: "owner", caller: Caller{ID: "u-1"}, owner: "u-1", want: true},
		{name: "another caller's link", caller: Caller{ID: "u-2"}, owner: "u-1", want: false},
		{name: "unowned link, ordinary caller", caller: Caller{ID: "u-1"}, owner: "", want: false},
		{name: "unowned link, back office", caller: Caller{ID: "ops", Admin: true}, owner: "", want: true},
		{name: "another caller's link, back office", caller: Caller{ID: "ops", Admin: true}, owner: "u-1", want: true},
		{name: "unidentified caller, unowned link", caller: Caller{}, owner: "", want: false},
		{name: "unidentified admin", caller: Caller{Admin: true}, owner: "", want: false},
		{name: "owner differs in case", caller: Caller{ID: "U-1"}, owner: "u-1", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.caller.MaySee(tc.owner); got != tc.want {
				t.Errorf("%+v.MaySee(%q) = %v, want %v", tc.caller, tc.owner, got, tc.want)
			}
		})
	}
}

func TestNewPolicy(t *testing.T) {
	for _, claim := range []string{"", "sub", "client_id", "azp", " azp "} {
		if _, err := NewPolicy(claim, ""); err != nil {
			t.Errorf("NewPolicy(%q) = %v, want no error", claim, err)
		}
	}
	for _, claim := range []string{"email", "Sub", "username", "cognito:username"} {
		if _, err := NewPolicy(claim, ""); err == nil {
			t.Errorf("NewPolicy(%q) succeeded, want an error", claim)
		}
	}
	if _, err := NewPolicy("", "two scopes"); err == nil {
		t.Errorf("NewPolicy(admin scope with a space) succeeded, want an error")
	}
	p, err := NewPolicy("client_id", "ops/admin")
	if err != nil || p.OwnerClaim != "client_id" || p.AdminScope != "ops/admin" {
		t.Errorf("NewPolicy(client_id, ops/admin) = %+v, %v", p, err)
	}
}
