package devserver

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// TestLocalDownloads: a download URL of the disk store serves the stored
// bytes until it expires, and an altered one serves nothing.
func TestLocalDownloads(t *testing.T) {
	e := startServer(t, nil)
	key := reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_checking_account", "c0ffee00-1d2e-4f3a-8b9c-0a1b2c3d4e5f")
	other := reportstore.ReportKey("4437b139-8a16-11ee-b636-487b6bad036a", "pf_credit_card", "c0ffee00-1d2e-4f3a-8b9c-0a1b2c3d4e60")
	body := []byte(`{"productReportId":"c0ffee00-1d2e-4f3a-8b9c-0a1b2c3d4e5f","data":[1,2,3]}`)
	for _, k := range []string{key, other} {
		if _, err := e.srv.objects.Put(t.Context(), reportstore.Object{Key: k, Body: body}); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	start := time.Now()
	raw, expires, err := e.srv.downloads.PresignGet(t.Context(), key)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if d := expires.Sub(start); d < 4*time.Minute || d > 5*time.Minute+time.Second {
		t.Errorf("expires in %s, want 5m", d)
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(raw, e.url+downloadPath) {
		t.Fatalf("download URL %q is not this server's (%v)", raw, err)
	}
	path := strings.TrimPrefix(raw, e.url)

	status, h, got := e.do(t, http.MethodGet, path, "", nil)
	if status != http.StatusOK || !bytes.Equal(got, body) || h.Get("Content-Type") != "application/json" {
		t.Errorf("GET download = %d %s %q, want 200 with the stored bytes", status, h.Get("Content-Type"), got)
	}

	q := u.Query()
	altered := func(name, value string) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set(name, value)
		return u.Path + "?" + q2.Encode()
	}
	later := q.Get("expires") + "0"
	for name, path := range map[string]string{
		"other key":        strings.Replace(u.Path, "pf_checking_account", "pf_credit_card", 1) + "?" + u.RawQuery,
		"longer lifetime":  altered("expires", later),
		"no signature":     u.Path + "?expires=" + q.Get("expires"),
		"wrong signature":  altered("signature", strings.Repeat("0", 64)),
		"other key, as is": "/dev/download/" + escapeKey(other) + "?" + u.RawQuery,
	} {
		if status, _, body := e.do(t, http.MethodGet, path, "", nil); status != http.StatusForbidden || !bytes.Contains(body, []byte(`"signature_mismatch"`)) {
			t.Errorf("%s: GET = %d %s, want 403 signature_mismatch", name, status, body)
		}
	}

	// A URL whose lifetime ended a second ago.
	past := *e.srv.localDownloads // the server's key, an ended lifetime
	past.ttl = -time.Second
	expired, _, err := past.PresignGet(t.Context(), key)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if status, _, body := e.do(t, http.MethodGet, strings.TrimPrefix(expired, e.url), "", nil); status != http.StatusForbidden || !bytes.Contains(body, []byte(`"url_expired"`)) {
		t.Errorf("after expiry: GET = %d %s, want 403 url_expired", status, body)
	}
	if _, _, err := e.srv.downloads.PresignGet(t.Context(), "../etc/passwd"); err == nil {
		t.Error("PresignGet signed a key outside the store")
	}
}
