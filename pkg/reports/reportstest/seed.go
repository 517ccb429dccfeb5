package reportstest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore/linkstoretest"
)

// The values the report tests seed links with. The tax ids are valid CPF
// and CNPJ numbers, so a test can scan logs and answers for them.
const (
	CPF        = "12345678909"
	CPFMasked  = "123.456.789-09"
	CNPJ       = "11222333000181"
	CNPJMasked = "11.222.333/0001-81"
	WebhookURL = "https://api.example.com/webhooks/klavi/reports"
	// Owner is the JWT sub claim of the events/links-api-*.json fixtures.
	Owner = "user-123"
)

// Start is the time the report tests start at.
var Start = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// PersonalLink is a link Owner created through the API for CPF.
func PersonalLink(id string) linkstore.Link {
	return linkstore.Link{
		LinkID:           id,
		TaxIDType:        linkstore.TaxIDPersonal,
		TaxID:            CPF,
		ReportWebhookURL: WebhookURL,
		ExternalInfo:     json.RawMessage(`{"customerRef":"cus_42"}`),
		Owner:            Owner,
		CreatedAt:        Start.Add(-time.Hour),
		ExpiresAt:        Start.Add(-30 * time.Minute),
	}
}

// Authorised is an AUTHORISED consent at institution.
func Authorised(id, institution string) linkstore.Consent {
	return linkstore.Consent{ConsentID: id, InstitutionCode: institution, Status: klavi.ConsentAuthorised}
}

// Seed stores l and its consents, each set by an event.
func Seed(t *testing.T, s *linkstoretest.MemoryStore, l linkstore.Link, consents ...linkstore.Consent) {
	t.Helper()
	if err := s.CreateLink(t.Context(), l); err != nil {
		t.Fatalf("seed link: %v", err)
	}
	for _, c := range consents {
		SetConsent(t, s, l.LinkID, c)
	}
}

// SetConsent applies a consent event moving c to its status, at
// c.EventTime or Start. At the same time a later lifecycle state wins.
func SetConsent(t *testing.T, s *linkstoretest.MemoryStore, linkID string, c linkstore.Consent) {
	t.Helper()
	at := c.EventTime
	if at.IsZero() {
		at = Start
	}
	out, err := s.ApplyEvent(t.Context(), linkstore.EventChange{
		EventID:         "ev-" + rand.Text(),
		EventName:       "consent_" + strings.ToLower(string(c.Status)),
		EventTime:       at,
		ReceivedAt:      at,
		LinkID:          linkID,
		ConsentID:       c.ConsentID,
		InstitutionCode: c.InstitutionCode,
		ConsentStatus:   c.Status,
	})
	if err != nil || out != linkstore.Applied {
		t.Fatalf("seed consent %s: outcome %q, error %v", c.ConsentID, out, err)
	}
}

// GetLink reads link id or fails t.
func GetLink(t *testing.T, s *linkstoretest.MemoryStore, id string) *linkstore.Link {
	t.Helper()
	l, err := s.GetLink(t.Context(), id)
	if err != nil {
		t.Fatalf("get link %s: %v", id, err)
	}
	return l
}

// CheckNoTaxID fails t when text holds one of the seeded tax ids, bare or
// masked.
func CheckNoTaxID(t *testing.T, where, text string) {
	t.Helper()
	for _, id := range []string{CPF, CPFMasked, CNPJ, CNPJMasked} {
		if strings.Contains(text, id) {
			t.Errorf("%s contains a tax id:\n%s", where, text)
		}
	}
}

// SyncBuffer collects log output from concurrent handlers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
