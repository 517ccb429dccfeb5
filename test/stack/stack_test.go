// Package stack_test checks template.yaml: cfn-lint, the CloudFormation AWS
// SAM turns it into, and a deployment of that CloudFormation to the AWS
// emulator (moto).
//
// The tools it runs (cfn-lint, python3 with aws-sam-translator, moto_server)
// are required: a missing tool fails the tests. Under `go test -short` they
// are skipped, as every system test is.
package stack_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// templatePath is template.yaml at the repository root, seen from this
// package's directory (where go test runs).
func templatePath(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatalf("template path: %v", err)
	}
	return path
}

// needTool skips t under -short and fails it when a tool is missing, so a
// machine without them cannot pass by running nothing.
func needTool(t *testing.T, what, install string, err error) {
	t.Helper()
	awstest.SkipShort(t, what)
	if err == nil {
		return
	}
	t.Fatalf("%s unavailable: %v (install with: %s; `go test -short` skips system tests)", what, err, install)
}

// exitNoTranslator is transform.py's exit status: aws-sam-translator is not
// importable.
const exitNoTranslator = 3

// transformTemplate returns the CloudFormation that AWS SAM makes of
// template.yaml, each function's code at codeURI.
func transformTemplate(t *testing.T, codeURI string) map[string]any {
	t.Helper()
	const install = `pip install aws-sam-translator`
	python, err := exec.LookPath("python3")
	needTool(t, "python3", install, err)

	cmd := exec.CommandContext(t.Context(), python, filepath.Join("testdata", "transform.py"), templatePath(t), codeURI)
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION="+awstest.Region)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == exitNoTranslator {
		needTool(t, "aws-sam-translator", install, errors.New(strings.TrimSpace(stderr.String())))
	}
	if err != nil {
		t.Fatalf("SAM transform of template.yaml: %v\n%s", err, stderr.String())
	}
	var template map[string]any
	if err := json.Unmarshal(out, &template); err != nil {
		t.Fatalf("decode transformed template: %v", err)
	}
	return template
}

// resources returns the template's Resources section.
func resources(t *testing.T, template map[string]any) map[string]map[string]any {
	t.Helper()
	raw, ok := template["Resources"].(map[string]any)
	if !ok {
		t.Fatalf("template has no Resources section")
	}
	out := make(map[string]map[string]any, len(raw))
	for id, r := range raw {
		res, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("resource %s is %T, want an object", id, r)
		}
		out[id] = res
	}
	return out
}

// props returns a resource's Properties, failing when it is not there.
func props(t *testing.T, res map[string]map[string]any, id string) map[string]any {
	t.Helper()
	r, ok := res[id]
	if !ok {
		t.Fatalf("template has no resource %s", id)
	}
	p, _ := r["Properties"].(map[string]any)
	return p
}

// ofType returns the logical ids of the resources of one type.
func ofType(res map[string]map[string]any, typ string) []string {
	var ids []string
	for id, r := range res {
		if r["Type"] == typ {
			ids = append(ids, id)
		}
	}
	return ids
}

// functionIDs returns the template's functions, named as the Makefile's
// build-<LogicalId> targets expect.
func functionIDs() []string {
	return []string{
		"LinksApiFunction",
		"EventWebhookFunction",
		"ReportRequestFunction",
		"ReportWebhookFunction",
		"TokenRefreshFunction",
		"ReconcileFunction",
		"IntegrationEventsFunction",
	}
}
