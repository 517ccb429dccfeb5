package lambdatest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	invokePath = "/2015-03-31/functions/function/invocations"

	// defaultFunctionTimeout replaces the emulator's 300 s, so a hung
	// function fails its test in reasonable time.
	defaultFunctionTimeout = 30

	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	// endLineTimeout bounds the wait for the emulator's END line after an
	// answer; it only orders the log, an answer never depends on it.
	endLineTimeout = 5 * time.Second
	startAttempts  = 3
)

// Function is one emulator process serving one function binary.
type Function struct {
	name      string
	invokeURL string
	cmd       *exec.Cmd
	exited    chan struct{} // closed once the emulator has exited and its output is drained
	logs      *logBuffer
	client    *http.Client
	stopOnce  sync.Once
}

// Start runs binary under the emulator on free 127.0.0.1 ports and returns
// once the emulator accepts connections; the function itself starts on the
// first invocation. env (KEY=value) is added to a fixed base environment:
// AWS_LAMBDA_FUNCTION_NAME (the binary's directory name),
// AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_FUNCTION_TIMEOUT=30, AWS_REGION and
// AWS_DEFAULT_REGION=us-east-1, dummy AWS credentials,
// AWS_EC2_METADATA_DISABLED=true, TZ=:UTC and PATH; env wins over the base.
// The emulator is stopped when the test ends.
func Start(t testing.TB, binary string, env []string) *Function {
	t.Helper()
	rie := RIEPath(t)
	abs, err := filepath.Abs(binary)
	if err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	name := filepath.Base(filepath.Dir(abs))
	fullEnv := environment(name, env)
	timeout := defaultFunctionTimeout
	for _, kv := range fullEnv {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_FUNCTION_TIMEOUT="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				timeout = n
			}
		}
	}

	var failures []string
	for range startAttempts {
		f, err := launch(rie, abs, name, fullEnv)
		if err == nil {
			f.client = &http.Client{
				Timeout: time.Duration(timeout)*time.Second + 10*time.Second,
				// A fresh connection per invocation: nothing is left behind
				// in the test process when the emulator stops.
				Transport: &http.Transport{DisableKeepAlives: true},
			}
			t.Cleanup(f.Stop)
			return f
		}
		// Most likely a port taken between choosing and binding it.
		failures = append(failures, err.Error())
	}
	t.Fatalf("start %s under the emulator: %s", name, strings.Join(failures, "\n---\n"))
	return nil
}

func launch(rie, binary, name string, env []string) (*Function, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	rieAddr := net.JoinHostPort("127.0.0.1", ports[0])
	runtimeAddr := net.JoinHostPort("127.0.0.1", ports[1])

	logs := newLogBuffer()
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", rieAddr,
		"--runtime-api-address", runtimeAddr,
		binary)
	cmd.Dir = filepath.Dir(binary)
	cmd.Env = env
	// One writer for both streams: a single pipe keeps the emulator's and
	// the function's lines in the order they were written.
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The runtime inherits the emulator's stdout; should it outlive the
	// emulator, Wait must not block on the pipe it holds.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run emulator: %w", err)
	}
	f := &Function{
		name:      name,
		invokeURL: "http://" + rieAddr + invokePath,
		cmd:       cmd,
		exited:    make(chan struct{}),
		logs:      logs,
	}
	go func() {
		_ = cmd.Wait()
		close(f.exited)
	}()
	if err := f.waitReady(rieAddr, runtimeAddr); err != nil {
		f.Stop()
		return nil, fmt.Errorf("%w\n%s", err, f.Logs())
	}
	return f, nil
}

// waitReady waits until both of the emulator's ports accept connections.
func (f *Function) waitReady(addrs ...string) error {
	deadline := time.Now().Add(readyTimeout)
	for _, addr := range addrs {
		for {
			select {
			case <-f.exited:
				return fmt.Errorf("emulator exited before listening on %s", addr)
			default:
			}
			conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("emulator not listening on %s after %s: %w", addr, readyTimeout, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// environment is the emulator's whole environment. It is built from scratch
// because the emulator hands all of it to the function.
func environment(name string, extra []string) []string {
	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"TZ=:UTC",
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(defaultFunctionTimeout),
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true",
	}
	index := map[string]int{}
	var env []string
	for _, kv := range append(base, extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	return env
}

// Invoke sends payload as one invocation and returns the function's result.
// An answer that is not a result (an error the handler returned, a panic, a
// crash, a failed init, a timeout) comes back as an InvokeError; failing to
// reach the emulator fails the test.
func (f *Function) Invoke(t testing.TB, payload []byte) ([]byte, *InvokeError) {
	t.Helper()
	id := requestID()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.invokeURL, bytes.NewReader(payload))
	if err != nil {
		t.Fatalf("invoke %s: %v", f.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amzn-RequestId", id)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("invoke %s: %v\nlogs:\n%s", f.name, err, tail(f.Logs()))
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("invoke %s: read answer: %v", f.name, err)
	}
	if resp.StatusCode == http.StatusOK {
		// The function wrote its lines before it answered and the emulator
		// prints END after the answer, on the same pipe: once END is in the
		// buffer, so is every line of this invocation.
		f.logs.waitFor("END RequestId: "+id, endLineTimeout)
	}
	if ierr := classify(resp.StatusCode, body); ierr != nil {
		return nil, ierr
	}
	return body, nil
}

// InvokeFile invokes the function with the content of a JSON file, such as
// events/links-api-post.json. A relative path is relative to the module
// root.
func (f *Function) InvokeFile(t testing.TB, path string) ([]byte, *InvokeError) {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(ModuleRoot(t), path)
	}
	payload, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("invoke %s: %v", f.name, err)
	}
	return f.Invoke(t, payload)
}

// Logs returns what the emulator and the function have written so far. Every
// line of an invocation answered with a result or a handler error is in it
// when Invoke returns; after Stop, everything is.
func (f *Function) Logs() string { return f.logs.String() }

// Stop ends the emulator and the function. It is safe to call more than once
// and is called when the test ends.
func (f *Function) Stop() {
	f.stopOnce.Do(func() {
		pid := f.cmd.Process.Pid
		// The emulator kills the runtime itself on SIGTERM.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-f.exited:
			return
		case <-time.After(stopTimeout):
		}
		// The runtime has a process group of its own: end it explicitly.
		for _, child := range childPIDs(pid) {
			_ = syscall.Kill(-child, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-f.exited
	})
}

// childPIDs lists the direct children of pid (Linux /proc); elsewhere it
// finds none.
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

func freePorts(n int) ([]string, error) {
	ports := make([]string, 0, n)
	// Keep every listener open until all ports are chosen, so they differ.
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		_, port, err := net.SplitHostPort(l.Addr().String())
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// requestID returns a random id in the UUID layout the emulator uses.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: it crashes the program instead
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// tail keeps failure messages readable when the log is long.
func tail(s string) string {
	const limit = 8 << 10
	if len(s) <= limit {
		return s
	}
	return "...\n" + s[len(s)-limit:]
}
