package linkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// DynamoAPI is the part of *dynamodb.Client the store calls.
type DynamoAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// DynamoStore keeps the link state in one DynamoDB table (see doc.go).
type DynamoStore struct {
	db    DynamoAPI
	table *string
	opts  options
}

// NewDynamo returns a store over the table.
func NewDynamo(client DynamoAPI, table string, opts ...Option) *DynamoStore {
	return &DynamoStore{db: client, table: aws.String(table), opts: newOptions(opts)}
}

// Transactions that lose a conflict with a concurrent one are retried a
// few times; conditions are evaluated again on each try.
const (
	maxTransactAttempts = 4
	transactBackoff     = 20 * time.Millisecond
	batchWriteAttempts  = 8
)

// Cancellation reason codes of a cancelled transaction.
const (
	codeConditionFailed = "ConditionalCheckFailed"
	codeConflict        = "TransactionConflict"
)

// CreateLink stores a new link with one conditional write. It fails with
// ErrDuplicate when the id exists, unless that link was only seen in an
// event so far (Klavi's link_created can arrive before this write): then it
// takes it over, keeping its consents.
func (s *DynamoStore) CreateLink(ctx context.Context, l Link) error {
	if l.LinkID == "" {
		return fmt.Errorf("create link: %w", ErrEmptyID)
	}
	l = l.WithDefaults(s.opts.now())
	u := newUpdate()
	u.set(attrType, str(ItemTypeLink))
	u.set(attrLinkID, str(l.LinkID))
	u.set(attrOrigin, str(l.Origin))
	u.set(attrCreatedAt, timeValue(l.CreatedAt))
	u.set(attrUpdatedAt, timeValue(l.UpdatedAt))
	if l.TaxIDType != TaxIDUnknown {
		u.set(attrTaxIDType, str(string(l.TaxIDType)))
	}
	// Empty fields are left out, so an adopted link keeps what its events
	// stored there.
	for _, f := range []struct{ attr, v string }{
		{attrTaxID, l.TaxID},
		{attrInstitutionCode, l.InstitutionCode},
		{attrRedirectURL, l.RedirectURL},
		{attrReportWebhookURL, l.ReportWebhookURL},
		{attrExternalInfo, string(l.ExternalInfo)},
		{attrOwner, l.Owner},
	} {
		if f.v != "" {
			u.set(f.attr, str(f.v))
		}
	}
	if !l.ExpiresAt.IsZero() {
		u.set(attrExpiresAt, timeValue(l.ExpiresAt))
		u.setIfNotExists(attrAttn, str(string(AwaitingConsent)))
		u.setIfNotExists(attrAttnDue, timeValue(l.ExpiresAt))
	}
	cond := fmt.Sprintf("attribute_not_exists(%s) OR (%s = %s AND attribute_not_exists(%s))",
		u.name(attrPK), u.name(attrOrigin), u.value("webhookOrigin", str(OriginWebhook)), u.name(attrPurgedAt))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       linkKey(l.LinkID),
		UpdateExpression:          u.expression(),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
	})
	if isConditionFailed(err) {
		err = ErrDuplicate
	}
	if err != nil {
		return redact(fmt.Errorf("create link %s: %w", l.LinkID, err), l.TaxID)
	}
	return nil
}

// GetLink reads the link and all its parts with one consistent Query over
// its partition (more pages only for very large links).
func (s *DynamoStore) GetLink(ctx context.Context, linkID string) (*Link, error) {
	items, err := s.partition(ctx, linkID)
	if err != nil {
		return nil, fmt.Errorf("get link %s: %w", linkID, err)
	}
	l, ok := assembleLink(items)
	if !ok {
		return nil, fmt.Errorf("get link %s: %w", linkID, ErrNotFound)
	}
	return &l, nil
}

