package linkapi

import (
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/taxid"
)

// View is the JSON link view of GET /links/{linkId} (design section 3). It
// carries the tax id only masked.
type View struct {
	LinkID         string              `json:"linkId"`
	Status         string              `json:"status"`
	TaxIDType      string              `json:"taxIdType"`
	TaxIDMasked    string              `json:"taxIdMasked"`
	Consents       []ConsentView       `json:"consents"`
	ReportRequests []ReportRequestView `json:"reportRequests"`
	Reports        []ReportView        `json:"reports"`
	CreatedAt      time.Time           `json:"createdAt"`
	UpdatedAt      time.Time           `json:"updatedAt"`
}

// ConsentView is one consent of a link.
type ConsentView struct {
	ConsentID       string    `json:"consentId"`
	InstitutionCode string    `json:"institutionCode"`
	Status          string    `json:"status"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// ReportRequestView is one report request made for a link.
type ReportRequestView struct {
	RequestID       string    `json:"requestId"`
	InstitutionCode string    `json:"institutionCode"`
	Products        []string  `json:"products"`
	RequestedAt     time.Time `json:"requestedAt"`
}

// ReportView is one report stored for a link.
type ReportView struct {
	ProductName     string    `json:"productName"`
	ProductReportID string    `json:"productReportId"`
	RequestID       string    `json:"requestId"`
	ReceivedAt      time.Time `json:"receivedAt"`
	Bytes           int64     `json:"bytes"`
}

// NewView builds the view of l as of now. Lists are never null, so a
// frontend can iterate without checks.
func NewView(l *linkstore.Link, now time.Time) View {
	v := View{
		LinkID:         l.LinkID,
		Status:         l.Status(now),
		TaxIDType:      string(l.TaxIDType),
		TaxIDMasked:    maskTaxID(l.TaxID),
		Consents:       make([]ConsentView, 0, len(l.Consents)),
		ReportRequests: make([]ReportRequestView, 0, len(l.ReportRequests)),
		Reports:        make([]ReportView, 0, len(l.Reports)),
		CreatedAt:      l.CreatedAt.UTC(),
		UpdatedAt:      l.UpdatedAt.UTC(),
	}
	if v.TaxIDType == "" {
		v.TaxIDType = "unknown"
	}
	for _, c := range l.Consents {
		v.Consents = append(v.Consents, ConsentView{ConsentID: c.ConsentID, InstitutionCode: c.InstitutionCode, Status: string(c.Status), UpdatedAt: c.UpdatedAt.UTC()})
	}
	for _, r := range l.ReportRequests {
		products := r.Products
		if products == nil {
			products = []string{}
		}
		v.ReportRequests = append(v.ReportRequests, ReportRequestView{RequestID: r.RequestID, InstitutionCode: r.InstitutionCode, Products: products, RequestedAt: r.RequestedAt.UTC()})
	}
	for _, r := range l.Reports {
		v.Reports = append(v.Reports, ReportView{ProductName: r.ProductName, ProductReportID: r.ProductReportID, RequestID: r.RequestID, ReceivedAt: r.ReceivedAt.UTC(), Bytes: r.Bytes})
	}
	return v
}

// maskTaxID masks a stored bare tax id for display. A value that no longer
// parses (never expected) is hidden entirely rather than shown.
func maskTaxID(bare string) string {
	if bare == "" {
		return ""
	}
	id, err := taxid.Parse(bare)
	if err != nil {
		return "***"
	}
	return id.Masked()
}
