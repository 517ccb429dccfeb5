package linkstore

import (
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
)

// Key prefixes and sort keys; see doc.go for the layout.
const (
	linkPrefix    = "LINK#"
	eventPrefix   = "EVENT#"
	consentPrefix = "CONSENT#"
	requestPrefix = "REQUEST#"
	reportPrefix  = "REPORT#"
	manualPrefix  = "MANUAL#"
	linkSK        = "#LINK"
	eventSK       = "#EVENT"
)

// Item types, the value of the "type" attribute.
const (
	ItemTypeLink    = "link"
	ItemTypeConsent = "consent"
	ItemTypeRequest = "request"
	ItemTypeReport  = "report"
	ItemTypeEvent   = "event"
	ItemTypeManual  = "manual" // a manual report request's cool-down
)

// Attribute names. Every expression refers to them through expression
// attribute names, so DynamoDB reserved words (status, type, ttl) are safe.
const (
	attrPK               = "pk"
	attrSK               = "sk"
	attrType             = "type"
	attrLinkID           = "linkId"
	attrTaxIDType        = "taxIdType"
	attrTaxID            = "taxId"
	attrInstitutionCode  = "institutionCode"
	attrRedirectURL      = "redirectUrl"
	attrReportWebhookURL = "reportWebhookUrl"
	attrExternalInfo     = "externalInfo"
	attrOrigin           = "origin"
	attrOwner            = "owner"
	attrExpiresAt        = "expiresAt"
	attrCreatedAt        = "createdAt"
	attrUpdatedAt        = "updatedAt"
	attrPurgedAt         = "purgedAt"
	attrPurgeReason      = "purgeReason"
	attrAttn             = "attn"
	attrAttnDue          = "attnDue"
	attrConsentID        = "consentId"
	attrStatus           = "status"
	attrEventTime        = "eventTime"
	attrEventRank        = "eventRank"
	attrRequestID        = "requestId"
	attrLeaseUntil       = "leaseUntil"
	attrRevokeRequested  = "revokeRequestedAt"
	attrRevokeLease      = "revokeLeaseUntil"
	attrProducts         = "products"
	attrRequestedAt      = "requestedAt"
	attrTrigger          = "trigger"
	attrProductReportID  = "productReportId"
	attrProductName      = "productName"
	attrObjectKey        = "objectKey"
	attrCode             = "code"
	attrBytes            = "bytes"
	attrSHA256           = "sha256"
	attrReceivedAt       = "receivedAt"
	attrEventName        = "eventName"
	attrRawEventTime     = "rawEventTime"
	attrWork             = "work"
	attrWorkConsentID    = "workConsentId"
	attrWorkAt           = "workAt"
	attrUntil            = "until"
)

type item = map[string]types.AttributeValue

func linkKey(linkID string) item { return key(linkPrefix+linkID, linkSK) }
func consentKey(linkID, consentID string) item {
	return key(linkPrefix+linkID, consentPrefix+consentID)
}

func key(pk, sk string) item { return item{attrPK: str(pk), attrSK: str(sk)} }

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func timeValue(t time.Time) types.AttributeValue { return str(formatTime(t)) }

// putIf adds a string attribute to it when s is not empty: the store never
// writes empty strings, so "absent" and "empty" are one state.
func putIf(it item, name, s string) {
	if s != "" {
		it[name] = str(s)
	}
}

func getS(it item, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(it item, name string) int64 {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// getTime reads a time written by formatTime; anything else reads as zero.
func getTime(it item, name string) time.Time {
	t, err := time.Parse(timeLayout, getS(it, name))
	if err != nil {
		return time.Time{}
	}
	return t
}

func getStrings(it item, name string) []string {
	l, ok := it[name].(*types.AttributeValueMemberL)
	if !ok || len(l.Value) == 0 {
		return nil
	}
	out := make([]string, 0, len(l.Value))
	for _, v := range l.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			out = append(out, s.Value)
		}
	}
	return out
}

func decodeLink(it item) Link {
	l := Link{
		LinkID:           getS(it, attrLinkID),
		TaxIDType:        normalizeTaxIDType(TaxIDType(getS(it, attrTaxIDType))),
		TaxID:            getS(it, attrTaxID),
		InstitutionCode:  getS(it, attrInstitutionCode),
		RedirectURL:      getS(it, attrRedirectURL),
		ReportWebhookURL: getS(it, attrReportWebhookURL),
		Origin:           getS(it, attrOrigin),
		Owner:            getS(it, attrOwner),
		ExpiresAt:        getTime(it, attrExpiresAt),
		CreatedAt:        getTime(it, attrCreatedAt),
		UpdatedAt:        getTime(it, attrUpdatedAt),
		PurgedAt:         getTime(it, attrPurgedAt),
		PurgeReason:      getS(it, attrPurgeReason),
		Pending: PendingWork{
			Work:      Work(getS(it, attrWork)),
			ConsentID: getS(it, attrWorkConsentID),
			At:        getTime(it, attrWorkAt),
		},
	}
	if s := getS(it, attrExternalInfo); s != "" {
		l.ExternalInfo = []byte(s)
	}
	return l
}

func decodeConsent(it item) Consent {
	return Consent{
		ConsentID:       getS(it, attrConsentID),
		InstitutionCode: getS(it, attrInstitutionCode),
		Status:          klavi.ConsentStatus(getS(it, attrStatus)),
		EventTime:       getTime(it, attrEventTime),
		UpdatedAt:       getTime(it, attrUpdatedAt),
		RequestID:       getS(it, attrRequestID),
		LeaseUntil:      getTime(it, attrLeaseUntil),

		RevokeRequestedAt: getTime(it, attrRevokeRequested),
		RevokeLeaseUntil:  getTime(it, attrRevokeLease),
	}
}