func (s *DynamoStore) partition(ctx context.Context, linkID string) ([]item, error) {
	in := &dynamodb.QueryInput{
		TableName:                 s.table,
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: item{":pk": str(linkPrefix + linkID)},
	}
	var items []item
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// ApplyEvent records an event and applies what it changes, in one
// transaction: the event marker (dedupe), the link (created when unknown),
// and for a consent event the consent, guarded so that it never moves back
// to an older state. A stale or purged outcome costs a second call, which
// records the marker alone so that a redelivery is a duplicate.
func (s *DynamoStore) ApplyEvent(ctx context.Context, e EventChange) (Outcome, error) {
	e = e.Normalized(s.opts.now)
	if e.EventID == "" {
		return "", fmt.Errorf("apply event: %w", ErrEmptyID)
	}
	out, err := s.applyEvent(ctx, e)
	if err != nil {
		return "", redact(fmt.Errorf("apply event %s: %w", e.EventID, err), e.TaxID)
	}
	return out, nil
}

func (s *DynamoStore) applyEvent(ctx context.Context, e EventChange) (Outcome, error) {
	marker := &types.Put{
		TableName:                s.table,
		Item:                     encodeEventMarker(e),
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	}
	if e.LinkID == "" {
		return s.recordOnly(ctx, marker, Recorded)
	}
	// Order matters for reading the cancellation reasons below.
	const markerAt, linkAt, consentAt = 0, 1, 2
	tx := []types.TransactWriteItem{{Put: marker}, {Update: s.eventLinkUpdate(e)}}
	if e.IsConsentChange() {
		tx = append(tx, types.TransactWriteItem{Update: s.eventConsentUpdate(e)})
	}
	reasons, err := s.transact(ctx, tx)
	switch {
	case err != nil:
		return "", err
	case failed(reasons, markerAt):
		return Duplicate, nil
	case failed(reasons, linkAt): // purged
		return s.recordOnly(ctx, marker, Recorded)
	case failed(reasons, consentAt):
		return s.recordOnly(ctx, marker, Stale)
	case e.IsConsentChange() || e.DeletesLink():
		return Applied, nil
	default:
		return Recorded, nil
	}
}

// recordOnly writes the event marker alone; a marker already there makes
// the event a duplicate.
func (s *DynamoStore) recordOnly(ctx context.Context, marker *types.Put, outcome Outcome) (Outcome, error) {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                marker.TableName,
		Item:                     marker.Item,
		ConditionExpression:      marker.ConditionExpression,
		ExpressionAttributeNames: marker.ExpressionAttributeNames,
	})
	switch {
	case isConditionFailed(err):
		return Duplicate, nil
	case err != nil:
		return "", fmt.Errorf("put event marker: %w", err)
	default:
		return outcome, nil
	}
}

// eventLinkUpdate touches the event's link, creating it when unknown. It
// fails its condition when the link was purged.
func (s *DynamoStore) eventLinkUpdate(e EventChange) *types.Update {
	u := newUpdate()
	u.set(attrType, str(ItemTypeLink))
	u.set(attrLinkID, str(e.LinkID))
	u.setIfNotExists(attrOrigin, str(OriginWebhook))
	u.setIfNotExists(attrCreatedAt, timeValue(e.ReceivedAt))
	u.set(attrUpdatedAt, timeValue(e.ReceivedAt))
	if e.TaxID != "" {
		u.setIfNotExists(attrTaxID, str(e.TaxID))
		if t := normalizeTaxIDType(e.TaxIDType); t != TaxIDUnknown {
			u.setIfNotExists(attrTaxIDType, str(string(t)))
		}
	}
	if hasJSON(e.ExternalInfo) {
		u.setIfNotExists(attrExternalInfo, str(string(e.ExternalInfo)))
	}
	if e.DeletesLink() {
		// The user deleted the link as a whole: its purge is pending work,
		// which the table's stream carries out and the sweep backs up.
		u.set(attrWork, str(string(WorkPurge)))
		u.set(attrWorkAt, timeValue(e.ReceivedAt))
		u.remove(attrWorkConsentID)
		u.set(attrAttn, str(string(PendingWorkDue)))
		u.set(attrAttnDue, timeValue(e.ReceivedAt))
	}
	if e.IsConsentChange() && e.ConsentStatus == klavi.ConsentAuthorised {
		u.set(attrAttn, str(string(AwaitingReports)))
		u.set(attrAttnDue, timeValue(e.ReceivedAt.Add(s.opts.reportGrace)))
	}
	return &types.Update{
		TableName:                 s.table,
		Key:                       linkKey(e.LinkID),
		UpdateExpression:          u.expression(),
		ConditionExpression:       aws.String("attribute_not_exists(" + u.name(attrPurgedAt) + ")"),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
	}
}

