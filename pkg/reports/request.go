package reports

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
)

// unidentifiedPrefix starts the id recorded for a request Klavi accepted
// without telling its requestId.
const unidentifiedPrefix = "unidentified-"

// ErrDeadlineNear is matched by the error of RequestForConsent when too
// little of the invocation is left to call Klavi and record the outcome
// (Config.MinCallTime and RecordReserve): no call was made. It is
// temporary; the caller tries again in a later invocation.
var ErrDeadlineNear = errors.New("reports: too close to the deadline to call klavi")

// ReasonDeadlineNear counts ErrDeadlineNear in ReportRequestsFailed.
const ReasonDeadlineNear = "deadline_near"

// recordAttempts is how many times a transient store failure to record an
// accepted request is tried.
const recordAttempts = 3

// RequestForConsent makes the automatic report request of one consent,
// once: it claims the consent, reads the link, asks Klavi for the
// institution's reports on the personal or business endpoint and records
// the request with trigger (linkstore.TriggerStream or TriggerReconcile).
//
// It returns the new request id, or "" with a nil error when there is
// nothing to do: the request was made before, the consent is no longer
// AUTHORISED, the consent or its link is gone (purged), or the fintech
// asked for the link's deletion. It returns an error matching
// ErrInProgress while another caller holds the claim, one matching
// ErrPermanent when trying again cannot help (see the package
// documentation), and any other error when it can.
func (h *Service) RequestForConsent(ctx context.Context, linkID, consentID, trigger string) (string, error) {
	if trigger != linkstore.TriggerStream && trigger != linkstore.TriggerReconcile {
		err := permanent(ReasonInvalidTrigger, fmt.Errorf("request reports for consent %s of link %s: %w %q", consentID, linkID, ErrInvalidTrigger, trigger))
		h.countFailure(err)
		return "", err
	}
	// Checked before the claim, so that an invocation about to end takes
	// no lease and the consent stays free for the next attempt.
	if _, err := h.CallBudget(ctx); err != nil {
		err = temporary(ReasonDeadlineNear, fmt.Errorf("request reports for consent %s of link %s: %w", consentID, linkID, err))
		h.countFailure(err)
		return "", err
	}
	now := h.now()
	err := h.store.ClaimAutoRequest(ctx, linkID, consentID, h.lease, now)
	switch {
	case errors.Is(err, linkstore.ErrDuplicate):
		h.skipped(ctx, linkID, consentID, trigger, ReasonAlreadyRequested)
		return "", nil
	case errors.Is(err, linkstore.ErrNotAuthorised):
		h.skipped(ctx, linkID, consentID, trigger, ReasonNotAuthorised)
		return "", nil
	case errors.Is(err, linkstore.ErrNotFound):
		h.skipped(ctx, linkID, consentID, trigger, ReasonNotFound)
		return "", nil
	case errors.Is(err, linkstore.ErrLeaseHeld):
		h.skipped(ctx, linkID, consentID, trigger, ReasonInProgress)
		return "", fmt.Errorf("request reports for consent %s of link %s: %w: %w", consentID, linkID, ErrInProgress, err)
	case err != nil:
		err = temporary(ReasonStoreUnavailable, fmt.Errorf("request reports for consent %s of link %s: %w", consentID, linkID, err))
		h.countFailure(err)
		return "", err
	}

	link, err := h.store.GetLink(ctx, linkID)
	if errors.Is(err, linkstore.ErrNotFound) {
		h.skipped(ctx, linkID, consentID, trigger, ReasonNotFound)
		return "", nil
	}
	if err != nil {
		err = temporary(ReasonStoreUnavailable, fmt.Errorf("request reports for consent %s of link %s: %w", consentID, linkID, err))
		h.countFailure(err)
		return "", err
	}
	if !link.PurgedAt.IsZero() {
		h.skipped(ctx, linkID, consentID, trigger, ReasonPurged)
		return "", nil
	}
	if link.Erasing() {
		// A consent authorised late, while the deletion waits for Klavi
		// or for its purge, must not fetch the data that is to be erased.
		h.skipped(ctx, linkID, consentID, trigger, ReasonDeletionRequested)
		return "", nil
	}
	i := slices.IndexFunc(link.Consents, func(c linkstore.Consent) bool { return c.ConsentID == consentID })
	if i < 0 {
		h.skipped(ctx, linkID, consentID, trigger, ReasonNotFound)
		return "", nil
	}
	consent := link.Consents[i]
	if !isStatus(consent.Status, klavi.ConsentAuthorised) {
		h.skipped(ctx, linkID, consentID, trigger, ReasonNotAuthorised)
		return "", nil
	}

	// The store reads since the first check took some of the time. Too
	// little left now leaves the consent claimed: its lease runs out and
	// the sweep, or a late retry, makes the request.
	budget, err := h.CallBudget(ctx)
	if err != nil {
		err = temporary(ReasonDeadlineNear, fmt.Errorf("request reports for consent %s of link %s: claimed, not asked: %w", consentID, linkID, err))
		h.countFailure(err)
		return "", err
	}
	requestID, err := h.send(ctx, budget, link, consent, h.products, h.webhookURL(link, ""), trigger)
	if err != nil {
		h.countFailure(err)
		return requestID, fmt.Errorf("request reports for consent %s of link %s: %w", consentID, linkID, err)
	}
	return requestID, nil
}

