package reports

import (
	"errors"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Sentinel errors callers of RequestForConsent branch on with errors.Is.
var (
	// ErrPermanent is matched by failures that will repeat until something
	// else changes (the consent, the link, the configuration, Klavi's
	// contract). The stream does not retry them.
	ErrPermanent = errors.New("reports: permanent failure")
	// ErrInProgress: another caller holds the claim on the consent's
	// automatic request. It wraps linkstore.ErrLeaseHeld.
	ErrInProgress = errors.New("reports: request in progress elsewhere")
	// ErrUnknownTaxIDType: the link carries no CPF or CNPJ, so neither
	// Klavi endpoint applies. It is permanent.
	ErrUnknownTaxIDType = errors.New("reports: link has no known tax id type")
	// ErrNoWebhookURL: no report webhook URL is known for the link. It is
	// permanent.
	ErrNoWebhookURL = errors.New("reports: no report webhook URL")
	// ErrNoInstitution: neither the consent nor the link names an
	// institution. It is permanent.
	ErrNoInstitution = errors.New("reports: no institution code")
	// ErrInvalidTrigger: RequestForConsent was given a trigger other than
	// stream or reconcile. It is permanent.
	ErrInvalidTrigger = errors.New("reports: invalid trigger")
	// ErrTooSoon: the same manual request (consent and products) was made
	// less than Config.ManualCooldown ago; Klavi was not asked. The error
	// also matches linkstore.ErrCoolingDown, and errors.As finds the
	// *linkstore.CooldownError that tells when the request may be made
	// again.
	ErrTooSoon = errors.New("reports: same manual request made too recently")
)

// Reasons, the "Reason" dimension of the ReportRequestsFailed and
// ReportRequestsSkipped metrics. Few and fixed: never an id.
const (
	ReasonAlreadyRequested   = "already_requested"
	ReasonInProgress         = "in_progress"
	ReasonNotAuthorised      = "not_authorised"
	ReasonNotFound           = "not_found"
	ReasonPurged             = "purged"
	ReasonDeletionRequested  = "deletion_requested"
	ReasonAutoRequestOff     = "auto_request_disabled"
	ReasonUnknownTaxIDType   = "unknown_tax_id_type"
	ReasonNoWebhookURL       = "no_webhook_url"
	ReasonNoInstitution      = "no_institution_code"
	ReasonInvalidTrigger     = "invalid_trigger"
	ReasonConsentNotAuth     = "consent_not_authorised" // Klavi 4001
	ReasonInvalidProduct     = "invalid_product"        // 4002
	ReasonConsentLimit       = "consent_limit"          // 4003
	ReasonInvalidInstitution = "invalid_institution"    // 4004
	ReasonNoProducts         = "no_products"            // 4005
	ReasonInvalidCallback    = "invalid_callback_url"   // 4006
	ReasonProductFailed      = "product_request_failed" // 4007
	ReasonNoOpenFinance      = "no_open_finance_consent"
	ReasonKYCRequired        = "kyc_required"
	ReasonKlaviRejected      = "klavi_rejected" // any other 4xx
	ReasonInvalidRequest     = "invalid_request"
	ReasonRateLimited        = "rate_limited"
	ReasonKlaviServer        = "klavi_server_error"
	ReasonKlaviUnavailable   = "klavi_unavailable" // network, timeout, token
	ReasonStoreUnavailable   = "store_unavailable"
	ReasonTooSoon            = "too_soon" // a manual request within its cool-down
)

// failure is an error of RequestForConsent with the reason it is counted
// under and whether trying again can help.
type failure struct {
	reason    string
	permanent bool
	err       error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// Is makes a permanent failure match ErrPermanent.
func (f *failure) Is(target error) bool { return target == ErrPermanent && f.permanent }

func permanent(reason string, err error) error {
	return &failure{reason: reason, permanent: true, err: err}
}

func temporary(reason string, err error) error {
	return &failure{reason: reason, err: err}
}

// ReasonOf returns the metric reason of err, "" when it has none.
func ReasonOf(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.reason
	}
	return ""
}

// klaviBusinessReasons maps Klavi's business codes to reasons; all of them
// are permanent for the request as it was sent.
var klaviBusinessReasons = []struct {
	err    error
	reason string
}{
	{klavi.ErrInvalidAuthorisation, ReasonConsentNotAuth},
	{klavi.ErrInvalidProduct, ReasonInvalidProduct},
	{klavi.ErrConsentLimit, ReasonConsentLimit},
	{klavi.ErrInvalidInstitution, ReasonInvalidInstitution},
	{klavi.ErrNoProducts, ReasonNoProducts},
	{klavi.ErrInvalidCallbackURL, ReasonInvalidCallback},
	{klavi.ErrProductRequestFailed, ReasonProductFailed},
	{klavi.ErrNoOpenFinanceConsent, ReasonNoOpenFinance},
	{klavi.ErrKYCRequired, ReasonKYCRequired},
}

// classifyKlavi turns a failed Klavi call into a failure. Business codes
// and other 4xx answers are permanent: repeating the same request gets the
// same answer. 401 after the client's own token refresh, 408, 429, 5xx,
// network and token-source failures are temporary.
func classifyKlavi(err error) error {
	for _, b := range klaviBusinessReasons {
		if errors.Is(err, b.err) {
			return permanent(b.reason, err)
		}
	}
	var apiErr *klavi.APIError
	switch {
	case errors.Is(err, klavi.ErrInvalidRequest):
		return permanent(ReasonInvalidRequest, err)
	case errors.Is(err, klavi.ErrRateLimited):
		return temporary(ReasonRateLimited, err)
	case errors.As(err, &apiErr) && apiErr.Retryable():
		return temporary(ReasonKlaviServer, err)
	case errors.Is(err, klavi.ErrUnauthorized):
		// The client already fetched a fresh token once; the token source
		// may recover by the next attempt.
		return temporary(ReasonKlaviUnavailable, err)
	case errors.As(err, &apiErr):
		return permanent(ReasonKlaviRejected, err)
	default:
		return temporary(ReasonKlaviUnavailable, err)
	}
}