// eventConsentUpdate sets the consent's status when the event supersedes
// what the consent holds. Its condition is klavi.Supersedes written for
// DynamoDB, over the stored eventTime, eventRank (klavi.ConsentStatus.Rank)
// and status: a final status (the user's deletion) applies whatever the
// consent holds unless it is final already, and nothing replaces it. An
// event without eventTime is stored at the zero time, which sorts below
// every real one: it never replaces a state set by an event that had one,
// and among such events the rank alone decides.
func (s *DynamoStore) eventConsentUpdate(e EventChange) *types.Update {
	u := newUpdate()
	u.set(attrType, str(ItemTypeConsent))
	u.set(attrLinkID, str(e.LinkID))
	u.set(attrConsentID, str(e.ConsentID))
	u.set(attrStatus, str(string(e.ConsentStatus)))
	u.set(attrEventTime, timeValue(e.EventTime))
	u.set(attrEventRank, num(int64(e.ConsentStatus.Rank())))
	u.set(attrUpdatedAt, timeValue(e.ReceivedAt))
	if e.InstitutionCode != "" {
		u.set(attrInstitutionCode, str(e.InstitutionCode))
	}
	t, r, st := u.name(attrEventTime), u.name(attrEventRank), u.name(attrStatus)
	// DELETED_BY_USER is the one status for which Final holds.
	notFinal := fmt.Sprintf("(attribute_not_exists(%[1]s) OR %[1]s <> %[2]s)",
		st, u.value("final", str(string(klavi.ConsentDeletedByUser))))
	cond := notFinal
	if !e.ConsentStatus.Final() {
		cond = fmt.Sprintf("(attribute_not_exists(%[1]s) OR %[1]s < :%[3]s OR (%[1]s = :%[3]s AND %[2]s < :%[4]s)) AND %[5]s",
			t, r, attrEventTime, attrEventRank, notFinal)
	}
	return &types.Update{
		TableName:                 s.table,
		Key:                       consentKey(e.LinkID, e.ConsentID),
		UpdateExpression:          u.expression(),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
	}
}