// CallBudget is how long an automatic Klavi call started now may take. It
// ends well inside the lease (three quarters of it), so that its outcome
// is recorded before anybody else may claim the consent; and
// Config.RecordReserve before ctx's deadline, so that an accepted request
// is recorded before the invocation ends. With less than
// Config.MinCallTime left, it returns an error matching ErrDeadlineNear:
// a call cut short by its timeout may still have been acted on by Klavi,
// and would then be made a second time.
func (h *Service) CallBudget(ctx context.Context) (time.Duration, error) {
	budget := h.lease * 3 / 4
	dl, ok := ctx.Deadline()
	if !ok {
		return budget, nil
	}
	// Real time: the deadline is the invocation's, whatever Config.Now is.
	left := time.Until(dl) - h.recordReserve
	if left < h.minCall {
		return 0, fmt.Errorf("%w: %v left before the reserve, want %v", ErrDeadlineNear, max(left, 0).Round(time.Millisecond), h.minCall)
	}
	return min(budget, left), nil
}

// send asks Klavi for one consent's reports and records the request. The
// Klavi call is bounded by klaviTimeout when it is not zero. When Klavi
// accepted the request but recording it failed, send returns the request
// id together with the error: the request was made.
func (h *Service) send(ctx context.Context, klaviTimeout time.Duration, link *linkstore.Link, c linkstore.Consent, products []string, webhookURL, trigger string) (string, error) {
	kind, err := taxIDKind(link)
	if err != nil {
		return "", err
	}
	institution := c.InstitutionCode
	if institution == "" {
		institution = link.InstitutionCode
	}
	if institution == "" {
		return "", permanent(ReasonNoInstitution, ErrNoInstitution)
	}
	if webhookURL == "" {
		return "", permanent(ReasonNoWebhookURL, ErrNoWebhookURL)
	}
	req := klavi.InstitutionDataRequest{
		TaxID:               link.TaxID,
		InstitutionCode:     institution,
		LinkID:              link.LinkID,
		ConsentIDs:          []string{c.ConsentID},
		Products:            slices.Clone(products),
		ProductsCallbackURL: map[string]string{"all": webhookURL},
		ExternalInfo:        link.ExternalInfo,
	}

	callCtx := ctx
	if klaviTimeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, klaviTimeout)
		defer cancel()
	}
	accepted, err := h.klavi.RequestInstitutionData(callCtx, kind, req)
	var requestID string
	switch {
	case err == nil:
		if accepted != nil {
			requestID = accepted.RequestID
		}
	case errors.Is(err, klavi.ErrMalformedResponse):
		// A 2xx that could not be read: Klavi did act on the request.
	default:
		return "", classifyKlavi(fmt.Errorf("ask klavi: %w", err))
	}
	if requestID == "" {
		requestID = unidentifiedPrefix + strings.ToLower(rand.Text())
		h.metric.Count("ReportRequestsUnidentified", 1)
		attrs := []any{"linkId", link.LinkID, "consentId", c.ConsentID, "reportRequestId", requestID}
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		h.log.WarnContext(ctx, "klavi accepted a report request without a requestId; recording it under a generated id", attrs...)
	}

	rec := linkstore.ReportRequest{
		RequestID:       requestID,
		ConsentID:       c.ConsentID,
		InstitutionCode: institution,
		Products:        slices.Clone(products),
		RequestedAt:     h.now(),
		Trigger:         trigger,
	}
	h.metric.Count("ReportRequestsSent", 1, "Trigger", trigger)
	err = h.record(ctx, link.LinkID, rec)
	switch {
	case err == nil, errors.Is(err, linkstore.ErrDuplicate):
	case errors.Is(err, linkstore.ErrPurged), errors.Is(err, linkstore.ErrNotFound):
		// The user's data was deleted while the request was in flight;
		// nothing may be stored for the link any more.
		h.log.InfoContext(ctx, "report request not recorded: link purged meanwhile",
			"linkId", link.LinkID, "consentId", c.ConsentID, "reportRequestId", requestID)
	default:
		h.metric.Count("ReportRequestsUnrecorded", 1, "Trigger", trigger)
		return requestID, temporary(ReasonStoreUnavailable, fmt.Errorf("record request %s: %w", requestID, err))
	}
	h.log.InfoContext(ctx, "report request sent",
		"linkId", link.LinkID, "consentId", c.ConsentID, "reportRequestId", requestID,
		"institutionCode", institution, "products", len(products), "trigger", trigger)
	return requestID, nil
}

