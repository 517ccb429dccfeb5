// Package awstest runs the AWS emulator (moto_server) for integration tests
// and hands out SDK configurations that talk to it over real HTTP on
// 127.0.0.1.
//
// One emulator serves a whole test binary: call Main from TestMain, then
// Config from each test that needs AWS.
//
//	func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }
//
// moto keeps each table in memory and, when a TransactWriteItems call fails,
// restores a copy of the whole table taken when the call began; two
// transactions running at once in its threaded server can therefore undo each
// other's writes, which DynamoDB's serializable transactions never do. The
// harness runs moto's own server application behind a lock so requests are
// served one at a time: concurrent tests then see DynamoDB's isolation.
//
// Tests that need the emulator are system tests: under `go test -short` (the
// inner loop) they are skipped and the emulator is not started; otherwise a
// missing moto_server fails them, so a machine without the emulator can never
// pass `make test` by running nothing.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region every emulator resource lives in.
const Region = "us-east-1"

// emulator is the moto_server process of this test binary. It is written
// once by Main before any test runs and only read afterwards.
var emulator struct {
	endpoint string // http://127.0.0.1:port, empty when not running
	reason   string // why it is not running
}

// Main starts moto_server, runs the tests and stops the server. It returns
// the exit code for os.Exit.
func Main(m *testing.M) int {
	// testing.Short reads the -short flag, which m.Run would parse later.
	if !flag.Parsed() {
		flag.Parse()
	}
	var stop func()
	if !testing.Short() {
		var err error
		if stop, err = start(); err != nil {
			emulator.reason = err.Error()
		}
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	return code
}

// SkipShort skips t under `go test -short`: t is a system test, needing an
// emulator, a browser or a built binary. It is the one place that decides
// which tests the inner loop leaves out.
func SkipShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("system test (needs %s): skipped under -short", needs)
	}
}

// Endpoint returns the emulator's base URL. Under -short it skips t; without
// the emulator it fails t.
func Endpoint(t testing.TB) string {
	t.Helper()
	SkipShort(t, "the AWS emulator")
	if emulator.endpoint != "" {
		return emulator.endpoint
	}
	reason := emulator.reason
	if reason == "" {
		reason = "awstest.Main was not called from TestMain"
	}
	t.Fatalf("AWS emulator unavailable: %s (install it with: pip install \"moto[server]\"; `go test -short` skips system tests)", reason)
	return ""
}

// Config returns an SDK configuration pointed at the emulator, loaded the
// same way the functions load theirs.
func Config(t testing.TB) aws.Config {
	t.Helper()
	endpoint := Endpoint(t)
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
		config.WithBaseEndpoint(endpoint),
	)
	if err != nil {
		t.Fatalf("load AWS config for emulator: %v", err)
	}
	return cfg
}

// Env returns the environment a child process (a Lambda binary, a local
// server) needs to talk to the emulator through the standard SDK settings.
func Env(t testing.TB) []string {
	t.Helper()
	endpoint := Endpoint(t)
	return []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Name returns a resource name unique to this run, safe for tables, buckets
// and secrets: lowercase letters, digits and dashes.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b[:])
}

func start() (stop func(), err error) {
	bin := os.Getenv("MOTO_SERVER")
	if bin == "" {
		bin = "moto_server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH", bin)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	python, err := pythonFor(path)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(python, "-c", serialServer, "127.0.0.1", port)
	cmd.Env = append(os.Environ(), "MOTO_PORT="+port)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return nil, fmt.Errorf("moto log file: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
		os.Remove(logFile.Name())
	}
	endpoint := "http://127.0.0.1:" + port
	if err := waitReady(endpoint, 60*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("moto_server did not become ready: %w", err)
	}
	emulator.endpoint = endpoint
	return stop, nil
}

// serialServer starts moto's server application, serving one request at a
// time (see the package comment). Arguments: host, port.
const serialServer = `
import sys, threading
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()

def serial(environ, start_response):
    with lock:
        return list(app(environ, start_response))

run_simple(sys.argv[1], int(sys.argv[2]), serial, threaded=True)
`

// pythonFor returns the Python interpreter that runs moto_server, so the
// serial server imports the same moto installation.
func pythonFor(motoServer string) (string, error) {
	candidates := []string{os.Getenv("MOTO_PYTHON"), "python3", "python"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import moto.server, werkzeug").Run() == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s found, but no python3 on PATH can import moto.server (set MOTO_PYTHON)", motoServer)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func waitReady(endpoint string, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	var last error = errors.New("no answer")
	for time.Now().Before(deadline) {
		resp, err := client.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
