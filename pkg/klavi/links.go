package klavi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// CreateLinkRequest is the body of POST /data/v1/links. Every field is
// optional. Tax ids go unmasked (digits only for CPF). Formatting and
// logging hide the tax ids, email, phone and externalInfo.
type CreateLinkRequest struct {
	PersonalTaxID   string `json:"personalTaxId,omitempty"`
	BusinessTaxID   string `json:"businessTaxId,omitempty"`
	Email           string `json:"email,omitempty"`
	Phone           string `json:"phone,omitempty"`
	InstitutionCode string `json:"institutionCode,omitempty"`
	RedirectURL     string `json:"redirectURL,omitempty"`
	// ProductsCallbackURL maps product names, "other" or "all" to the URL
	// that receives those reports.
	ProductsCallbackURL map[string]string `json:"productsCallbackURL,omitempty"`
	// ExternalInfo is partner JSON (an object) echoed in events and reports.
	ExternalInfo      json.RawMessage `json:"externalInfo,omitempty"`
	ConnectionKey     string          `json:"connectionKey,omitempty"`
	AppLink           string          `json:"appLink,omitempty"`
	AppRedirectURLKey string          `json:"appRedirectURLKey,omitempty"`
}

func (r CreateLinkRequest) String() string {
	return fmt.Sprintf("klavi.CreateLinkRequest{PersonalTaxID:%s BusinessTaxID:%s Email:%s Phone:%s InstitutionCode:%q RedirectURL:%q ProductsCallbackURL:%d ExternalInfo:%s}",
		mask(r.PersonalTaxID), mask(r.BusinessTaxID), mask(r.Email), mask(r.Phone),
		r.InstitutionCode, stripQuery(r.RedirectURL), len(r.ProductsCallbackURL), maskRaw(r.ExternalInfo))
}

// Format prints String for every verb.
func (r CreateLinkRequest) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

func (r CreateLinkRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("personalTaxId", mask(r.PersonalTaxID)),
		slog.String("businessTaxId", mask(r.BusinessTaxID)),
		slog.String("institutionCode", r.InstitutionCode),
		slog.String("redirectURL", stripQuery(r.RedirectURL)),
	)
}

// Link is a created link. ExpiresIn comes from Klavi's "expireIn" (zero when
// absent) and is the lifetime of the link, its URL and its token. Formatting and logging hide
// the link token, which also travels in the query of LinkURL.
type Link struct {
	LinkID    string
	LinkURL   string
	LinkToken string
	ExpiresIn time.Duration
}

func (l Link) String() string {
	return fmt.Sprintf("klavi.Link{LinkID:%q LinkURL:%q LinkToken:%s ExpiresIn:%s}",
		l.LinkID, stripQuery(l.LinkURL), mask(l.LinkToken), l.ExpiresIn)
}

// Format prints String for every verb.
func (l Link) Format(f fmt.State, _ rune) { fmt.Fprint(f, l.String()) }

func (l Link) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("linkId", l.LinkID),
		slog.String("linkURL", stripQuery(l.LinkURL)),
		slog.Duration("expiresIn", l.ExpiresIn),
	)
}

type linkResponse struct {
	LinkID    string  `json:"linkId"`
	LinkURL   string  `json:"linkURL"`
	LinkToken string  `json:"linkToken"`
	ExpireIn  seconds `json:"expireIn"`
}

// CreateLink creates a link (POST /data/v1/links). A repeated request would
// create a second link, so this call is retried only when Klavi cannot have
// acted on it (see the package documentation). A 2xx without a linkId is
// reported as ErrMalformedResponse.
func (c *Client) CreateLink(ctx context.Context, r CreateLinkRequest) (*Link, error) {
	const endpoint = "POST /data/v1/links"
	if err := validRawObject(endpoint, "externalInfo", r.ExternalInfo); err != nil {
		return nil, err
	}
	body, err := marshalBody(endpoint, r)
	if err != nil {
		return nil, err
	}
	var resp linkResponse
	err = c.do(ctx, &request{
		endpoint:  endpoint,
		method:    "POST",
		path:      "/data/v1/links",
		body:      body,
		auth:      authSource,
		sensitive: []string{r.PersonalTaxID, r.BusinessTaxID, r.Email, r.Phone},
	}, func(b []byte) error {
		if err := json.Unmarshal(b, &resp); err != nil {
			return err
		}
		if resp.LinkID == "" {
			return &shapeError{msg: "no linkId in body"}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Link{
		LinkID:    resp.LinkID,
		LinkURL:   resp.LinkURL,
		LinkToken: resp.LinkToken,
		ExpiresIn: time.Duration(resp.ExpireIn),
	}, nil
}

// validRawObject checks optional partner JSON before it is embedded in a
// body, so that a bad value fails here with a clear error and not inside
// json.Marshal. Klavi documents these fields as objects.
func validRawObject(endpoint, field string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return fmt.Errorf("klavi %s: %w: %s must be a JSON object", endpoint, ErrInvalidRequest, field)
	}
	return nil
}