// record stores a request Klavi accepted. Klavi has acted, so the record
// must land even when the invocation's context ends meanwhile: without it
// the consent is claimed again once its lease runs out and Klavi is asked
// a second time. So it runs detached from ctx's cancellation, bounded by
// Config.RecordTimeout, and tries a transient failure again (the write is
// idempotent: a repeat of one that did land fails with
// linkstore.ErrDuplicate).
func (h *Service) record(ctx context.Context, linkID string, rec linkstore.ReportRequest) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.recordTimeout)
	defer cancel()
	wait := h.recordBackoff
	for attempt := 1; ; attempt++ {
		err := h.store.RecordReportRequest(ctx, linkID, rec)
		if err == nil || !transientRecordError(err) || attempt == recordAttempts || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
}

// transientRecordError reports whether recording a request may succeed
// when tried again at once.
func transientRecordError(err error) bool {
	switch {
	case errors.Is(err, linkstore.ErrDuplicate), errors.Is(err, linkstore.ErrPurged), errors.Is(err, linkstore.ErrNotFound):
		return false
	default:
		return true
	}
}

// taxIDKind picks the Klavi endpoint for the link's tax id.
func taxIDKind(link *linkstore.Link) (klavi.TaxIDKind, error) {
	if link.TaxID != "" {
		switch link.TaxIDType {
		case linkstore.TaxIDPersonal:
			return klavi.Personal, nil
		case linkstore.TaxIDBusiness:
			return klavi.Business, nil
		}
	}
	return "", permanent(ReasonUnknownTaxIDType, ErrUnknownTaxIDType)
}

// webhookURL is where Klavi must POST the link's reports: the URL the link
// was created with, else the configured one, else fallback.
func (h *Service) webhookURL(link *linkstore.Link, fallback string) string {
	switch {
	case link.ReportWebhookURL != "":
		return link.ReportWebhookURL
	case h.webhook != "":
		return h.webhook
	default:
		return fallback
	}
}

func (h *Service) skipped(ctx context.Context, linkID, consentID, trigger, reason string) {
	h.metric.Count("ReportRequestsSkipped", 1, "Reason", reason)
	h.log.InfoContext(ctx, "report request skipped",
		"linkId", linkID, "consentId", consentID, "trigger", trigger, "reason", reason)
}

func (h *Service) countFailure(err error) {
	if reason := ReasonOf(err); reason != "" {
		h.metric.Count("ReportRequestsFailed", 1, "Reason", reason)
	}
}

// isStatus compares consent statuses as Klavi's values are compared:
// case-insensitively.
func isStatus(got, want klavi.ConsentStatus) bool {
	return strings.EqualFold(strings.TrimSpace(string(got)), string(want))
}
