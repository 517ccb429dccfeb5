package stack_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplateLints fails on any cfn-lint finding, warnings included.
func TestTemplateLints(t *testing.T) {
	t.Parallel()
	lint, err := exec.LookPath("cfn-lint")
	needTool(t, "cfn-lint", "pip install cfn-lint", err)

	path := templatePath(t)
	cmd := exec.CommandContext(t.Context(), lint, filepath.Base(path))
	cmd.Dir = filepath.Dir(path)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("cfn-lint %s: %v\n%s", filepath.Base(path), err, out)
	}
}
