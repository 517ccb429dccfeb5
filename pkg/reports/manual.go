package reports

import (
	"context"
	"errors"
	"fmt"
	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"slices"

	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// Errors of RequestForLink that concern the whole link rather than one of
// its consents.
var (
	// ErrLinkPurged: the link's data was deleted, or the fintech asked for
	// its deletion; no reports can be requested for it again.
	ErrLinkPurged = errors.New("reports: link purged")
	// ErrNoAuthorisedConsent: no consent of the link is AUTHORISED.
	ErrNoAuthorisedConsent = errors.New("reports: no authorised consent")
)

// ConsentRequest is the outcome of a manual request for one consent.
type ConsentRequest struct {
	ConsentID       string
	InstitutionCode string
	Products        []string
	// RequestID is Klavi's id of the request; "" when Klavi did not take
	// it.
	RequestID string
	// Err is why Klavi did not take the request, or, with a RequestID, why
	// recording the request Klavi took failed. ReasonOf tells its reason.
	Err error
}

// RequestForLink makes a manual report request (trigger "manual") for each
// AUTHORISED consent of link, with products, or the configured ones when
// products is empty. These are explicit user actions: they are not
// deduplicated by the claim, and leave the consents' automatic requests
// untouched. Klavi is told to POST the reports to the URL the link was
// created with, else Config.ReportWebhookURL, else fallbackWebhookURL.
//
// It returns one ConsentRequest per consent asked for. Its error, with no
// requests, matches ErrLinkPurged, ErrNoAuthorisedConsent,
// ErrUnknownTaxIDType, or ErrDeadlineNear when too little of the
// invocation is left to call Klavi for the next consent (the requests
// already made are then returned with it).
func (h *Service) RequestForLink(ctx context.Context, link *linkstore.Link, products []string, fallbackWebhookURL string) ([]ConsentRequest, error) {
	if !link.PurgedAt.IsZero() || link.DeletionRequested() {
		return nil, fmt.Errorf("request reports for link %s: %w", link.LinkID, ErrLinkPurged)
	}
	if len(products) == 0 {
		products = h.products
	}
	var consents []linkstore.Consent
	for _, c := range link.Consents {
		if isStatus(c.Status, klavi.ConsentAuthorised) {
			consents = append(consents, c)
		}
	}
	if len(consents) == 0 {
		return nil, fmt.Errorf("request reports for link %s: %w", link.LinkID, ErrNoAuthorisedConsent)
	}
	if _, err := taxIDKind(link); err != nil {
		h.log.WarnContext(ctx, "manual report request: link has no tax id", "linkId", link.LinkID)
		h.countFailure(err)
		return nil, fmt.Errorf("request reports for link %s: %w", link.LinkID, err)
	}

	webhook := h.webhookURL(link, fallbackWebhookURL)
	out := make([]ConsentRequest, 0, len(consents))
	for _, c := range consents {
		// Manual requests are bounded by the invocation's deadline too, so
		// that an accepted request is recorded before the function ends.
		budget, err := h.CallBudget(ctx)
		if err != nil {
			h.log.WarnContext(ctx, "manual report request: out of time", "linkId", link.LinkID, "consentId", c.ConsentID, "error", err)
			return out, fmt.Errorf("request reports for consent %s of link %s: %w", c.ConsentID, link.LinkID, err)
		}
		requestID, err := h.send(ctx, budget, link, c, products, webhook, linkstore.TriggerManual)
		institution := c.InstitutionCode
		if institution == "" {
			institution = link.InstitutionCode
		}
		switch {
		case requestID != "" && err != nil:
			// Klavi took the request; only our record of it failed.
			h.log.ErrorContext(ctx, "manual report request made but not recorded",
				"linkId", link.LinkID, "consentId", c.ConsentID, "reportRequestId", requestID, "error", err)
		case err != nil:
			h.countFailure(err)
			h.log.ErrorContext(ctx, "manual report request failed",
				"linkId", link.LinkID, "consentId", c.ConsentID, "reason", ReasonOf(err), "error", err)
		}
		out = append(out, ConsentRequest{
			ConsentID: c.ConsentID, InstitutionCode: institution, Products: slices.Clone(products),
			RequestID: requestID, Err: err,
		})
	}
	return out, nil
}
