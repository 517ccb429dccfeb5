// Package linkstore keeps the state of Klavi links: the link itself, its
// consents, the report requests made for it and the reports received, plus
// the event ids already processed. DynamoStore keeps it in one DynamoDB
// table; linkstoretest.MemoryStore keeps it in memory with the same
// outcomes, for tests and local runs.
//
// # Ordering and duplicates
//
// Every write that must happen once is a conditional write, never a read
// followed by a write. An event id is remembered by an event marker item
// (kept at least MinEventTTL); a repeated id is a Duplicate and changes
// nothing. A consent event only replaces the consent's state when it
// supersedes it by the consent lifecycle's rule (klavi.Supersedes: a later
// eventTime, or the same eventTime and a status further along by
// klavi.ConsentStatus.Rank; the user's deletion applies whatever eventTime
// the consent holds and is never replaced). An event that does not is
// Stale: remembered as processed, nothing else changes. Consent statuses
// are stored upper-case.
//
// # Link status
//
// Link.Status(now) derives the status from the parts, first match wins:
//
//  1. PurgedAt set: DELETED_BY_USER
//  2. any report: REPORTS_RECEIVED
//  3. a report request (or a consent with a RequestID) and a consent
//     AUTHORISED: REPORTS_REQUESTED
//  4. a consent AUTHORISED: AUTHORISED
//  5. consents, none authorised: the status of the consent set by the most
//     recent event (EventTime, then rank), where an ended status
//     (klavi.ConsentStatus.Ended: ERROR, REJECTED, EXPIRED, REVOKED,
//     DELETED_BY_USER) stays as it is and STARTED, AWAITING_* (and unknown
//     statuses) read CREATED
//  6. no consent: EXPIRED once ExpiresAt has passed, else CREATED
//
// # Reconciliation
//
// A link may carry one attention entry for the reconciliation sweep
// (ListAttention, ClearAttention). CreateLink sets AWAITING_CONSENT due at
// ExpiresAt (none when ExpiresAt is zero). A consent becoming AUTHORISED sets
// AWAITING_REPORTS due the report grace period (WithReportGrace) after the
// event was received. Other consent events leave the entry as it is: on a
// link with several consents, one rejected must not hide another still
// waiting for reports. RecordReport leaves it too, for the same reason: one
// consent's report says nothing about the others; the sweep, which reads
// the whole link, decides. Purge removes the entry. ClearAttention removes
// it only while it is still due at the time the caller saw in ListAttention
// (else ErrAttentionChanged), so that an entry re-armed by an authorisation
// after the sweep read the link survives.
//
// # LGPD
//
// Purge turns the link item into a tombstone (link id, dates, PurgedAt,
// PurgeReason and the owner, so that only the owner reads the tombstone)
// and deletes its consent, request and report items. A deletion the
// fintech asks for is first recorded (RequestDeletion: PurgeReason
// deleted_by_request and a DELETION_REQUESTED attention entry due at once,
// the link otherwise untouched), so that a deletion left half done is
// finished by the sweep and never reads as done before the purge.
//
// # Revocation
//
// ClaimRevoke and RecordRevoke guard our revocation of a consent at Klavi
// as ClaimAutoRequest and RecordReportRequest guard its report request:
// a lease on an AUTHORISED consent, then a revokeRequestedAt mark, both
// conditional writes, so that Klavi is asked once however many callers
// ask. The consent's status stays Klavi's; its consent_revoked event
// settles it.
// The tax id is personal data: it is stored only on the link item and never
// goes into a key, an index, an event marker, a log line or an error. The
// owner, an identity of the API's caller, is kept the same way: on the link
// item only, never in a key or an index.
//
// # Item layout (DynamoDB)
//
// One table with string keys pk and sk; every item has a "type" attribute.
// Times are strings in the fixed-width UTC form 2006-01-02T15:04:05.000Z,
// so that comparing strings compares times; empty strings are never
// written (absent and empty are the same).
//
//	item      pk                 sk                           type
//	link      LINK#<linkId>      #LINK                        link
//	consent   LINK#<linkId>      CONSENT#<consentId>          consent
//	request   LINK#<linkId>      REQUEST#<requestId>          request
//	report    LINK#<linkId>      REPORT#<productReportId>     report
//	event     EVENT#<eventId>    #EVENT                       event
//
// Attributes:
//
//	link     linkId taxIdType taxId institutionCode redirectUrl
//	         reportWebhookUrl externalInfo (JSON text) origin owner
//	         expiresAt createdAt updatedAt purgedAt purgeReason attn attnDue
//	consent  linkId consentId institutionCode status eventTime
//	         eventRank (N) updatedAt requestId leaseUntil
//	         revokeLeaseUntil revokeRequestedAt
//	request  linkId requestId consentId institutionCode products (L of S)
//	         requestedAt trigger
//	report   linkId productReportId productName requestId objectKey
//	         code (N) bytes (N) sha256 receivedAt
//	event    eventName linkId receivedAt ttl (N, epoch seconds; never the
//	         payload, never a tax id)
//
// The sparse global secondary index AttentionIndex has hash key attn (the
// AttentionKind) and range key attnDue, set on link items only. TTL is on
// TTLAttribute. The table stream carries new and old images; a consumer of
// authorised consents can filter on
//
//	{"dynamodb": {"NewImage": {"type": {"S": ["consent"]}, "status": {"S": ["AUTHORISED"]}}}}
//
// and read the record with ConsentFromStreamImage.
//
// # Calls per operation
//
// GetLink is one Query (more pages only for a partition over 1 MB).
// ApplyEvent is one TransactWriteItems, plus one PutItem when the event is
// stale or its link purged. CreateLink, ClaimAutoRequest and ClearAttention
// are one UpdateItem, as are RequestDeletion, ClaimRevoke and
// RecordRevoke; RecordReportRequest and RecordReport one
// TransactWriteItems. Transactions that lose a conflict with a concurrent
// transaction are tried again.
package linkstore
