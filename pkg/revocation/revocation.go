// Package revocation withdraws a link's consents at Klavi and erases links
// on the fintech's request: the logic of POST /links/{linkId}/revoke and
// DELETE /links/{linkId}, and of the sweep that finishes a deletion left
// half done.
//
// # Revoke
//
// Every consent of the link that is AUTHORISED is revoked at Klavi
// (DELETE /data/v1/consents/{consentId}/revoke), each under a claim on the
// consent (linkstore ClaimRevoke) and then marked (RecordRevoke), so that
// asking again, or many callers at once, asks Klavi for nothing new. The
// consent's status stays Klavi's until its consent_revoked event settles
// it; until then the answer reads REVOKE_REQUESTED. A consent Klavi no
// longer knows (404, or 4001: expired or unknown) has nothing left to
// revoke and is marked as done.
//
// # Delete
//
// The deletion is recorded first (linkstore RequestDeletion: the purge
// reason deleted_by_request and an attention entry for the sweep), then
// the link's consents are revoked as above, then the link is purged exactly
// as Klavi's consent_deleted_by_user purges it (reports.Service.Purge). A
// Klavi failure, or a revocation still in flight elsewhere, stops before
// the purge: the link reads as it did, nothing is half purged, and asking
// again or the sweep finishes it. Once purged, later events and reports
// for the link are neither kept nor able to bring it back (the store's
// tombstone refuses them).
package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/metrics"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNoActiveConsent: no consent of the link is AUTHORISED, and none
	// was revoked through us.
	ErrNoActiveConsent = errors.New("revocation: no active consent")
	// ErrLinkPurged: the link's data was deleted already.
	ErrLinkPurged = errors.New("revocation: link purged")
	// ErrInFlight: another caller is revoking the consent right now.
	ErrInFlight = errors.New("revocation: revoke in flight")
	// ErrIncomplete: a deletion stopped before the purge because a
	// consent could not be revoked yet; asking again finishes it.
	ErrIncomplete = errors.New("revocation: deletion not finished")
)

// StatusRevokeRequested is the answer's status of a consent whose
// revocation Klavi accepted and whose consent_revoked event has not come
// yet.
const StatusRevokeRequested = "REVOKE_REQUESTED"

// DefaultLease bounds a claim on a consent's revocation: longer than one
// Klavi call with the client's retries.
const DefaultLease = time.Minute

// consentRevoker is the Klavi call the service makes (klavi.Client).
type consentRevoker interface {
	RevokeConsent(ctx context.Context, consentID string) error
}