// ClaimAutoRequest claims the consent's automatic report request until
// now+lease, with one conditional update: the consent is AUTHORISED, has no
// request yet and no live claim. Otherwise it fails with ErrNotFound,
// ErrDuplicate (request already made), ErrNotAuthorised or ErrLeaseHeld.
func (s *DynamoStore) ClaimAutoRequest(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error {
	return s.claimConsent(ctx, requestClaim, linkID, consentID, lease, now)
}

// consentClaim is one kind of claim on an AUTHORISED consent: a lease that
// lets one caller make a Klavi call for it once. The automatic report
// request and the revocation each have one.
type consentClaim struct {
	what      string // names the claim in errors
	leaseAttr string // when the live claim ends
	doneAttr  string // set once the claimed work is recorded
	// why tells, from the consent as it was, why the claim failed.
	why func(c Consent, now time.Time) error
}

var (
	requestClaim = consentClaim{what: "claim consent", leaseAttr: attrLeaseUntil, doneAttr: attrRequestID, why: claimError}
	revokeClaim  = consentClaim{what: "claim revoke of consent", leaseAttr: attrRevokeLease, doneAttr: attrRevokeRequested, why: revokeClaimError}
)

// claimConsent takes claim c on the consent until now+lease, with one
// conditional update: the consent is AUTHORISED, the claimed work is not
// recorded and no claim of the kind is live.
func (s *DynamoStore) claimConsent(ctx context.Context, c consentClaim, linkID, consentID string, lease time.Duration, now time.Time) error {
	u := newUpdate()
	u.set(c.leaseAttr, timeValue(now.Add(lease)))
	cond := fmt.Sprintf("attribute_exists(%s) AND %s = %s AND attribute_not_exists(%s) AND (attribute_not_exists(%s) OR %s <= %s)",
		u.name(attrPK), u.name(attrStatus), u.value("authorised", str(string(klavi.ConsentAuthorised))), u.name(c.doneAttr),
		u.name(c.leaseAttr), u.name(c.leaseAttr), u.value("now", timeValue(now)))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 consentKey(linkID, consentID),
		UpdateExpression:                    u.expression(),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            u.namesOrNil(),
		ExpressionAttributeValues:           u.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// The old item comes with the failure, so telling why needs no read.
		err = ErrNotFound
		if len(ccf.Item) > 0 {
			err = c.why(decodeConsent(ccf.Item), now)
		}
		if err == nil { // cannot happen with a consistent old item; be safe
			err = ErrLeaseHeld
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", c.what, linkID, consentID, err)
	}
	return nil
}

// RecordReportRequest stores a report request and, for an automatic one
// (a consent and a trigger other than manual), sets the consent's
// RequestID and ends its claim in the same transaction.
func (s *DynamoStore) RecordReportRequest(ctx context.Context, linkID string, r ReportRequest) error {
	if r.RequestID == "" {
		return fmt.Errorf("record report request for link %s: %w", linkID, ErrEmptyID)
	}
	r.RequestedAt = stored(orNow(r.RequestedAt, s.opts.now))
	const linkAt, requestAt, consentAt = 0, 1, 2
	tx := []types.TransactWriteItem{
		{Update: s.partLinkUpdate(linkID, r.RequestedAt)},
		{Put: s.newItemPut(encodeRequest(linkID, r))},
	}
	if setsConsentRequest(r) {
		u := newUpdate()
		u.set(attrRequestID, str(r.RequestID))
		u.remove(attrLeaseUntil)
		tx = append(tx, types.TransactWriteItem{Update: &types.Update{
			TableName:                 s.table,
			Key:                       consentKey(linkID, r.ConsentID),
			UpdateExpression:          u.expression(),
			ConditionExpression:       aws.String("attribute_exists(" + u.name(attrPK) + ")"),
			ExpressionAttributeNames:  u.namesOrNil(),
			ExpressionAttributeValues: u.valuesOrNil(),
		}})
	}
	reasons, err := s.transact(ctx, tx)
	switch {
	case err != nil:
	case failed(reasons, linkAt):
		err = linkWriteError(reasons[linkAt])
	case failed(reasons, requestAt):
		err = ErrDuplicate
	case failed(reasons, consentAt):
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("record report request %s for link %s: %w", r.RequestID, linkID, err)
	}
	return nil
}

// RecordReport stores a received report's metadata once (ErrDuplicate on a
// repeated ProductReportID) and touches the link, in one transaction. It
// leaves the link's attention entry alone: a report of one consent says
// nothing about the link's other consents, so only the sweep, which reads
// them all, takes the link off the list.
func (s *DynamoStore) RecordReport(ctx context.Context, linkID string, r Report) error {
	if r.ProductReportID == "" {
		return fmt.Errorf("record report for link %s: %w", linkID, ErrEmptyID)
	}
	r.ReceivedAt = stored(orNow(r.ReceivedAt, s.opts.now))
	const linkAt, reportAt = 0, 1
	reasons, err := s.transact(ctx, []types.TransactWriteItem{
		{Update: s.partLinkUpdate(linkID, r.ReceivedAt)},
		{Put: s.newItemPut(encodeReport(linkID, r))},
	})
	switch {
	case err != nil:
	case failed(reasons, linkAt):
		err = linkWriteError(reasons[linkAt])
	case failed(reasons, reportAt):
		err = ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("record report %s for link %s: %w", r.ProductReportID, linkID, err)
	}
	return nil
}

// partLinkUpdate touches a link that must exist and not be purged, before
// a part is added to it; the old item comes back on failure to tell which.
func (s *DynamoStore) partLinkUpdate(linkID string, at time.Time) *types.Update {
	u := newUpdate()
	u.set(attrUpdatedAt, timeValue(at))
	return &types.Update{
		TableName:                           s.table,
		Key:                                 linkKey(linkID),
		UpdateExpression:                    u.expression(),
		ConditionExpression:                 aws.String(fmt.Sprintf("attribute_exists(%s) AND attribute_not_exists(%s)", u.name(attrPK), u.name(attrPurgedAt))),
		ExpressionAttributeNames:            u.namesOrNil(),
		ExpressionAttributeValues:           u.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

func linkWriteError(r types.CancellationReason) error {
	if len(r.Item) == 0 {
		return ErrNotFound
	}
	return ErrPurged
}

func (s *DynamoStore) newItemPut(it item) *types.Put {
	return &types.Put{
		TableName:                s.table,
		Item:                     it,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	}
}

// Purge deletes what the store holds about the link's user (LGPD) and
// returns the link as it was, so the caller can delete the stored reports.
// The link item first becomes a tombstone (dates, the purge's reason and
// the owner, who may still read it), which stops every
// later write to the partition; then the consent, request and report items
// are deleted. Purging again finishes an interrupted purge.
func (s *DynamoStore) Purge(ctx context.Context, linkID string, now time.Time) (*Link, error) {
	u := newUpdate()
	u.setIfNotExists(attrPurgedAt, timeValue(now))
	// A deletion the fintech asked for (RequestDeletion) already set the
	// reason; any other purge is the user's, through Klavi.
	u.setIfNotExists(attrPurgeReason, str(PurgeConsentDeletedByUser))
	u.set(attrUpdatedAt, timeValue(now))
	u.remove(attrTaxID, attrTaxIDType, attrInstitutionCode, attrRedirectURL, attrReportWebhookURL,
		attrExternalInfo, attrOrigin, attrAttn, attrAttnDue, attrWork, attrWorkConsentID, attrWorkAt)
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       linkKey(linkID),
		UpdateExpression:          u.expression(),
		ConditionExpression:       aws.String("attribute_exists(" + u.name(attrPK) + ")"),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
		ReturnValues:              types.ReturnValueAllOld,
	})
	if isConditionFailed(err) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("purge link %s: %w", linkID, err)
	}
	// Read the parts after the tombstone: nothing can be added any more.
	items, err := s.partition(ctx, linkID)
	if err != nil {
		return nil, fmt.Errorf("purge link %s: read parts: %w", linkID, err)
	}
	var parts []item
	for _, it := range items {
		if getS(it, attrSK) != linkSK {
			parts = append(parts, it)
		}
	}
	was, _ := assembleLink(append(parts, out.Attributes))
	if err := s.deleteItems(ctx, parts); err != nil {
		return nil, fmt.Errorf("purge link %s: %w", linkID, err)
	}
	return &was, nil
}

