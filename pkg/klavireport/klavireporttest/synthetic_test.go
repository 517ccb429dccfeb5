package klavireporttest_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/pkg/klavireport/klavireporttest"
)

func TestSyntheticDeterministic(t *testing.T) {
	a := klavireporttest.Synthetic(64<<10, 42, "pf_checking_account")
	b := klavireporttest.Synthetic(64<<10, 42, "pf_checking_account")
	if !bytes.Equal(a, b) {
		t.Errorf("Synthetic() with equal arguments gave different bodies")
	}
	if c := klavireporttest.Synthetic(64<<10, 43, "pf_checking_account"); bytes.Equal(a, c) {
		t.Errorf("Synthetic() with different seeds gave equal bodies")
	}
}

func TestSyntheticSize(t *testing.T) {
	for _, size := range []int{64 << 10, 1 << 20} {
		body := klavireporttest.Synthetic(size, 1, "")
		if !json.Valid(body) {
			t.Fatalf("Synthetic(%d) is not valid JSON", size)
		}
		if got, slack := len(body), size/50; got < size-slack || got > size+slack {
			t.Errorf("len(Synthetic(%d)) = %d, want within %d bytes", size, got, slack)
		}
	}
}

func TestSyntheticTiny(t *testing.T) {
	body := klavireporttest.Synthetic(0, 1, "")
	got := decodeAccounts(t, body)
	if len(got.CheckingAccounts) == 0 || len(got.CheckingAccounts[0].TransactionDetails) == 0 {
		t.Errorf("Synthetic(0) has no transaction, want at least one")
	}
}

// TestSyntheticShape checks what the envelope reader and stores rely on:
// canonical pretty-printing, checkingAccounts with transactionDetails whose
// amounts are decimal strings, and a CPF with valid check digits.
func TestSyntheticShape(t *testing.T) {
	body := klavireporttest.Synthetic(256<<10, 9, "")
	var canonical bytes.Buffer
	if err := json.Indent(&canonical, body, "", "  "); err != nil {
		t.Fatalf("json.Indent() error = %v", err)
	}
	if !bytes.Equal(canonical.Bytes(), body) {
		t.Errorf("Synthetic() is not pretty-printed with two-space indentation")
	}

	got := decodeAccounts(t, body)
	if got.ProductName != "pf_categorized_checking_l3" {
		t.Errorf("productName = %q, want the default pf_categorized_checking_l3", got.ProductName)
	}
	if !validCPF(got.EnquiryCpf) {
		t.Errorf("enquiryCpf = %q, want a CPF with valid check digits", got.EnquiryCpf)
	}
	amountRE := regexp.MustCompile(`^\d+\.\d{2}(\d{2})?$`)
	n := 0
	for _, acc := range got.CheckingAccounts {
		for _, txn := range acc.TransactionDetails {
			n++
			if !amountRE.MatchString(txn.TransactionAmount.Amount) {
				t.Fatalf("transaction amount = %q, want a decimal string", txn.TransactionAmount.Amount)
			}
			if txn.TransactionAmount.Currency != "BRL" {
				t.Fatalf("currency = %q, want BRL", txn.TransactionAmount.Currency)
			}
		}
	}
	if n < 100 {
		t.Errorf("256 KiB report has %d transactions, want at least 100", n)
	}
	last := bytes.LastIndex(body, []byte(`"externalInfo"`))
	if accounts := bytes.Index(body, []byte(`"checkingAccounts"`)); last < accounts {
		t.Errorf("externalInfo at byte %d comes before checkingAccounts at %d, want it last", last, accounts)
	}
}

func TestSyntheticWithInvalidExternalInfoPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("SyntheticWith() with invalid ExternalInfo did not panic")
		}
	}()
	klavireporttest.SyntheticWith(klavireporttest.SyntheticOptions{ExternalInfo: json.RawMessage(`{`)})
}

type syntheticReport struct {
	ProductName      string `json:"productName"`
	EnquiryCpf       string `json:"enquiryCpf"`
	CheckingAccounts []struct {
		TransactionDetails []struct {
			TransactionAmount struct {
				Amount   string `json:"amount"`
				Currency string `json:"currency"`
			} `json:"transactionAmount"`
		} `json:"transactionDetails"`
	} `json:"checkingAccounts"`
}

func decodeAccounts(t *testing.T, body []byte) syntheticReport {
	t.Helper()
	var r syntheticReport
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode synthetic report: %v", err)
	}
	return r
}

func validCPF(s string) bool {
	if len(s) != 11 {
		return false
	}
	d := make([]int, 11)
	for i := range s {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		d[i] = int(s[i] - '0')
	}
	for n := 9; n <= 10; n++ {
		sum := 0
		for i := range n {
			sum += d[i] * (n + 1 - i)
		}
		if sum*10%11%10 != d[n] {
			return false
		}
	}
	return true
}
