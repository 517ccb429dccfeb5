// Command vulndb turns the OSV entries of the golang.org/x/vulndb module
// into the file layout govulncheck reads with -db file://DIR
// (index/db.json, index/modules.json, ID/<id>.json).
//
// govulncheck normally downloads its database from vuln.go.dev; build
// machines that reach only the Go module proxy get the same entries from the
// vulndb module instead. The Makefile pins the module version.
//
// Usage: go run ./scripts/vulndb -osv <vulndb module dir>/data/osv -out <dir>
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"
)

type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	osvDir := flag.String("osv", "", "directory of OSV JSON files (vulndb's data/osv)")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if *osvDir == "" || *out == "" {
		log.Fatal("usage: vulndb -osv DIR -out DIR")
	}
	if err := run(*osvDir, *out); err != nil {
		log.Fatal(err)
	}
}

func run(osvDir, out string) error {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no OSV entries in %s", osvDir)
	}
	for _, dir := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, dir), 0o755); err != nil {
			return err
		}
	}
	modules := map[string]*moduleMeta{}
	var latest time.Time
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if e.Modified.After(latest) {
			latest = e.Modified
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			path := a.Package.Name
			if path == "" || seen[path] {
				continue
			}
			seen[path] = true
			m := modules[path]
			if m == nil {
				m = &moduleMeta{Path: path}
				modules[path] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
		}
	}
	list := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), list); err != nil {
		return err
	}
	return writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": latest})
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