// RequestDeletion records that the fintech asked for the link's deletion
// (DELETE /links/{linkId}) before any of it is done, with one conditional
// update of the link item: PurgeReason becomes PurgeDeletedByRequest, so
// that the purge that finishes it says so, and the link's attention entry
// becomes DeletionRequested due at now, so that the reconciliation sweep
// finishes a deletion left half done. It fails with ErrNotFound or
// ErrPurged; asking again is no error.
func (s *DynamoStore) RequestDeletion(ctx context.Context, linkID string, now time.Time) error {
	if linkID == "" {
		return fmt.Errorf("request deletion: %w", ErrEmptyID)
	}
	u := newUpdate()
	u.set(attrPurgeReason, str(PurgeDeletedByRequest))
	u.set(attrAttn, str(string(DeletionRequested)))
	u.set(attrAttnDue, timeValue(now))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 linkKey(linkID),
		UpdateExpression:                    u.expression(),
		ConditionExpression:                 aws.String(fmt.Sprintf("attribute_exists(%s) AND attribute_not_exists(%s)", u.name(attrPK), u.name(attrPurgedAt))),
		ExpressionAttributeNames:            u.namesOrNil(),
		ExpressionAttributeValues:           u.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		err = ErrNotFound
		if len(ccf.Item) > 0 {
			err = ErrPurged
		}
	}
	if err != nil {
		return fmt.Errorf("request deletion of link %s: %w", linkID, err)
	}
	return nil
}

// ClaimRevoke claims the revocation of the consent at Klavi until
// now+lease, with one conditional update: the consent is AUTHORISED, its
// revocation was not recorded yet and no claim is live. Otherwise it fails
// with ErrNotFound, ErrRevokeRequested, ErrNotAuthorised or ErrLeaseHeld.
func (s *DynamoStore) ClaimRevoke(ctx context.Context, linkID, consentID string, lease time.Duration, now time.Time) error {
	return s.claimConsent(ctx, revokeClaim, linkID, consentID, lease, now)
}

// RecordRevoke records that Klavi accepted the consent's revocation at
// at (kept if already recorded) and ends the claim, with one conditional
// update. It fails with ErrNotFound when the consent is gone (purged).
func (s *DynamoStore) RecordRevoke(ctx context.Context, linkID, consentID string, at time.Time) error {
	u := newUpdate()
	u.setIfNotExists(attrRevokeRequested, timeValue(at))
	u.remove(attrRevokeLease)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       consentKey(linkID, consentID),
		UpdateExpression:          u.expression(),
		ConditionExpression:       aws.String("attribute_exists(" + u.name(attrPK) + ")"),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
	})
	if isConditionFailed(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("record revoke of consent %s/%s: %w", linkID, consentID, err)
	}
	return nil
}