// store is the part of the link store the service uses.
type store interface {
	RequestDeletion(ctx context.Context, linkID string, now time.Time) error
	ClaimRevoke(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error
	RecordRevoke(ctx context.Context, linkID, consentID string, at time.Time) error
}

// purger purges a link as consent_deleted_by_user does
// (reports.Service).
type purger interface {
	Purge(ctx context.Context, linkID string) error
}

// Config is what the service needs besides its dependencies.
type Config struct {
	// Lease bounds a claim on a consent's revocation; default
	// DefaultLease.
	Lease   time.Duration
	Logger  *slog.Logger
	Metrics *metrics.Recorder
	Now     func() time.Time
}

// Service revokes consents and deletes links.
type Service struct {
	klavi  consentRevoker
	store  store
	purger purger
	lease  time.Duration
	log    *slog.Logger
	metric *metrics.Recorder
	now    func() time.Time
}

// New returns a Service. p may be nil for a service that only revokes.
func New(k consentRevoker, s store, p purger, cfg Config) *Service {
	svc := &Service{klavi: k, store: s, purger: p, lease: cfg.Lease, log: cfg.Logger, metric: cfg.Metrics, now: cfg.Now}
	if svc.lease <= 0 {
		svc.lease = DefaultLease
	}
	if svc.log == nil {
		svc.log = slog.New(slog.DiscardHandler)
	}
	if svc.now == nil {
		svc.now = time.Now
	}
	return svc
}

// ConsentResult is what became of one consent.
type ConsentResult struct {
	ConsentID       string
	InstitutionCode string
	// Status is StatusRevokeRequested for a consent revoked through us
	// whose consent_revoked has not come, else the consent's status.
	Status string
	// Err is why the consent could not be revoked now: a Klavi failure
	// (*klavi.APIError, network) or ErrInFlight.
	Err error
}

// Revoke revokes every AUTHORISED consent of link at Klavi. It returns one
// result per consent that is AUTHORISED or was revoked through us, in the
// link's consent order; ErrNoActiveConsent when there is none, and
// ErrLinkPurged for a purged link. Failures of single consents are in
// their results, not in the error.
func (s *Service) Revoke(ctx context.Context, link *linkstore.Link) ([]ConsentResult, error) {
	if !link.PurgedAt.IsZero() {
		return nil, fmt.Errorf("revoke link %s: %w", link.LinkID, ErrLinkPurged)
	}
	out := s.revokeAll(ctx, link)
	if len(out) == 0 {
		return nil, fmt.Errorf("revoke link %s: %w", link.LinkID, ErrNoActiveConsent)
	}
	return out, nil
}

func (s *Service) revokeAll(ctx context.Context, link *linkstore.Link) []ConsentResult {
	var out []ConsentResult
	for _, c := range link.Consents {
		if c.Status != klavi.ConsentAuthorised && c.RevokeRequestedAt.IsZero() {
			continue
		}
		r := ConsentResult{ConsentID: c.ConsentID, InstitutionCode: c.InstitutionCode, Status: string(c.Status)}
		switch {
		case !c.RevokeRequestedAt.IsZero():
			if c.Status == klavi.ConsentAuthorised {
				r.Status = StatusRevokeRequested
			}
		default:
			r.Status, r.Err = s.revokeOne(ctx, link.LinkID, c)
		}
		out = append(out, r)
	}
	return out
}

// revokeOne claims, revokes and marks one AUTHORISED consent and returns
// its status for the answer.
func (s *Service) revokeOne(ctx context.Context, linkID string, c linkstore.Consent) (string, error) {
	err := s.store.ClaimRevoke(ctx, linkID, c.ConsentID, s.lease, s.now())
	switch {
	case errors.Is(err, linkstore.ErrRevokeRequested):
		return StatusRevokeRequested, nil
	case errors.Is(err, linkstore.ErrLeaseHeld):
		return string(c.Status), ErrInFlight
	case errors.Is(err, linkstore.ErrNotAuthorised), errors.Is(err, linkstore.ErrNotFound):
		// Its status changed since the link was read (an event came):
		// there is nothing of ours to revoke any more.
		return string(c.Status), nil
	case err != nil:
		return string(c.Status), err
	}
	err = s.klavi.RevokeConsent(ctx, c.ConsentID)
	if errors.Is(err, klavi.ErrNotFound) || errors.Is(err, klavi.ErrInvalidAuthorisation) {
		// Klavi no longer holds the consent as valid: nothing is left to
		// revoke, and asking again would fail the same way.
		s.log.InfoContext(ctx, "consent unknown to klavi; marked revoked", "linkId", linkID, "consentId", c.ConsentID)
		err = nil
	}
	if err != nil {
		// The claim runs out by itself; the next call asks again.
		s.metric.Count("ConsentRevocationsFailed", 1)
		return string(c.Status), fmt.Errorf("revoke consent %s: %w", c.ConsentID, err)
	}
	s.metric.Count("ConsentsRevoked", 1)
	if err := s.store.RecordRevoke(ctx, linkID, c.ConsentID, s.now()); err != nil && !errors.Is(err, linkstore.ErrNotFound) {
		// Klavi took it; revoking twice has no further effect, so a lost
		// mark costs at most one more call.
		s.log.WarnContext(ctx, "revoke: record mark", "linkId", linkID, "consentId", c.ConsentID, "error", err)
	}
	return StatusRevokeRequested, nil
}

// Delete erases link at the fintech's request (see the package doc) and
// returns the link's status afterwards: linkstore.StatusDeleted, or the
// status of a link purged before (DELETED_BY_USER). It fails with
// ErrIncomplete, wrapping the consents' errors, when a consent could not
// be revoked; the deletion stays recorded for a retry or the sweep.
func (s *Service) Delete(ctx context.Context, link *linkstore.Link) (string, error) {
	if s.purger == nil {
		return "", fmt.Errorf("delete link %s: no purger", link.LinkID)
	}
	if !link.PurgedAt.IsZero() {
		return link.Status(s.now()), nil
	}
	if link.PurgeReason != linkstore.PurgeDeletedByRequest {
		err := s.store.RequestDeletion(ctx, link.LinkID, s.now())
		if errors.Is(err, linkstore.ErrPurged) {
			// Purged since it was read, by another call or by the user.
			return linkstore.StatusDeleted, nil
		}
		if err != nil {
			return "", fmt.Errorf("delete link %s: %w", link.LinkID, err)
		}
	}
	var errs []error
	for _, r := range s.revokeAll(ctx, link) {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) > 0 {
		s.metric.Count("DeletionsDeferred", 1)
		return "", fmt.Errorf("delete link %s: %w: %w", link.LinkID, ErrIncomplete, errors.Join(errs...))
	}
	if err := s.purger.Purge(ctx, link.LinkID); err != nil {
		return "", fmt.Errorf("delete link %s: %w", link.LinkID, err)
	}
	s.metric.Count("LinksDeleted", 1)
	s.log.InfoContext(ctx, "link deleted on request", "linkId", link.LinkID, "consents", len(link.Consents))
	return linkstore.StatusDeleted, nil
}
