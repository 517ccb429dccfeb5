package linkstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrCoolingDown: the same manual report request (consent and products)
// was claimed less than its cool-down ago. The error is a *CooldownError,
// which tells until when.
var ErrCoolingDown = errors.New("linkstore: manual request cooling down")

// CooldownError is the failure of ClaimManualRequest while an earlier
// claim runs.
type CooldownError struct {
	// Until is when the earlier claim ends and the request may be made
	// again.
	Until time.Time
}

func (e *CooldownError) Error() string {
	return "linkstore: manual request cooling down until " + formatTime(e.Until)
}

// Is makes a CooldownError match ErrCoolingDown.
func (e *CooldownError) Is(target error) bool { return target == ErrCoolingDown }

// ManualRequestKey names a manual report request for its cool-down: the
// consent and the set of products, in any order and with repeats dropped.
// It is part of a sort key, so it is bounded: the products go in as a
// hash.
func ManualRequestKey(consentID string, products []string) string {
	p := slices.Clone(products)
	slices.Sort(p)
	p = slices.Compact(p)
	sum := sha256.Sum256([]byte(strings.Join(p, ",")))
	return consentID + "#" + hex.EncodeToString(sum[:16])
}

// ClaimManualRequest claims the manual report request of the consent for
// products until now+cooldown, with one conditional write: it fails with a
// *CooldownError (ErrCoolingDown) while an earlier claim of the same
// request runs, ErrPurged for a purged link and ErrNotFound for an unknown
// one. Concurrent callers, whatever instance they run in, get one success.
//
// The claim is its own item in the link's partition (type manual), expired
// by the table's TTL a day after it ends; Purge deletes it with the rest.
func (s *DynamoStore) ClaimManualRequest(ctx context.Context, linkID, consentID string, products []string, cooldown time.Duration, now time.Time) error {
	if linkID == "" || consentID == "" {
		return fmt.Errorf("claim manual request for link %s: %w", linkID, ErrEmptyID)
	}
	now = stored(now)
	until := stored(now.Add(cooldown))
	key := ManualRequestKey(consentID, products)
	it := manualKey(linkID, key)
	it[attrType] = str(ItemTypeManual)
	it[attrLinkID] = str(linkID)
	it[attrConsentID] = str(consentID)
	it[attrUntil] = timeValue(until)
	it[TTLAttribute] = num(until.Add(manualTTLAfter).Unix())
	if len(products) > 0 {
		it[attrProducts] = &types.AttributeValueMemberSS{Value: slices.Compact(slices.Sorted(slices.Values(products)))}
	}
	lu := newUpdate()
	linkCond := fmt.Sprintf("attribute_exists(%s) AND attribute_not_exists(%s)", lu.name(attrPK), lu.name(attrPurgedAt))
	mu := newUpdate()
	claimCond := fmt.Sprintf("attribute_not_exists(%s) OR %s <= %s", mu.name(attrPK), mu.name(attrUntil), mu.value("now", timeValue(now)))
	const linkAt, claimAt = 0, 1
	reasons, err := s.transact(ctx, []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName:                           s.table,
			Key:                                 linkKey(linkID),
			ConditionExpression:                 aws.String(linkCond),
			ExpressionAttributeNames:            lu.namesOrNil(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Put: &types.Put{
			TableName:                           s.table,
			Item:                                it,
			ConditionExpression:                 aws.String(claimCond),
			ExpressionAttributeNames:            mu.namesOrNil(),
			ExpressionAttributeValues:           mu.valuesOrNil(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	})
	switch {
	case err != nil:
	case failed(reasons, linkAt):
		err = linkWriteError(reasons[linkAt])
	case failed(reasons, claimAt):
		// The running claim comes back with the failure; should it not,
		// its end is at most one cool-down away.
		ce := &CooldownError{Until: until}
		if t := getTime(reasons[claimAt].Item, attrUntil); !t.IsZero() {
			ce.Until = t
		}
		err = ce
	}
	if err != nil {
		return fmt.Errorf("claim manual request %s of link %s: %w", key, linkID, err)
	}
	return nil
}

// ReleaseManualRequest ends the claim ClaimManualRequest took until until,
// when the request was not made after all, so that it may be asked again
// at once. A claim that is no longer that one (it ran out and another took
// its place) is left alone; releasing is then a no-op, as it is for a
// claim already gone.
func (s *DynamoStore) ReleaseManualRequest(ctx context.Context, linkID, consentID string, products []string, until time.Time) error {
	key := ManualRequestKey(consentID, products)
	u := newUpdate()
	cond := fmt.Sprintf("%s = %s", u.name(attrUntil), u.value("until", timeValue(stored(until))))
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 s.table,
		Key:                       manualKey(linkID, key),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  u.namesOrNil(),
		ExpressionAttributeValues: u.valuesOrNil(),
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release manual request %s of link %s: %w", key, linkID, err)
	}
	return nil
}

// manualTTLAfter is how long after its end a claim item stays before the
// table's TTL may delete it. Expired claims are never read as running (the
// condition compares until with now), so this only bounds the litter.
const manualTTLAfter = 24 * time.Hour

func manualKey(linkID, name string) item { return key(linkPrefix+linkID, manualPrefix+name) }
