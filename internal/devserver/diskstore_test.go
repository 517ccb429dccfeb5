package devserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

func newDisk(t *testing.T) *DiskStore {
	t.Helper()
	d, err := NewDiskStore(filepath.Join(t.TempDir(), "reports"))
	if err != nil {
		t.Fatalf("NewDiskStore: %v", err)
	}
	return d
}

func readAll(t *testing.T, d *DiskStore, key string) []byte {
	t.Helper()
	rc, size, err := d.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if int64(len(b)) != size {
		t.Errorf("Open(%s) size = %d, read %d bytes", key, size, len(b))
	}
	return b
}

// files lists every file under the store, temporary ones included.
func files(t *testing.T, d *DiskStore) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(d.Root(), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(d.Root(), path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk store: %v", err)
	}
	return out
}

func TestDiskStorePutOpen(t *testing.T) {
	d := newDisk(t)
	key := reportstore.ReportKey("link-1", "pf_checking_account", "rep/1")
	body := []byte(`{"productReportId":"rep/1","data":[1,2,3]}`)
	sum := sha256.Sum256(body)

	res, err := d.Put(t.Context(), reportstore.Object{Key: key, Body: body})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := reportstore.PutResult{Key: key, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(body))}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("PutResult mismatch (-want +got):\n%s", diff)
	}
	if got := readAll(t, d, key); string(got) != string(body) {
		t.Errorf("stored body = %q, want %q", got, body)
	}

	_, err = d.Put(t.Context(), reportstore.Object{Key: key, Body: []byte(`{"other":true}`)})
	if !errors.Is(err, reportstore.ErrExists) {
		t.Errorf("second Put error = %v, want ErrExists", err)
	}
	if got := readAll(t, d, key); string(got) != string(body) {
		t.Errorf("body after a second Put = %q, want the first %q", got, body)
	}
	if diff := cmp.Diff([]string{key}, files(t, d)); diff != "" {
		t.Errorf("files mismatch, temporary files left? (-want +got):\n%s", diff)
	}

	if _, _, err := d.Open(t.Context(), reportstore.ReportKey("link-1", "pf_checking_account", "missing")); !errors.Is(err, reportstore.ErrNotFound) {
		t.Errorf("Open(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := d.Put(t.Context(), reportstore.Object{Key: reportstore.UnmatchedKey("link-1", "p", "empty")}); err == nil {
		t.Error("Put of an empty body succeeded, want an error")
	}
}

func TestDiskStoreConcurrentPuts(t *testing.T) {
	d := newDisk(t)
	key := reportstore.UnmatchedKey("link-1", "pf_credit_card", "r-1")
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = d.Put(t.Context(), reportstore.Object{Key: key, Body: fmt.Appendf(nil, `{"writer":%d}`, i)})
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("writers %d and %d both stored the report", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, reportstore.ErrExists):
			t.Errorf("writer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer stored the report")
	}
	if got, want := string(readAll(t, d, key)), fmt.Sprintf(`{"writer":%d}`, won); got != want {
		t.Errorf("stored body = %s, want the winner's %s", got, want)
	}
	if diff := cmp.Diff([]string{key}, files(t, d)); diff != "" {
		t.Errorf("files mismatch (-want +got):\n%s", diff)
	}
}

func TestDiskStoreRefusesOtherKeys(t *testing.T) {
	d := newDisk(t)
	outside := filepath.Join(filepath.Dir(d.Root()), "secret.json")
	if err := os.WriteFile(outside, []byte(`{"secret":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"",
		"reports/../secret.json",
		"reports/l/../../secret.json",
		"reports/l/p/../../../secret.json",
		"reports/l/p/.hidden.json",
		"reports/l/p/r.txt",
		"reports/l/p/.json",
		"reports/l/p",
		"unmatched/p/../r.json",
		"other/l/p/r.json",
		"/etc/passwd",
		"reports/l/p/r.json/extra",
		`reports\l\p\r.json`,
		"reports//p/r.json",
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			if _, err := d.Put(t.Context(), reportstore.Object{Key: key, Body: []byte("{}")}); !errors.Is(err, reportstore.ErrInvalidKey) {
				t.Errorf("Put error = %v, want ErrInvalidKey", err)
			}
			if _, _, err := d.Open(t.Context(), key); !errors.Is(err, reportstore.ErrInvalidKey) {
				t.Errorf("Open error = %v, want ErrInvalidKey", err)
			}
		})
	}
	if got := files(t, d); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
}

func TestDiskStoreDeletePrefix(t *testing.T) {
	d := newDisk(t)
	put := func(key string) {
		t.Helper()
		if _, err := d.Put(t.Context(), reportstore.Object{Key: key, Body: []byte("{}")}); err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
	}
	put(reportstore.ReportKey("L1", "pf_checking_account", "a"))
	put(reportstore.ReportKey("L1", "pf_credit_card", "b"))
	put(reportstore.ReportKey("L10", "pf_checking_account", "c"))
	put(reportstore.UnmatchedKey("L2", "pf_checking_account", "d"))

	n, err := d.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1"))
	if err != nil || n != 2 {
		t.Errorf("DeletePrefix(L1) = %d, %v; want 2, nil", n, err)
	}
	want := []string{reportstore.ReportKey("L10", "pf_checking_account", "c"), reportstore.UnmatchedKey("L2", "pf_checking_account", "d")}
	if diff := cmp.Diff(want, files(t, d)); diff != "" {
		t.Errorf("files after purge mismatch (-want +got):\n%s", diff)
	}
	if n, err := d.DeletePrefix(t.Context(), reportstore.LinkPrefix("L1")); err != nil || n != 0 {
		t.Errorf("DeletePrefix again = %d, %v; want 0, nil", n, err)
	}
	if n, err := d.DeletePrefix(t.Context(), reportstore.LinkPrefix("never")); err != nil || n != 0 {
		t.Errorf("DeletePrefix(unknown link) = %d, %v; want 0, nil", n, err)
	}
	for _, prefix := range []string{"", "reports/", "unmatched/", "reports", "reports/L10", "reports/../", "/"} {
		if _, err := d.DeletePrefix(t.Context(), prefix); !errors.Is(err, reportstore.ErrInvalidKey) {
			t.Errorf("DeletePrefix(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if got := len(files(t, d)); got != 2 {
		t.Errorf("%d files left after refused purges, want 2", got)
	}
	if strings.Contains(fmt.Sprint(files(t, d)), tempPrefix) {
		t.Error("temporary files left behind")
	}
}
