// Package access is the one home of the rule of who may see a link: who the
// caller of the HTTP API is, as its authorizer established it, and whether
// that caller may read and act on a link with a given owner.
//
//   - A JWT caller is named by the claim Policy.OwnerClaim (JWT_OWNER_CLAIM:
//     "sub" by default, "client_id" or "azp" for machine clients). A token
//     without that claim has no usable identity.
//   - An IAM caller is named by its ARN, an assumed-role session normalised
//     to its role: arn:aws:sts::ACCT:assumed-role/ROLE/SESSION becomes
//     arn:aws:iam::ACCT:role/ROLE. The session name is chosen by whoever
//     assumes the role, so it names nobody; every session of a role is the
//     same caller. The session ARN does not carry the role's path, so a role
//     created under a path (role/ops/ROLE) is named without it: that is not
//     the role's real ARN, but role names are unique in an account, so it
//     still names exactly one role.
//   - The back office may read and act on every link, including links first
//     seen in Klavi's events, which have no owner: IAM callers, and JWT
//     callers whose "scope" claim (space-separated) or "scp" claim (an
//     array) carries Policy.AdminScope (JWT_ADMIN_SCOPE, default
//     "klavi-link/admin").
//   - Anyone else may see only the links they own.
//
// A request with no usable identity (no authorizer, an empty claim, an IAM
// ARN that cannot be read) fails with ErrNoIdentity: the HTTP API answers
// 401 and never reads a link for it.
package access

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
)

// Defaults of Policy's fields.
const (
	DefaultOwnerClaim = "sub"
	DefaultAdminScope = "klavi-link/admin"
)

// OwnerClaims are the JWT claims that may name a link's owner. Others are
// refused: a claim such as email would store personal data as the owner,
// and one the token's holder can choose would let callers share links.
var OwnerClaims = []string{"sub", "client_id", "azp"}

// ErrNoIdentity: the request carries no identity a link can belong to.
var ErrNoIdentity = errors.New("access: no usable caller identity")

// Policy is how callers are identified; the zero value uses the defaults.
type Policy struct {
	// OwnerClaim is the JWT claim naming the caller, one of OwnerClaims;
	// default DefaultOwnerClaim.
	OwnerClaim string
	// AdminScope is the scope of back-office JWT callers; default
	// DefaultAdminScope.
	AdminScope string
}

// NewPolicy returns the policy for the JWT_OWNER_CLAIM and JWT_ADMIN_SCOPE
// values given ("" for the defaults); an owner claim outside OwnerClaims or
// an admin scope with spaces is an error.
func NewPolicy(ownerClaim, adminScope string) (Policy, error) {
	p := Policy{OwnerClaim: strings.TrimSpace(ownerClaim), AdminScope: strings.TrimSpace(adminScope)}
	var errs []error
	if p.OwnerClaim != "" && !validOwnerClaim(p.OwnerClaim) {
		errs = append(errs, fmt.Errorf("owner claim %q: must be one of %s", p.OwnerClaim, strings.Join(OwnerClaims, ", ")))
	}
	if strings.ContainsAny(p.AdminScope, " \t\n\r\"[]") {
		errs = append(errs, fmt.Errorf("admin scope %q: must be one scope, without spaces, quotes or brackets", p.AdminScope))
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func validOwnerClaim(c string) bool {
	for _, o := range OwnerClaims {
		if c == o {
			return true
		}
	}
	return false
}

// Caller is who made a request.
type Caller struct {
	// ID names the caller as links store their owner: the value of the
	// JWT owner claim, or the IAM caller's ARN (a role for an assumed-role
	// session). Never empty for an identified caller.
	ID string
	// Admin: the caller is the back office and may see every link.
	Admin bool
}

// Identify returns the caller of req, or ErrNoIdentity.
func (p Policy) Identify(req httpapi.Request) (Caller, error) {
	a := req.RequestContext.Authorizer
	switch {
	case a == nil:
		return Caller{}, ErrNoIdentity
	case a.JWT != nil:
		id := a.JWT.Claims[p.ownerClaim()]
		if strings.TrimSpace(id) == "" {
			return Caller{}, fmt.Errorf("jwt without claim %s: %w", p.ownerClaim(), ErrNoIdentity)
		}
		return Caller{ID: id, Admin: p.hasAdminScope(a.JWT.Claims)}, nil
	case a.IAM != nil:
		id := principal(a.IAM.UserARN)
		if id == "" {
			return Caller{}, fmt.Errorf("iam caller without a usable arn: %w", ErrNoIdentity)
		}
		// IAM is how the fintech's own systems call: the back office.
		return Caller{ID: id, Admin: true}, nil
	default:
		// A Lambda authorizer's context names nobody we can rely on.
		return Caller{}, ErrNoIdentity
	}
}

// MaySee reports whether the caller may read and act on a link owned by
// owner ("" for a link without an owner).
func (c Caller) MaySee(owner string) bool {
	if c.ID == "" {
		return false
	}
	return c.Admin || owner == c.ID
}

func (p Policy) ownerClaim() string {
	if p.OwnerClaim == "" {
		return DefaultOwnerClaim
	}
	return p.OwnerClaim
}

func (p Policy) adminScope() string {
	if p.AdminScope == "" {
		return DefaultAdminScope
	}
	return p.AdminScope
}

// hasAdminScope looks for the admin scope in the "scope" claim (RFC 8693
// and Cognito: one space-separated string) and the "scp" claim (Okta and
// Entra ID: an array, which the HTTP API's JWT authorizer hands over as
// "[a b]"; a JSON array or a plain string are read too).
func (p Policy) hasAdminScope(claims map[string]string) bool {
	want := p.adminScope()
	for _, name := range []string{"scope", "scp"} {
		for _, s := range scopes(claims[name]) {
			if s == want {
				return true
			}
		}
	}
	return false
}

// scopes splits a scope claim as the authorizer passed it on.
func scopes(v string) []string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		var list []string
		if json.Unmarshal([]byte(v), &list) == nil {
			return list
		}
		v = v[1 : len(v)-1]
	}
	return strings.Fields(v)
}

// principal returns the identity of an IAM caller's ARN: the role of an
// assumed-role session, any other ARN (an IAM user, the account root, a
// federated user) as it is, "" for what is not an ARN.
func principal(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[5] == "" {
		return ""
	}
	partition, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	rest, ok := strings.CutPrefix(resource, "assumed-role/")
	if service != "sts" || !ok {
		return arn
	}
	role, session, ok := strings.Cut(rest, "/")
	if !ok || role == "" || session == "" || account == "" {
		return ""
	}
	return "arn:" + partition + ":iam::" + account + ":role/" + role
}
