package reportrequest

import (
	"errors"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Sentinel errors callers of RequestForConsent branch on with errors.Is.
var (
	// ErrPermanent is matched by failures that will repeat until something
	// else changes (the consent, the link, the configuration, Klavi's
	// contract). The stream does not retry them.
	ErrPermanent = errors.New("reportrequest: permanent failure")
	// ErrInProgress: another caller holds the claim on the consent's
	// automatic request. It wraps linkstore.ErrLeaseHeld.
	ErrInProgress = errors.New("reportrequest: request in progress elsewhere")
	// ErrUnknownTaxIDType: the link carries no CPF or CNPJ, so neither
	// Klavi endpoint applies. It is permanent.
	ErrUnknownTaxIDType = errors.New("reportrequest: link has no known tax id type")
	// ErrNoWebhookURL: no report webhook URL is known for the link. It is
	// permanent.
	ErrNoWebhookURL = errors.New("reportrequest: no report webhook URL")
	// ErrNoInstitution: neither the consent nor the link names an
	// institution. It is permanent.
	ErrNoInstitution = errors.New("reportrequest: no institution code")
	// ErrInvalidTrigger: RequestForConsent was given a trigger other than
	// stream or reconcile. It is permanent.
	ErrInvalidTrigger = errors.New("reportrequest: invalid trigger")
)

// Reasons, the "Reason" dimension of the ReportRequestsFailed and
// ReportRequestsSkipped metrics. Few and fixed: never an id.
const (
	reasonAlreadyRequested   = "already_requested"
	reasonInProgress         = "in_progress"
	reasonNotAuthorised      = "not_authorised"
	reasonNotFound           = "not_found"
	reasonPurged             = "purged"
	reasonAutoRequestOff     = "auto_request_disabled"
	reasonUnknownTaxIDType   = "unknown_tax_id_type"
	reasonNoWebhookURL       = "no_webhook_url"
	reasonNoInstitution      = "no_institution_code"
	reasonInvalidTrigger     = "invalid_trigger"
	reasonConsentNotAuth     = "consent_not_authorised" // Klavi 4001
	reasonInvalidProduct     = "invalid_product"        // 4002
	reasonConsentLimit       = "consent_limit"          // 4003
	reasonInvalidInstitution = "invalid_institution"    // 4004
	reasonNoProducts         = "no_products"            // 4005
	reasonInvalidCallback    = "invalid_callback_url"   // 4006
	reasonProductFailed      = "product_request_failed" // 4007
	reasonNoOpenFinance      = "no_open_finance_consent"
	reasonKYCRequired        = "kyc_required"
	reasonKlaviRejected      = "klavi_rejected" // any other 4xx
	reasonInvalidRequest     = "invalid_request"
	reasonRateLimited        = "rate_limited"
	reasonKlaviServer        = "klavi_server_error"
	reasonKlaviUnavailable   = "klavi_unavailable" // network, timeout, token
	reasonStoreUnavailable   = "store_unavailable"
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

// reasonOf returns the metric reason of err, "" when it has none.
func reasonOf(err error) string {
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
	{klavi.ErrInvalidAuthorisation, reasonConsentNotAuth},
	{klavi.ErrInvalidProduct, reasonInvalidProduct},
	{klavi.ErrConsentLimit, reasonConsentLimit},
	{klavi.ErrInvalidInstitution, reasonInvalidInstitution},
	{klavi.ErrNoProducts, reasonNoProducts},
	{klavi.ErrInvalidCallbackURL, reasonInvalidCallback},
	{klavi.ErrProductRequestFailed, reasonProductFailed},
	{klavi.ErrNoOpenFinanceConsent, reasonNoOpenFinance},
	{klavi.ErrKYCRequired, reasonKYCRequired},
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
		return permanent(reasonInvalidRequest, err)
	case errors.Is(err, klavi.ErrRateLimited):
		return temporary(reasonRateLimited, err)
	case errors.As(err, &apiErr) && apiErr.Retryable():
		return temporary(reasonKlaviServer, err)
	case errors.Is(err, klavi.ErrUnauthorized):
		// The client already fetched a fresh token once; the token source
		// may recover by the next attempt.
		return temporary(reasonKlaviUnavailable, err)
	case errors.As(err, &apiErr):
		return permanent(reasonKlaviRejected, err)
	default:
		return temporary(reasonKlaviUnavailable, err)
	}
}
