package lambdatest_test

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/lambdatest"
)

const fixture = "./internal/lambdatest/testdata/fixture"

func TestInvoke(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), []string{"FIXTURE_VALUE=from-start"})

	tests := []struct {
		name    string
		payload string
		want    string
		wantErr *lambdatest.InvokeError
	}{
		{
			name:    "result",
			payload: `{"action":"echo","n":1}`,
			want:    `{"action":"echo","n":1}`,
		},
		{
			name:    "env from Start",
			payload: `{"action":"env","name":"FIXTURE_VALUE"}`,
			want:    `"from-start"`,
		},
		{
			name:    "JSON log format by default",
			payload: `{"action":"env","name":"AWS_LAMBDA_LOG_FORMAT"}`,
			want:    `"JSON"`,
		},
		{
			name:    "function name from the binary's directory",
			payload: `{"action":"env","name":"AWS_LAMBDA_FUNCTION_NAME"}`,
			want:    `"fixture"`,
		},
		{
			name:    "handler error",
			payload: `{"action":"error"}`,
			wantErr: &lambdatest.InvokeError{StatusCode: 200, Type: "errorString", Message: "fixture failed on purpose"},
		},
		{
			name:    "panic",
			payload: `{"action":"panic"}`,
			wantErr: &lambdatest.InvokeError{StatusCode: 502, Type: "string", Message: "fixture panicked on purpose"},
		},
		{
			name:    "exit during invocation",
			payload: `{"action":"exit"}`,
			wantErr: &lambdatest.InvokeError{StatusCode: 502, Type: "Runtime.ExitError"},
		},
		{
			name:    "answers again after a crash",
			payload: `{"action":"echo"}`,
			want:    `{"action":"echo"}`,
		},
	}
	for _, tc := range tests {
		// Not parallel: the cases share one emulator, which serves one
		// invocation at a time.
		t.Run(tc.name, func(t *testing.T) {
			got, gotErr := fn.Invoke(t, []byte(tc.payload))
			opts := cmp.Options{cmpopts.IgnoreFields(lambdatest.InvokeError{}, "Body")}
			if tc.wantErr != nil && tc.wantErr.Message == "" {
				// The emulator's own messages carry the request id.
				opts = append(opts, cmpopts.IgnoreFields(lambdatest.InvokeError{}, "Message"))
			}
			if diff := cmp.Diff(tc.wantErr, gotErr, opts); diff != "" {
				t.Fatalf("Invoke error mismatch (-want +got):\n%s\nlogs:\n%s", diff, fn.Logs())
			}
			if tc.wantErr == nil && string(got) != tc.want {
				t.Errorf("Invoke = %s, want %s", got, tc.want)
			}
		})
	}
}

// Not parallel: it sets an environment variable of the test process.
func TestStartDoesNotPassOnTestEnvironment(t *testing.T) {
	t.Setenv("LAMBDATEST_PARENT_ONLY", "leaked")
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), nil)

	got, err := fn.Invoke(t, []byte(`{"action":"env","name":"LAMBDATEST_PARENT_ONLY"}`))

	if err != nil {
		t.Fatalf("Invoke error = %v", err)
	}
	if string(got) != `""` {
		t.Errorf("function saw LAMBDATEST_PARENT_ONLY = %s, want it unset", got)
	}
}

func TestInvokeTimeout(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), []string{"AWS_LAMBDA_FUNCTION_TIMEOUT=1"})

	_, gotErr := fn.Invoke(t, []byte(`{"action":"hang"}`))

	if gotErr == nil || gotErr.Type != "Sandbox.Timedout" || gotErr.StatusCode != 200 {
		t.Fatalf("Invoke error = %#v, want a Sandbox.Timedout error with status 200", gotErr)
	}
}

func TestInvokeFailedInit(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), []string{"FIXTURE_FAIL_INIT=1"})

	_, gotErr := fn.Invoke(t, []byte(`{"action":"echo"}`))

	want := &lambdatest.InvokeError{StatusCode: 502}
	if diff := cmp.Diff(want, gotErr, cmpopts.IgnoreFields(lambdatest.InvokeError{}, "Body")); diff != "" {
		t.Fatalf("Invoke error mismatch (-want +got):\n%s", diff)
	}
	fn.Stop()
	if got, want := fn.Logs(), "fixture: failing init on purpose"; !strings.Contains(got, want) {
		t.Errorf("Logs() = %q, want it to contain %q", got, want)
	}
}

