package reports

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
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
// deduplicated by the automatic request's claim, and leave the consents'
// automatic requests untouched. Each is bounded by its own claim instead:
// the same consent and products asked again within Config.ManualCooldown
// gets an error matching ErrTooSoon and Klavi is not called. The claim is
// one conditional write in the store, so concurrent requests in any
// instance make one Klavi call. A request Klavi certainly did not act on (it
// answered 4xx or 429, or none was sent) releases its claim; one it may
// have acted on (5xx, timeout, lost connection) keeps it, as a success does. Klavi is told to POST the reports to the URL the link was
// created with, else Config.ReportWebhookURL, else fallbackWebhookURL.
//
// It returns one ConsentRequest per consent asked for. Its error, with no
// requests, matches ErrLinkPurged, ErrNoAuthorisedConsent,
// ErrUnknownTaxIDType, or ErrDeadlineNear when too little of the
// invocation is left to call Klavi for the next consent (the requests
// already made are then returned with it).
func (h *Service) RequestForLink(ctx context.Context, link *linkstore.Link, products []string, fallbackWebhookURL string) ([]ConsentRequest, error) {
	if !link.PurgedAt.IsZero() || link.Erasing() {
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
		institution := c.InstitutionCode
		if institution == "" {
			institution = link.InstitutionCode
		}
		now := h.now()
		if err := h.store.ClaimManualRequest(ctx, link.LinkID, c.ConsentID, products, h.cooldown, now); err != nil {
			if errors.Is(err, linkstore.ErrPurged) || errors.Is(err, linkstore.ErrNotFound) {
				return out, fmt.Errorf("request reports for link %s: %w: %w", link.LinkID, ErrLinkPurged, err)
			}
			err = claimFailure(err)
			if ReasonOf(err) == ReasonTooSoon {
				h.skipped(ctx, link.LinkID, c.ConsentID, linkstore.TriggerManual, ReasonTooSoon)
			} else {
				h.countFailure(err)
				h.log.ErrorContext(ctx, "manual report request: claim", "linkId", link.LinkID, "consentId", c.ConsentID, "error", err)
			}
			out = append(out, ConsentRequest{
				ConsentID: c.ConsentID, InstitutionCode: institution, Products: slices.Clone(products), Err: err,
			})
			continue
		}
		requestID, err := h.send(ctx, budget, link, c, products, webhook, linkstore.TriggerManual)
		if requestID == "" && klaviDidNotAct(err) {
			// Nothing was billed, so the caller may ask again at once.
			if rerr := h.store.ReleaseManualRequest(ctx, link.LinkID, c.ConsentID, products, now.Add(h.cooldown)); rerr != nil {
				h.log.WarnContext(ctx, "manual report request: release cool-down", "linkId", link.LinkID, "consentId", c.ConsentID, "error", rerr)
			}
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

// claimFailure classifies a failed ClaimManualRequest other than a purge.
func claimFailure(err error) error {
	if errors.Is(err, linkstore.ErrCoolingDown) {
		return &failure{reason: ReasonTooSoon, err: fmt.Errorf("%w: %w", ErrTooSoon, err)}
	}
	return temporary(ReasonStoreUnavailable, fmt.Errorf("claim manual request: %w", err))
}

// klaviDidNotAct reports whether a failed request was certainly not acted
// on by Klavi: refused before the call, or answered with a 4xx or 429.
func klaviDidNotAct(err error) bool {
	return err != nil && (errors.Is(err, ErrPermanent) || ReasonOf(err) == ReasonRateLimited)
}
