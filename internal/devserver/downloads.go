package devserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// downloadPath is where the disk store's download URLs point.
const downloadPath = "/dev/download/"

// localDownloads stands in for S3's presigned GET when reports are stored
// on disk: a URL of this server that serves one stored report until it
// expires, signed with a key of this process (HMAC-SHA256 over the object
// key and the expiry), so that, as with S3, whoever holds the URL may
// fetch the report and nobody can make one up or stretch its lifetime.
type localDownloads struct {
	base func() string // the server's URL
	key  []byte
	ttl  time.Duration
	now  func() time.Time
}

func newLocalDownloads(base func() string, ttl time.Duration) *localDownloads {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &localDownloads{base: base, key: key, ttl: ttl, now: time.Now}
}

// PresignGet returns the download URL of the object and when it expires.
func (d *localDownloads) PresignGet(_ context.Context, objectKey string) (string, time.Time, error) {
	if err := reportstore.CheckKey(objectKey); err != nil {
		return "", time.Time{}, fmt.Errorf("sign download of %s: %w", objectKey, err)
	}
	expires := d.now().Add(d.ttl).UTC().Truncate(time.Second)
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{"expires": {exp}, "signature": {d.sign(objectKey, exp)}}
	return d.base() + downloadPath + escapeKey(objectKey) + "?" + q.Encode(), expires, nil
}

func (d *localDownloads) sign(objectKey, expires string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(objectKey))
	m.Write([]byte{0})
	m.Write([]byte(expires))
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of a download URL that does not open.
var (
	errBadSignature = errors.New("download URL: signature does not match")
	errExpired      = errors.New("download URL: expired")
)

// check tells whether a download URL for objectKey opens now.
func (d *localDownloads) check(objectKey string, q url.Values) error {
	exp := q.Get("expires")
	if !hmac.Equal([]byte(d.sign(objectKey, exp)), []byte(q.Get("signature"))) {
		return errBadSignature
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return errBadSignature // signed, so never reached
	}
	if d.now().After(time.Unix(unix, 0)) {
		return errExpired
	}
	return nil
}

// serveDownload is GET /dev/download/{objectKey}?expires=&signature=: the
// stored report, byte for byte, while the URL holds. S3 answers 403 to a
// presigned URL that is expired or altered; so does this.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	switch err := s.localDownloads.check(key, r.URL.Query()); {
	case errors.Is(err, errExpired):
		writeAPI(w, httpapi.Error(http.StatusForbidden, "url_expired", "This download URL has expired. Ask for the report again."))
		return
	case err != nil:
		writeAPI(w, httpapi.Error(http.StatusForbidden, "signature_mismatch", "This download URL is not valid."))
		return
	}
	s.writeStored(w, r, key)
}