// deleteItems deletes items by key in batches, retrying unprocessed ones.
func (s *DynamoStore) deleteItems(ctx context.Context, items []item) error {
	const batchSize = 25 // the BatchWriteItem limit
	var pending []types.WriteRequest
	for _, it := range items {
		pending = append(pending, types.WriteRequest{DeleteRequest: &types.DeleteRequest{
			Key: item{attrPK: it[attrPK], attrSK: it[attrSK]},
		}})
	}
	for attempt := 1; len(pending) > 0; {
		batch := pending[:min(batchSize, len(pending))]
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{*s.table: batch},
		})
		if err != nil {
			return fmt.Errorf("delete items: %w", err)
		}
		unprocessed := out.UnprocessedItems[*s.table]
		pending = append(pending[len(batch):], unprocessed...)
		if len(unprocessed) == 0 {
			continue
		}
		if attempt++; attempt > batchWriteAttempts {
			return fmt.Errorf("delete items: %d left unprocessed", len(pending))
		}
		if err := sleep(ctx, transactBackoff*time.Duration(attempt)); err != nil {
			return fmt.Errorf("delete items: %w", err)
		}
	}
	return nil
}

// ListAttention returns up to limit links of the kind due before before,
// earliest first; limit <= 0 means all. It reads the sparse attention
// index, which is eventually consistent.
func (s *DynamoStore) ListAttention(ctx context.Context, kind AttentionKind, before time.Time, limit int) ([]Attention, error) {
	in := &dynamodb.QueryInput{
		TableName:              s.table,
		IndexName:              aws.String(AttentionIndex),
		KeyConditionExpression: aws.String("#attn = :kind AND #attnDue < :before"),
		ExpressionAttributeNames: map[string]string{
			"#attn": attrAttn, "#attnDue": attrAttnDue,
		},
		ExpressionAttributeValues: item{":kind": str(string(kind)), ":before": timeValue(before)},
	}
	var out []Attention
	for {
		if limit > 0 {
			in.Limit = aws.Int32(int32(min(limit-len(out), 1000)))
		}
		page, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list attention %s: %w", kind, err)
		}
		for _, it := range page.Items {
			out = append(out, Attention{
				LinkID: strings.TrimPrefix(getS(it, attrPK), linkPrefix),
				Kind:   AttentionKind(getS(it, attrAttn)),
				Due:    getTime(it, attrAttnDue),
			})
		}
		if len(page.LastEvaluatedKey) == 0 || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// ClearAttention takes the link off the reconciliation list, with one
// conditional update, provided its entry is still due at seenDue (the Due
// that ListAttention gave): a consent authorised since then re-armed the
// entry with a later due time, and that entry must stay. It fails with
// ErrAttentionChanged in that case and ErrNotFound for an unknown link; a
// link that has no entry any more is no error.
func (s *DynamoStore) ClearAttention(ctx context.Context, linkID string, seenDue time.Time) error {
	u := newUpdate()
	u.remove(attrAttn, attrAttnDue, attrWork, attrWorkConsentID, attrWorkAt)
	cond := fmt.Sprintf("attribute_exists(%s) AND %s = %s",
		u.name(attrPK), u.name(attrAttnDue), u.value("seenDue", timeValue(seenDue)))
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 linkKey(linkID),
		UpdateExpression:                    u.expression(),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            u.namesOrNil(),
		ExpressionAttributeValues:           u.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// The old item comes with the failure, so telling why needs no read.
		_, armed := ccf.Item[attrAttnDue]
		switch {
		case len(ccf.Item) == 0:
			err = ErrNotFound
		case armed:
			err = ErrAttentionChanged
		default: // already off the list
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("clear attention of link %s: %w", linkID, err)
	}
	return nil
}

// MarkPending leaves a durable mark of work to be done on the link (see
// PendingWork) and puts it on the reconciliation list (PendingWorkDue, due
// at w.At), with one conditional update. A mark for other work than a
// purge leaves a held purge mark, and a purged link, as they are. It fails
// with ErrNotFound for an unknown link.
func (s *DynamoStore) MarkPending(ctx context.Context, linkID string, w PendingWork) error {
	w.At = stored(orNow(w.At, s.opts.now))
	u := newUpdate()
	u.set(attrWork, str(string(w.Work)))
	u.set(attrWorkAt, timeValue(w.At))
	if w.ConsentID != "" {
		u.set(attrWorkConsentID, str(w.ConsentID))
	} else {
		u.remove(attrWorkConsentID)
	}
	u.set(attrAttn, str(string(PendingWorkDue)))
	u.set(attrAttnDue, timeValue(w.At))
	cond := "attribute_exists(" + u.name(attrPK) + ")"
	if w.Work != WorkPurge {
		cond += fmt.Sprintf(" AND attribute_not_exists(%s) AND (attribute_not_exists(%[2]s) OR %[2]s <> %s)",
			u.name(attrPurgedAt), u.name(attrWork), u.value("purge", str(string(WorkPurge))))
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 linkKey(linkID),
		UpdateExpression:                    u.expression(),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            u.namesOrNil(),
		ExpressionAttributeValues:           u.valuesOrNil(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		err = nil // a purge mark held, or the link purged: nothing to add
		if len(ccf.Item) == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("mark %s pending on link %s: %w", w.Work, linkID, err)
	}
	return nil
}

// transact runs a transaction. When it was cancelled because a condition
// failed, it returns the cancellation reasons and no error; a transaction
// that only lost a conflict with a concurrent one is tried again.
func (s *DynamoStore) transact(ctx context.Context, tx []types.TransactWriteItem) ([]types.CancellationReason, error) {
	for attempt := 1; ; attempt++ {
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: tx})
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			if err != nil {
				return nil, fmt.Errorf("transact write: %w", err)
			}
			return nil, nil
		}
		conflict := false
		for i, r := range tce.CancellationReasons {
			if failed(tce.CancellationReasons, i) {
				return tce.CancellationReasons, nil
			}
			conflict = conflict || aws.ToString(r.Code) == codeConflict
		}
		if !conflict || attempt == maxTransactAttempts {
			return nil, fmt.Errorf("transact write: %w", err)
		}
		if err := sleep(ctx, transactBackoff*time.Duration(attempt)); err != nil {
			return nil, fmt.Errorf("transact write: %w", err)
		}
	}
}

