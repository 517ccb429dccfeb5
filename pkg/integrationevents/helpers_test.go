package integrationevents

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// fixtureTaxID is the CPF on the link item of events/integration-events-stream.json.
const fixtureTaxID = "52998224725"

func loadFixture(t *testing.T) events.DynamoDBEvent {
	t.Helper()
	raw, err := os.ReadFile("../../events/integration-events-stream.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("decode fixture: %v", err)
	}
	return ev
}

// personalData are the shapes of what no event may carry: tax ids (bare
// and masked CPF and CNPJ), e-mail addresses, Brazilian phone numbers,
// tokens and report content.
var personalData = map[string]*regexp.Regexp{
	"CPF":          regexp.MustCompile(`\b\d{11}\b|\d{3}\.\d{3}\.\d{3}-\d{2}`),
	"CNPJ":         regexp.MustCompile(`\b[0-9A-Z]{12}\d{2}\b|\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}`),
	"e-mail":       regexp.MustCompile(`[^\s"@]+@[^\s"@]+\.[a-zA-Z]{2,}`),
	"phone":        regexp.MustCompile(`\+55|\(\d{2}\)\s?9?\d{4}-?\d{4}`),
	"token":        regexp.MustCompile(`(?i)token|secret|accessKey|bearer`),
	"report field": regexp.MustCompile(`(?i)"(transactions|balance|accounts|taxId|personalTaxId|businessTaxId|email|phone)"`),
}

// checkNoPersonalData fails t when an event's detail looks like it carries
// personal data, or carries any of the given values.
func checkNoPersonalData(t *testing.T, detail string, values ...string) {
	t.Helper()
	for what, re := range personalData {
		if m := re.FindString(detail); m != "" {
			t.Errorf("event detail carries what looks like a %s (%q): %s", what, m, detail)
		}
	}
	for _, v := range values {
		if v != "" && regexp.MustCompile(regexp.QuoteMeta(v)).MatchString(detail) {
			t.Errorf("event detail carries %q: %s", v, detail)
		}
	}
}
