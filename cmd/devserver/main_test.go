package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

// binary is the command built by TestMain, or why it could not be built.
// It is written once before any test runs and only read afterwards.
// binary is the command as `go build` made it, built once by the first
// system test that runs it.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := awstest.Main(m)
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// build returns the command as `go build` made it. Tests that run the
// command are system tests: skipped under -short.
func build(t *testing.T) string {
	t.Helper()
	awstest.SkipShort(t, "the built devserver command")
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "devserver-test-")
		if err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		binary.path = filepath.Join(dir, "devserver")
		if out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a running devserver and the demo page URL it printed.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan error
}

// start runs the command with env (and nothing else of this process's
// environment but PATH and HOME) in a scratch directory, and waits for the
// URL it prints. The process is killed and reaped when the test ends; stop
// ends it the way Ctrl-C does.
func start(t *testing.T, bin string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start devserver: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a no-op once stop has reaped it
		<-p.done
	})

	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "demo page"); ok {
				urls <- strings.TrimSuffix(strings.TrimSpace(u), "/")
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case p.url = <-urls:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("devserver exited before printing its URL: %v\n%s", err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("devserver printed no URL in time\n%s", p.stderr.String())
	}
	return p
}

// stop interrupts the process as Ctrl-C does and checks that it exits
// cleanly.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("interrupt: %v", err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("devserver exit after SIGINT: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("devserver did not stop after SIGINT\n%s", p.stderr.String())
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func TestRunServesDemoPage(t *testing.T) {
	p := start(t, build(t), "SEED=7")
	status, page := get(t, p.url+"/")
	if status != http.StatusOK || !bytes.Contains(page, []byte("Klavi Link — local demo")) {
		t.Errorf("GET / = %d, want the demo page", status)
	}
	status, body := get(t, p.url+"/dev/info")
	var info struct {
		Klavi      string `json:"klavi"`
		LinkStore  string `json:"linkStore"`
		ChangeFeed bool   `json:"changeFeed"`
	}
	if err := json.Unmarshal(body, &info); err != nil || status != http.StatusOK {
		t.Fatalf("GET /dev/info = %d %s: %v", status, body, err)
	}
	if info.Klavi != "simulator" || info.LinkStore != "memory" || !info.ChangeFeed {
		t.Errorf("info = %+v, want the embedded defaults", info)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "stopping") {
		t.Errorf("stderr = %s, want the stop message", p.stderr.String())
	}
}

func TestRunWithAWSParts(t *testing.T) {
	env := append(awstest.Env(t),
		"LINKS_TABLE="+awstest.Name(t, "links"),
		"REPORTS_BUCKET="+awstest.Name(t, "reports"),
	)
	p := start(t, build(t), env...)
	status, body := get(t, p.url+"/dev/info")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"linkStore":"dynamodb:`)) || !bytes.Contains(body, []byte(`"reportStore":"s3:`)) {
		t.Errorf("GET /dev/info = %d %s, want the table and bucket in use", status, body)
	}
	if status, _ := get(t, p.url+"/"); status != http.StatusOK {
		t.Errorf("GET / = %d, want 200", status)
	}
	p.stop(t)
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), build(t), "-addr", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KLAVI_BASE_URL=https://api-sandbox.klavi.ai"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit = %v, want status 1", err)
	}
	if !bytes.Contains(out, []byte("KLAVI_ACCESS_KEY")) {
		t.Errorf("output = %s, want it to say which variables are missing", out)
	}
}