func encodeRequest(linkID string, r ReportRequest) item {
	it := key(linkPrefix+linkID, requestPrefix+r.RequestID)
	it[attrType] = str(ItemTypeRequest)
	it[attrLinkID] = str(linkID)
	it[attrRequestID] = str(r.RequestID)
	putIf(it, attrConsentID, r.ConsentID)
	putIf(it, attrInstitutionCode, r.InstitutionCode)
	if len(r.Products) > 0 {
		products := make([]types.AttributeValue, len(r.Products))
		for i, p := range r.Products {
			products[i] = str(p)
		}
		it[attrProducts] = &types.AttributeValueMemberL{Value: products}
	}
	it[attrRequestedAt] = timeValue(r.RequestedAt)
	putIf(it, attrTrigger, r.Trigger)
	return it
}

func decodeRequest(it item) ReportRequest {
	return ReportRequest{
		RequestID:       getS(it, attrRequestID),
		ConsentID:       getS(it, attrConsentID),
		InstitutionCode: getS(it, attrInstitutionCode),
		Products:        getStrings(it, attrProducts),
		RequestedAt:     getTime(it, attrRequestedAt),
		Trigger:         getS(it, attrTrigger),
	}
}

func encodeReport(linkID string, r Report) item {
	it := key(linkPrefix+linkID, reportPrefix+r.ProductReportID)
	it[attrType] = str(ItemTypeReport)
	it[attrLinkID] = str(linkID)
	it[attrProductReportID] = str(r.ProductReportID)
	putIf(it, attrProductName, r.ProductName)
	putIf(it, attrRequestID, r.RequestID)
	putIf(it, attrObjectKey, r.ObjectKey)
	it[attrCode] = num(int64(r.Code))
	it[attrBytes] = num(r.Bytes)
	putIf(it, attrSHA256, r.SHA256)
	it[attrReceivedAt] = timeValue(r.ReceivedAt)
	return it
}

func decodeReport(it item) Report {
	return Report{
		ProductReportID: getS(it, attrProductReportID),
		ProductName:     getS(it, attrProductName),
		RequestID:       getS(it, attrRequestID),
		ObjectKey:       getS(it, attrObjectKey),
		Code:            int(getN(it, attrCode)),
		Bytes:           getN(it, attrBytes),
		SHA256:          getS(it, attrSHA256),
		ReceivedAt:      getTime(it, attrReceivedAt),
	}
}

func encodeEventMarker(e EventChange) item {
	it := key(eventPrefix+e.EventID, eventSK)
	it[attrType] = str(ItemTypeEvent)
	putIf(it, attrEventName, e.EventName)
	putIf(it, attrLinkID, e.LinkID)
	putIf(it, attrRawEventTime, e.RawEventTime)
	it[attrReceivedAt] = timeValue(e.ReceivedAt)
	if e.IsUnplacedDeletion() {
		// Kept for good, with the consent it names, for an operator: a
		// deletion nobody could apply must not expire unnoticed.
		putIf(it, attrConsentID, e.ConsentID)
		return it
	}
	it[TTLAttribute] = num(e.ReceivedAt.Add(e.EventTTL).Unix())
	return it
}

// assembleLink builds a link from the items of its partition; ok is false
// when the link item itself is missing.
func assembleLink(items []item) (l Link, ok bool) {
	var parts Link
	for _, it := range items {
		sk := getS(it, attrSK)
		switch {
		case sk == linkSK:
			l, ok = decodeLink(it), true
		case strings.HasPrefix(sk, consentPrefix):
			parts.Consents = append(parts.Consents, decodeConsent(it))
		case strings.HasPrefix(sk, requestPrefix):
			parts.ReportRequests = append(parts.ReportRequests, decodeRequest(it))
		case strings.HasPrefix(sk, reportPrefix):
			parts.Reports = append(parts.Reports, decodeReport(it))
		}
	}
	l.Consents, l.ReportRequests, l.Reports = parts.Consents, parts.ReportRequests, parts.Reports
	sortParts(&l)
	return l, ok
}

// update builds an update expression together with the condition that goes
// with it, sharing one set of attribute names and values.
type update struct {
	sets    []string
	removes []string
	names   map[string]string
	values  map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// name returns the placeholder of an attribute name.
func (u *update) name(attr string) string {
	u.names["#"+attr] = attr
	return "#" + attr
}

// value returns the placeholder of a value; placeholders are named by the
// caller so that one value can serve both the update and the condition.
func (u *update) value(placeholder string, v types.AttributeValue) string {
	u.values[":"+placeholder] = v
	return ":" + placeholder
}

func (u *update) set(attr string, v types.AttributeValue) {
	u.sets = append(u.sets, u.name(attr)+" = "+u.value(attr, v))
}

func (u *update) setIfNotExists(attr string, v types.AttributeValue) {
	n := u.name(attr)
	u.sets = append(u.sets, n+" = if_not_exists("+n+", "+u.value(attr, v)+")")
}

func (u *update) remove(attrs ...string) {
	for _, a := range attrs {
		u.removes = append(u.removes, u.name(a))
	}
}

func (u *update) expression() *string {
	var parts []string
	if len(u.sets) > 0 {
		parts = append(parts, "SET "+strings.Join(u.sets, ", "))
	}
	if len(u.removes) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(u.removes, ", "))
	}
	return aws.String(strings.Join(parts, " "))
}

// valuesOrNil avoids sending an empty map, which DynamoDB rejects.
func (u *update) valuesOrNil() map[string]types.AttributeValue {
	if len(u.values) == 0 {
		return nil
	}
	return u.values
}

func (u *update) namesOrNil() map[string]string {
	if len(u.names) == 0 {
		return nil
	}
	return u.names
}
