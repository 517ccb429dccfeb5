package devserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// tempPrefix starts the name of a report being written; such files are
// never served and are cleaned up by DeletePrefix.
const tempPrefix = ".tmp-"

// DiskStore keeps reports as files, with the outcomes of the S3 report
// store (reportstore.Store): keys of the same shapes, a report written at
// most once per key (ErrExists for a second write, never an overwrite),
// whole or not at all, and a purge by link prefix.
type DiskStore struct {
	root string
}

// NewDiskStore returns a store under dir, created if needed.
func NewDiskStore(dir string) (*DiskStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("report directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create report directory: %w", err)
	}
	return &DiskStore{root: abs}, nil
}

// Root is the absolute directory the store writes under.
func (d *DiskStore) Root() string { return d.root }

// Put stores o.Body under o.Key unless a report with that key exists, in
// which case it returns reportstore.ErrExists and writes nothing. The body
// goes to a temporary file first, then is published by a hard link, which
// fails when the name exists: a reader never sees half a report, and of
// two concurrent writers exactly one wins.
func (d *DiskStore) Put(_ context.Context, o reportstore.Object) (reportstore.PutResult, error) {
	path, err := d.path(o.Key)
	if err != nil {
		return reportstore.PutResult{}, fmt.Errorf("put %q: %w", o.Key, err)
	}
	if len(o.Body) == 0 {
		return reportstore.PutResult{}, fmt.Errorf("put %s: empty body", o.Key)
	}
	sum := sha256.Sum256(o.Body)
	res := reportstore.PutResult{Key: o.Key, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(o.Body))}

	if _, err := os.Lstat(path); err == nil {
		return res, fmt.Errorf("put %s: %w", o.Key, reportstore.ErrExists)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("put %s: %w", o.Key, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return res, fmt.Errorf("put %s: %w", o.Key, err)
	}
	defer os.Remove(tmp.Name()) // the published name is a second link
	_, err = tmp.Write(o.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("put %s: write: %w", o.Key, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return res, fmt.Errorf("put %s: %w", o.Key, reportstore.ErrExists)
		}
		return res, fmt.Errorf("put %s: publish: %w", o.Key, err)
	}
	return res, nil
}

// Open returns the stored report under key and its length; the caller
// closes it. A missing report is reportstore.ErrNotFound.
func (d *DiskStore) Open(_ context.Context, key string) (io.ReadCloser, int64, error) {
	path, err := d.path(key)
	if err != nil {
		return nil, 0, fmt.Errorf("open %q: %w", key, err)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("open %s: %w", key, reportstore.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", key, err)
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("open %s: %w", key, reportstore.ErrNotFound)
	}
	return f, info.Size(), nil
}

// DeletePrefix deletes every report under prefix (the LGPD purge of a link,
// reportstore.LinkPrefix) and returns how many it deleted. prefix must end
// in "/" and name a directory below "reports/" or "unmatched/".
func (d *DiskStore) DeletePrefix(_ context.Context, prefix string) (int, error) {
	if reportstore.CheckPrefix(prefix) != nil {
		return 0, fmt.Errorf("delete %q: %w", prefix, reportstore.ErrInvalidKey)
	}
	dir := filepath.Join(d.root, filepath.FromSlash(strings.TrimSuffix(prefix, "/")))
	deleted := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case e.IsDir():
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			deleted++
		}
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("delete %s: %w", prefix, err)
	}
	// Empty directories are left behind by design of the key layout; they
	// hold nothing personal, but tidy them up.
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return deleted, fmt.Errorf("delete %s: %w", prefix, err)
	}
	return deleted, nil
}

// path maps a key to its file, refusing anything but the shapes
// reportstore.ReportKey and reportstore.UnmatchedKey build, so that no key
// reaches outside the store.
func (d *DiskStore) path(key string) (string, error) {
	if reportstore.CheckKey(key) != nil {
		return "", reportstore.ErrInvalidKey
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Delete removes one stored report; a missing one is not an error.
func (d *DiskStore) Delete(_ context.Context, key string) error {
	path, err := d.path(key)
	if err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