// failed reports whether the transaction item at i failed its condition.
func failed(reasons []types.CancellationReason, i int) bool {
	return i < len(reasons) && aws.ToString(reasons[i].Code) == codeConditionFailed
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CheckLink tells whether the link exists and may still receive data, with
// one consistent read of the link item alone (not its parts): nil for an
// active link, ErrNotFound, or ErrPurged for a link whose data was deleted.
func (s *DynamoStore) CheckLink(ctx context.Context, linkID string) error {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 s.table,
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk = :sk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK},
		ExpressionAttributeValues: item{":pk": str(linkPrefix + linkID), ":sk": str(linkSK)},
		ProjectionExpression:      aws.String("#pk, " + attrPurgedAt),
		Limit:                     aws.Int32(1),
	})
	if err != nil {
		return fmt.Errorf("check link %s: %w", linkID, err)
	}
	if len(out.Items) == 0 {
		return fmt.Errorf("check link %s: %w", linkID, ErrNotFound)
	}
	if _, purged := out.Items[0][attrPurgedAt]; purged {
		return fmt.Errorf("check link %s: %w", linkID, ErrPurged)
	}
	return nil
}

// ExternalInfo returns the externalInfo object of the link (nil when it has
// none, or was purged), with one consistent read of that attribute alone,
// so that nothing else of the link item (its tax id) is read.
func (s *DynamoStore) ExternalInfo(ctx context.Context, linkID string) (json.RawMessage, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 s.table,
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk = :sk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK, "#info": attrExternalInfo},
		ExpressionAttributeValues: item{":pk": str(linkPrefix + linkID), ":sk": str(linkSK)},
		ProjectionExpression:      aws.String("#pk, #info"),
		Limit:                     aws.Int32(1),
	})
	if err != nil {
		return nil, fmt.Errorf("get external info of link %s: %w", linkID, err)
	}
	if len(out.Items) == 0 {
		return nil, fmt.Errorf("get external info of link %s: %w", linkID, ErrNotFound)
	}
	if s := getS(out.Items[0], attrExternalInfo); s != "" {
		return json.RawMessage(s), nil
	}
	return nil, nil
}