func TestInvokeFile(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), nil)
	payload := `{"action":"echo","from":"file"}`
	abs := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(abs, []byte(payload), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(lambdatest.ModuleRoot(t), abs)
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{abs, rel} {
		got, gotErr := fn.InvokeFile(t, path)
		if gotErr != nil {
			t.Fatalf("InvokeFile(%s) error = %v", path, gotErr)
		}
		if string(got) != payload {
			t.Errorf("InvokeFile(%s) = %s, want %s", path, got, payload)
		}
	}
}

func TestLogsHoldTheInvocationsLines(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), nil)

	if _, err := fn.Invoke(t, []byte(`{"action":"echo"}`)); err != nil {
		t.Fatalf("Invoke error = %v", err)
	}

	// No Stop first: the lines must be there as soon as Invoke returns.
	var record map[string]any
	for line := range strings.SplitSeq(fn.Logs(), "\n") {
		if strings.Contains(line, "fixture invoked") {
			if err := json.Unmarshal([]byte(line), &record); err != nil {
				t.Fatalf("log line %q is not JSON: %v", line, err)
			}
		}
	}
	if record == nil {
		t.Fatalf("Logs() = %q, want a line with the function's log record", fn.Logs())
	}
	if got, want := record["action"], "echo"; got != want {
		t.Errorf("log record action = %v, want %v", got, want)
	}
	if got, _ := record["requestId"].(string); got == "" {
		t.Errorf("log record requestId = %q, want the invocation's id", got)
	}
}

func TestStopEndsEmulatorAndFunction(t *testing.T) {
	t.Parallel()
	fn := lambdatest.Start(t, lambdatest.Build(t, fixture), nil)
	out, ierr := fn.Invoke(t, []byte(`{"action":"pid"}`))
	if ierr != nil {
		t.Fatalf("Invoke error = %v", ierr)
	}
	pid, err := strconv.Atoi(string(out))
	if err != nil {
		t.Fatalf("Invoke = %s, want a pid", out)
	}
	if !running(pid) {
		t.Fatalf("function process %d not running before Stop", pid)
	}

	fn.Stop()
	fn.Stop() // a second Stop, like the one at cleanup, is harmless

	if running(pid) {
		t.Errorf("function process %d still running after Stop", pid)
	}
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestEmulatorsRunSideBySide(t *testing.T) {
	t.Parallel()
	bin := lambdatest.Build(t, fixture)
	a := lambdatest.Start(t, bin, []string{"FIXTURE_VALUE=a"})
	b := lambdatest.Start(t, bin, []string{"FIXTURE_VALUE=b"})

	for want, fn := range map[string]*lambdatest.Function{`"a"`: a, `"b"`: b} {
		got, err := fn.Invoke(t, []byte(`{"action":"env","name":"FIXTURE_VALUE"}`))
		if err != nil {
			t.Fatalf("Invoke error = %v", err)
		}
		if string(got) != want {
			t.Errorf("Invoke = %s, want %s", got, want)
		}
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	first := lambdatest.Build(t, fixture)
	second := lambdatest.Build(t, fixture)
	if first != second {
		t.Errorf("second Build = %s, want the cached %s", second, first)
	}
	if got, want := filepath.Base(first), "bootstrap"; got != want {
		t.Errorf("binary name = %s, want %s", got, want)
	}

	lambda := lambdatest.BuildFor(t, lambdatest.Lambda(), fixture)[0]
	f, err := elf.Open(lambda)
	if err != nil {
		t.Fatalf("open Lambda binary: %v", err)
	}
	defer f.Close()
	if got, want := f.Machine, elf.EM_AARCH64; got != want {
		t.Errorf("Lambda binary machine = %v, want %v", got, want)
	}
	// -ldflags=-s strips the symbol table.
	if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		t.Errorf("Lambda binary Symbols() error = %v, want %v", err, elf.ErrNoSymbols)
	}
}

func TestBuildFailure(t *testing.T) {
	awstest.SkipShort(t, "go build")
	t.Parallel()
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		lambdatest.Build(ft, "./internal/lambdatest/testdata/does-not-exist")
	}()
	<-done
	if !ft.failed {
		t.Fatal("Build of a missing package did not fail the test")
	}
}

// fatalRecorder records Fatal instead of ending the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatal(args ...any) {
	f.failed = true
	runtime.Goexit()
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	runtime.Goexit()
}
