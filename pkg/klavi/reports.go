package klavi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
)

// TaxIDKind selects the personal (CPF) or business (CNPJ) report endpoints.
type TaxIDKind string

const (
	Personal TaxIDKind = "personal"
	Business TaxIDKind = "business"
)

func (k TaxIDKind) valid() bool { return k == Personal || k == Business }

// InstitutionDataRequest is the body of
// POST /data/v1/{personal|business}/institution-data. TaxID is the CPF for
// Personal and the CNPJ for Business; InstitutionCode and at least one
// product (or "all") are required. LinkID and ConsentIDs narrow the data to
// one link or to some consents. Formatting and logging hide the tax id and
// externalInfo.
type InstitutionDataRequest struct {
	TaxID               string            `json:"taxId"`
	InstitutionCode     string            `json:"institutionCode"`
	LinkID              string            `json:"linkId,omitempty"`
	ConsentIDs          []string          `json:"consentIds,omitempty"`
	Products            []string          `json:"products"`
	ProductsCallbackURL map[string]string `json:"productsCallbackURL,omitempty"`
	ExternalInfo        json.RawMessage   `json:"externalInfo,omitempty"`
}

func (r InstitutionDataRequest) String() string {
	return fmt.Sprintf("klavi.InstitutionDataRequest{TaxID:%s InstitutionCode:%q LinkID:%q ConsentIDs:%q Products:%q ProductsCallbackURL:%d ExternalInfo:%s}",
		mask(r.TaxID), r.InstitutionCode, r.LinkID, r.ConsentIDs, r.Products, len(r.ProductsCallbackURL), maskRaw(r.ExternalInfo))
}

// Format prints String for every verb.
func (r InstitutionDataRequest) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

func (r InstitutionDataRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("taxId", mask(r.TaxID)),
		slog.String("institutionCode", r.InstitutionCode),
		slog.String("linkId", r.LinkID),
		slog.Any("consentIds", r.ConsentIDs),
		slog.Any("products", r.Products),
	)
}

// UserDataRequest is the body of POST /data/v1/{personal|business}/user-data:
// InstitutionDataRequest without InstitutionCode, aggregating every
// institution the tax id consented to.
type UserDataRequest struct {
	TaxID               string            `json:"taxId"`
	LinkID              string            `json:"linkId,omitempty"`
	ConsentIDs          []string          `json:"consentIds,omitempty"`
	Products            []string          `json:"products"`
	ProductsCallbackURL map[string]string `json:"productsCallbackURL,omitempty"`
	ExternalInfo        json.RawMessage   `json:"externalInfo,omitempty"`
}

func (r UserDataRequest) String() string {
	return fmt.Sprintf("klavi.UserDataRequest{TaxID:%s LinkID:%q ConsentIDs:%q Products:%q ProductsCallbackURL:%d ExternalInfo:%s}",
		mask(r.TaxID), r.LinkID, r.ConsentIDs, r.Products, len(r.ProductsCallbackURL), maskRaw(r.ExternalInfo))
}

// Format prints String for every verb.
func (r UserDataRequest) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

func (r UserDataRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("taxId", mask(r.TaxID)),
		slog.String("linkId", r.LinkID),
		slog.Any("consentIds", r.ConsentIDs),
		slog.Any("products", r.Products),
	)
}

// ReportRequestAccepted is Klavi's acknowledgement of a report request. The
// reports arrive later by webhook, each carrying RequestID.
type ReportRequestAccepted struct {
	RequestID string `json:"requestId"`
	Message   string `json:"message"`
}

// RequestInstitutionData asks for institution-level reports
// (POST /data/v1/{personal|business}/institution-data). Only call it once a
// consent is AUTHORISED. A repeated request would produce a second
// requestId, so it is retried only when Klavi cannot have acted on it. A 2xx
// is accepted even without a requestId (RequestID is then empty): the
// request did take effect, and reporting a failure would invite a duplicate.
func (c *Client) RequestInstitutionData(ctx context.Context, kind TaxIDKind, r InstitutionDataRequest) (*ReportRequestAccepted, error) {
	endpoint := "POST /data/v1/" + string(kind) + "/institution-data"
	if !kind.valid() {
		return nil, fmt.Errorf("klavi POST /data/v1/{kind}/institution-data: %w: tax id kind must be personal or business", ErrInvalidRequest)
	}
	if r.InstitutionCode == "" {
		return nil, fmt.Errorf("klavi %s: %w: institutionCode is required", endpoint, ErrInvalidRequest)
	}
	return c.requestReports(ctx, endpoint, r.TaxID, r.Products, r.ExternalInfo, r)
}

// RequestUserData asks for user-level reports
// (POST /data/v1/{personal|business}/user-data). Retries and the handling of
// the answer are as for RequestInstitutionData.
func (c *Client) RequestUserData(ctx context.Context, kind TaxIDKind, r UserDataRequest) (*ReportRequestAccepted, error) {
	endpoint := "POST /data/v1/" + string(kind) + "/user-data"
	if !kind.valid() {
		return nil, fmt.Errorf("klavi POST /data/v1/{kind}/user-data: %w: tax id kind must be personal or business", ErrInvalidRequest)
	}
	return c.requestReports(ctx, endpoint, r.TaxID, r.Products, r.ExternalInfo, r)
}

func (c *Client) requestReports(ctx context.Context, endpoint, taxID string, products []string, externalInfo json.RawMessage, payload any) (*ReportRequestAccepted, error) {
	if taxID == "" {
		return nil, fmt.Errorf("klavi %s: %w: taxId is required", endpoint, ErrInvalidRequest)
	}
	if len(products) == 0 {
		return nil, fmt.Errorf("klavi %s: %w: at least one product (or \"all\") is required", endpoint, ErrInvalidRequest)
	}
	if err := validRawObject(endpoint, "externalInfo", externalInfo); err != nil {
		return nil, err
	}
	body, err := marshalBody(endpoint, payload)
	if err != nil {
		return nil, err
	}
	var resp ReportRequestAccepted
	err = c.do(ctx, &request{
		endpoint:  endpoint,
		method:    "POST",
		path:      endpoint[len("POST "):],
		body:      body,
		auth:      authSource,
		sensitive: []string{taxID},
	}, decodeInto(&resp))
	if err != nil {
		return nil, err
	}
	return &resp, nil
}
