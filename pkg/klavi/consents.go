package klavi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Consent is one Open Finance consent as Klavi reports it. Unused tax id
// fields are "". Status is upper-cased on decoding; timestamps that are
// missing or do not parse are zero. Formatting and logging hide the tax ids.
type Consent struct {
	ConsentID          string        `json:"consentId"`
	LinkID             string        `json:"linkId"`
	ExternalTrackID    string        `json:"externalTrackId"`
	PersonalTaxID      string        `json:"personalTaxId"`
	BusinessTaxID      string        `json:"businessTaxId"`
	InstitutionCode    string        `json:"institutionCode"`
	Status             ConsentStatus `json:"status"`
	PermissionsApply   []string      `json:"permissionsApply"`
	PermissionsGranted []string      `json:"permissionsGranted"`
	ExpireAt           time.Time     `json:"expireAt"`
	CreatedAt          time.Time     `json:"createdAt"`
	UpdatedAt          time.Time     `json:"updatedAt"`
}

// UnmarshalJSON decodes leniently: see the type's documentation.
func (c *Consent) UnmarshalJSON(b []byte) error {
	var w struct {
		ConsentID          string      `json:"consentId"`
		LinkID             string      `json:"linkId"`
		ExternalTrackID    string      `json:"externalTrackId"`
		PersonalTaxID      string      `json:"personalTaxId"`
		BusinessTaxID      string      `json:"businessTaxId"`
		InstitutionCode    string      `json:"institutionCode"`
		Status             string      `json:"status"`
		PermissionsApply   []string    `json:"permissionsApply"`
		PermissionsGranted []string    `json:"permissionsGranted"`
		ExpireAt           lenientTime `json:"expireAt"`
		CreatedAt          lenientTime `json:"createdAt"`
		UpdatedAt          lenientTime `json:"updatedAt"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Consent{
		ConsentID:          w.ConsentID,
		LinkID:             w.LinkID,
		ExternalTrackID:    w.ExternalTrackID,
		PersonalTaxID:      w.PersonalTaxID,
		BusinessTaxID:      w.BusinessTaxID,
		InstitutionCode:    w.InstitutionCode,
		Status:             ParseConsentStatus(w.Status),
		PermissionsApply:   w.PermissionsApply,
		PermissionsGranted: w.PermissionsGranted,
		ExpireAt:           time.Time(w.ExpireAt),
		CreatedAt:          time.Time(w.CreatedAt),
		UpdatedAt:          time.Time(w.UpdatedAt),
	}
	return nil
}

func (c Consent) String() string {
	return fmt.Sprintf("klavi.Consent{ConsentID:%q LinkID:%q ExternalTrackID:%q PersonalTaxID:%s BusinessTaxID:%s InstitutionCode:%q Status:%q PermissionsGranted:%q ExpireAt:%s UpdatedAt:%s}",
		c.ConsentID, c.LinkID, c.ExternalTrackID, mask(c.PersonalTaxID), mask(c.BusinessTaxID),
		c.InstitutionCode, c.Status, c.PermissionsGranted,
		c.ExpireAt.Format(time.RFC3339), c.UpdatedAt.Format(time.RFC3339))
}

// Format prints String for every verb.
func (c Consent) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

func (c Consent) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("consentId", c.ConsentID),
		slog.String("linkId", c.LinkID),
		slog.String("institutionCode", c.InstitutionCode),
		slog.String("status", string(c.Status)),
		slog.Time("updatedAt", c.UpdatedAt),
	)
}

// lenientTime accepts RFC 3339 with or without a zone (UTC assumed), Unix
// seconds or milliseconds, and gives zero for null, "" or anything else.
type lenientTime time.Time

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func (t *lenientTime) UnmarshalJSON(b []byte) error {
	*t = lenientTime{}
	var s string
	if json.Unmarshal(b, &s) != nil {
		var n json.Number
		if json.Unmarshal(b, &n) != nil {
			return nil
		}
		s = string(n)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		// Unix time. 1e11 seconds is the year 5138, so anything larger is
		// milliseconds.
		if n > 1e11 || n < -1e11 {
			*t = lenientTime(time.UnixMilli(n).UTC())
		} else {
			*t = lenientTime(time.Unix(n, 0).UTC())
		}
		return nil
	}
	for _, layout := range timeLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			*t = lenientTime(v)
			return nil
		}
	}
	return nil
}

// ConsentFilter selects the consents of one tax id: exactly one of
// PersonalTaxID (CPF) and BusinessTaxID (CNPJ), optionally narrowed to a
// link. Formatting and logging hide the tax ids.
type ConsentFilter struct {
	PersonalTaxID string
	BusinessTaxID string
	LinkID        string
}

func (f ConsentFilter) String() string {
	return "klavi.ConsentFilter{PersonalTaxID:" + mask(f.PersonalTaxID) +
		" BusinessTaxID:" + mask(f.BusinessTaxID) + " LinkID:" + strconv.Quote(f.LinkID) + "}"
}

// Format prints String for every verb.
func (f ConsentFilter) Format(s fmt.State, _ rune) { fmt.Fprint(s, f.String()) }

func (f ConsentFilter) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("personalTaxId", mask(f.PersonalTaxID)),
		slog.String("businessTaxId", mask(f.BusinessTaxID)),
		slog.String("linkId", f.LinkID),
	)
}

// ListConsents lists the consents of a tax id
// (GET /data/v1/consents?personalTaxId=...|businessTaxId=...[&linkId=...]).
// The answer may be a bare array or wrapped in {"consents": [...]} or
// {"data": [...]}; all three are accepted. The tax id travels in the query
// string, so no error from this call carries the URL.
func (c *Client) ListConsents(ctx context.Context, f ConsentFilter) ([]Consent, error) {
	const endpoint = "GET /data/v1/consents"
	q := url.Values{}
	switch {
	case f.PersonalTaxID != "" && f.BusinessTaxID != "":
		return nil, fmt.Errorf("klavi %s: %w: set only one of personalTaxId and businessTaxId", endpoint, ErrInvalidRequest)
	case f.PersonalTaxID != "":
		q.Set("personalTaxId", f.PersonalTaxID)
	case f.BusinessTaxID != "":
		q.Set("businessTaxId", f.BusinessTaxID)
	default:
		return nil, fmt.Errorf("klavi %s: %w: personalTaxId or businessTaxId is required", endpoint, ErrInvalidRequest)
	}
	if f.LinkID != "" {
		q.Set("linkId", f.LinkID)
	}
	var consents []Consent
	err := c.do(ctx, &request{
		endpoint:   endpoint,
		method:     "GET",
		path:       "/data/v1/consents",
		query:      q,
		auth:       authSource,
		idempotent: true,
		sensitive:  []string{f.PersonalTaxID, f.BusinessTaxID},
	}, func(b []byte) error { return decodeConsentList(b, &consents) })
	if err != nil {
		return nil, err
	}
	return consents, nil
}

// decodeConsentList accepts a bare array, null, or an object holding the
// array under "consents" or "data".
func decodeConsentList(b []byte, out *[]Consent) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return &shapeError{msg: "empty body"}
	}
	switch b[0] {
	case '[':
		if err := json.Unmarshal(b, out); err != nil {
			return err
		}
	case 'n':
		if !bytes.Equal(b, []byte("null")) {
			return &shapeError{msg: "invalid JSON"}
		}
	case '{':
		var w struct {
			Consents json.RawMessage `json:"consents"`
			Data     json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return err
		}
		inner := w.Consents
		if len(inner) == 0 {
			inner = w.Data
		}
		inner = bytes.TrimSpace(inner)
		if len(inner) == 0 || (inner[0] != '[' && !bytes.Equal(inner, []byte("null"))) {
			return &shapeError{msg: "no consent list in body"}
		}
		return decodeConsentList(inner, out)
	default:
		return &shapeError{msg: "body is not a consent list"}
	}
	if *out == nil {
		*out = []Consent{}
	}
	return nil
}

// consentPath returns the escaped path of one consent, refusing ids that
// would change the path's meaning.
func consentPath(endpoint, consentID, suffix string) (string, error) {
	if consentID == "" || consentID == "." || consentID == ".." || len(consentID) > 256 {
		return "", fmt.Errorf("klavi %s: %w: invalid consent id", endpoint, ErrInvalidRequest)
	}
	return "/data/v1/consents/" + url.PathEscape(consentID) + suffix, nil
}

// GetConsent returns one consent (GET /data/v1/consents/{consentId}). The
// consent may come bare or wrapped in {"consent": {...}} or {"data": {...}}.
func (c *Client) GetConsent(ctx context.Context, consentID string) (*Consent, error) {
	const endpoint = "GET /data/v1/consents/{consentId}"
	path, err := consentPath(endpoint, consentID, "")
	if err != nil {
		return nil, err
	}
	var consent Consent
	err = c.do(ctx, &request{
		endpoint:   endpoint,
		method:     "GET",
		path:       path,
		auth:       authSource,
		idempotent: true,
	}, func(b []byte) error { return decodeConsent(b, &consent) })
	if err != nil {
		return nil, err
	}
	return &consent, nil
}

func decodeConsent(b []byte, out *Consent) error {
	var probe struct {
		ConsentID *string         `json:"consentId"`
		Consent   json.RawMessage `json:"consent"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	switch {
	case probe.ConsentID != nil:
	case isJSONObject(probe.Consent):
		b = probe.Consent
	case isJSONObject(probe.Data):
		b = probe.Data
	default:
		return &shapeError{msg: "no consent in body"}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return err
	}
	if out.ConsentID == "" {
		return &shapeError{msg: "no consentId in body"}
	}
	return nil
}

func isJSONObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

// RevokeConsent revokes a consent (DELETE /data/v1/consents/{consentId}/revoke).
// Revoking twice has no further effect, so the call is retried like a read.
func (c *Client) RevokeConsent(ctx context.Context, consentID string) error {
	const endpoint = "DELETE /data/v1/consents/{consentId}/revoke"
	path, err := consentPath(endpoint, consentID, "/revoke")
	if err != nil {
		return err
	}
	return c.do(ctx, &request{
		endpoint:   endpoint,
		method:     "DELETE",
		path:       path,
		auth:       authSource,
		idempotent: true,
	}, nil)
}
