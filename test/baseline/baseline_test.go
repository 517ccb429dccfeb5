package main

import (
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

// TestBaselineUnderEmulator proves the yardstick builds and answers under
// the Runtime Interface Emulator, so the bars measured against it mean
// something.
func TestBaselineUnderEmulator(t *testing.T) {
	fn := lambdatest.Start(t, lambdatest.Build(t, "./test/baseline"), nil)

	got, err := fn.Invoke(t, []byte(`{}`))

	if err != nil {
		t.Fatalf("Invoke error = %v\nlogs:\n%s", err, fn.Logs())
	}
	if want := `"ok"`; string(got) != want {
		t.Errorf("Invoke = %s, want %s", got, want)
	}
}
