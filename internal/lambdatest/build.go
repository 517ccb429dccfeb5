package lambdatest

import (
	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"

	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// RIEPackage is the import path of the emulator command pinned as a tool in
// go.mod.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// maxParallelBuilds bounds concurrent `go build` runs: each one already uses
// every core, and CI machines have two.
const maxParallelBuilds = 2

// Target is the platform a binary is built for.
type Target struct {
	GOOS   string
	GOARCH string
}

// Host is the platform the tests run on, the one the emulator can execute.
func Host() Target { return Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH} }

// Lambda is the deployed platform (provided.al2023 on arm64), the one whose
// binary sizes the size bar is about.
func Lambda() Target { return Target{GOOS: "linux", GOARCH: "arm64"} }

func (tg Target) String() string { return tg.GOOS + "/" + tg.GOARCH }

// builds is the cache of one test binary: a package is built once however
// many tests ask for it. It has to be package state because the tests that
// share it know nothing of each other.
var builds = &builder{slots: make(chan struct{}, maxParallelBuilds)}

type builder struct {
	rootOnce sync.Once
	root     string // module root
	dir      string // output directory of this module
	rootErr  error

	outputs sync.Map // buildKey -> *buildResult
	slots   chan struct{}
}

type buildKey struct {
	target  Target
	pkgPath string
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// ModuleRoot returns the directory holding the module's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, _, err := builds.module()
	if err != nil {
		t.Fatalf("find module root: %v", err)
	}
	return root
}

// Build compiles the main package at pkgPath for the host platform with the
// Lambda build flags and returns the binary's path. A relative pkgPath
// (./functions/links-api) is relative to the module root.
func Build(t testing.TB, pkgPath string) string {
	t.Helper()
	return BuildFor(t, Host(), pkgPath)[0]
}

// BuildFor compiles each main package for target with the Lambda build
// flags, at most two at a time, and returns the binaries' paths in the order
// of pkgPaths. Every binary is named bootstrap, in a directory named after
// the package's last path element.
func BuildFor(t testing.TB, target Target, pkgPaths ...string) []string {
	t.Helper()
	awstest.SkipShort(t, "built Lambda binaries")
	paths := make([]string, len(pkgPaths))
	errs := make([]error, len(pkgPaths))
	var wg sync.WaitGroup
	for i, p := range pkgPaths {
		wg.Go(func() { paths[i], errs[i] = builds.build(target, p, "bootstrap") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return paths
}

// RIEPath returns the Runtime Interface Emulator binary, built from the
// module cache for the host.
func RIEPath(t testing.TB) string {
	t.Helper()
	awstest.SkipShort(t, "the Lambda Runtime Interface Emulator")
	p, err := builds.build(Host(), RIEPackage, "aws-lambda-rie")
	if err != nil {
		t.Fatalf("the Lambda Runtime Interface Emulator is required and could not be built: %v", err)
	}
	return p
}

func (b *builder) module() (root, dir string, err error) {
	b.rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			b.rootErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			b.rootErr = errors.New("go env GOMOD: not inside a module")
			return
		}
		b.root = filepath.Dir(gomod)
		sum := sha256.Sum256([]byte(b.root))
		b.dir = filepath.Join(os.TempDir(), fmt.Sprintf("lambdatest-%d-%s", os.Getuid(), hex.EncodeToString(sum[:6])))
		if err := os.MkdirAll(b.dir, 0o700); err != nil {
			b.rootErr = fmt.Errorf("create build directory: %w", err)
		}
	})
	return b.root, b.dir, b.rootErr
}

func (b *builder) build(target Target, pkgPath, name string) (string, error) {
	v, _ := b.outputs.LoadOrStore(buildKey{target, pkgPath}, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		b.slots <- struct{}{}
		defer func() { <-b.slots }()
		r.path, r.err = b.goBuild(target, pkgPath, name)
	})
	return r.path, r.err
}

func (b *builder) goBuild(target Target, pkgPath, name string) (string, error) {
	root, dir, err := b.module()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(pkgPath))
	outDir := filepath.Join(dir, target.GOOS+"_"+target.GOARCH, hex.EncodeToString(sum[:6]), path.Base(filepath.ToSlash(pkgPath)))
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return "", fmt.Errorf("build %s for %s: %w", pkgPath, target, err)
	}
	out := filepath.Join(outDir, name)
	// Another test binary may be building or running the same output right
	// now: build beside it and rename, which replaces it atomically.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:]) // never fails: it crashes the program instead
	tmp := out + ".tmp-" + hex.EncodeToString(suffix[:])

	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", tmp, pkgPath)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+target.GOOS, "GOARCH="+target.GOARCH)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build %s for %s: %w\n%s", pkgPath, target, err, output.String())
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build %s for %s: %w", pkgPath, target, err)
	}
	return out, nil
}
