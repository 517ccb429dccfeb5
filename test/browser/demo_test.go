package browser_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/openfinance-br/klavi-link-lambda/internal/awstest"
	"github.com/openfinance-br/klavi-link-lambda/internal/devserver"
)

const (
	// testCPF is valid by its check digits, and not the sample the page
	// offers itself. It is typed into the page and must appear nowhere
	// else: not in the page after the consent page, not in a log line.
	testCPF     = "390.533.447-05"
	testCPFBare = "39053344705"

	// institution is picked on the consent page: not the one checked
	// by default, so that the click is what chooses it.
	institution = "341"

	// testTimeout bounds the whole test, browser start included.
	testTimeout = 90 * time.Second
	// waitTimeout bounds each wait for the page to reach a state.
	waitTimeout = 30 * time.Second

	// screenshotFile is the README's picture, relative to this directory.
	screenshotFile = "../../docs/demo.png"
)

// wantProducts is what the simulator expands "all" to for a CPF, the
// backend's default REPORT_PRODUCTS; sorted.
var wantProducts = []string{"pf_categorized_checking_l3", "pf_checking_account", "pf_credit_card"}

func TestDemo(t *testing.T) {
	exe := chromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	base := startStack(ctx, t)
	browserCtx := startBrowser(ctx, t, exe)

	t.Run("authorise", func(t *testing.T) {
		tab := openTab(t, browserCtx)
		linkID := createLink(t, tab, base)
		consentPage(t, tab, linkID)
		tab.do(t, "choose an institution", chromedp.Click(chromedp.CSS(`label[data-institution="`+institution+`"]`)))
		if checked := run(t, tab, "read the institution choice", chromedp.JavascriptAttribute[bool](chromedp.ID("institution-"+institution), "checked")); !checked {
			t.Fatalf("institution %s not checked after clicking its label", institution)
		}
		tab.do(t, "authorise", chromedp.Click(chromedp.ID("authorise")))

		tab.waitStatus(t, "REPORTS_RECEIVED")
		tab.checkReturned(t, linkID, "Back from the consent page.")
		got := tab.waitReports(t, len(wantProducts))
		if diff := cmp.Diff(wantProducts, got); diff != "" {
			t.Errorf("products listed (-want +got):\n%s", diff)
		}
		consents := run(t, tab, "read the consents", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#consents tbody tr')].map((r) => r.dataset.status + ' ' + r.cells[1].textContent)`))
		if diff := cmp.Diff([]string{"AUTHORISED " + institution}, consents); diff != "" {
			t.Errorf("consents listed (-want +got):\n%s", diff)
		}
		if n := run(t, tab, "count the report requests", chromedp.Evaluate[int](`document.querySelectorAll('#report-requests tbody tr').length`)); n != 1 {
			t.Errorf("report requests listed = %d, want 1", n)
		}
		tab.checkNoTaxID(t)
		saveScreenshot(t, run(t, tab, "take the screenshot", chromedp.FullScreenshot(100)))

		// Open a report as its link would: the stored JSON, byte for byte.
		row := run(t, tab, "read the first report row", chromedp.Evaluate[reportRow](`(() => {
			const r = document.querySelector('#reports tbody tr');
			return {product: r.dataset.product, reportId: r.dataset.reportId, href: r.querySelector('a.open-report').getAttribute('href')};
		})()`))
		tab.do(t, "open the report", chromedp.Navigate(base+row.Href))
		body := run(t, tab, "read the report", chromedp.Evaluate[string](`document.body.innerText`))
		var report struct {
			ProductReportID string `json:"productReportId"`
			ProductName     string `json:"productName"`
		}
		if err := json.Unmarshal([]byte(body), &report); err != nil {
			t.Fatalf("report page is not JSON: %v; starts %.200q", err, body)
		}
		if report.ProductReportID != row.ReportID || report.ProductName != row.Product {
			t.Errorf("report opened = %s %s, want %s %s", report.ProductName, report.ProductReportID, row.Product, row.ReportID)
		}
		tab.checkConsole(t)
	})

	// One link through everything a fintech can do with it: authorise,
	// reports and their downloads, the integration events as they are
	// published, then Revoke and Delete.
	t.Run("lifecycle", func(t *testing.T) {
		tab := openTab(t, browserCtx)
		linkID := createLink(t, tab, base)
		consentPage(t, tab, linkID)
		tab.do(t, "authorise", chromedp.Click(chromedp.ID("authorise")))
		tab.waitStatus(t, "REPORTS_RECEIVED")
		tab.waitReports(t, len(wantProducts))

		// The consent's way to AUTHORISED, then the request and its
		// reports: Klavi may send a report before the request's answer is
		// recorded, so those come in either order.
		tab.waitEvents(t, linkID, "Report Requested", 1)
		got := tab.waitEvents(t, linkID, "Report Stored", len(wantProducts))
		authorised := slices.Index(got, "Consent Status Changed AUTHORISED")
		if authorised < 0 {
			t.Fatalf("integration events shown: %q, want the consent AUTHORISED", got)
		}
		for _, e := range got[:authorised] {
			if !strings.HasPrefix(e, "Consent Status Changed ") {
				t.Errorf("before the consent was authorised: %q, want consent changes only", e)
			}
		}
		want := []string{"Report Requested"}
		for range wantProducts {
			want = append(want, "Report Stored")
		}
		after := slices.Sorted(slices.Values(got[authorised+1:]))
		if diff := cmp.Diff(want, after); diff != "" {
			t.Errorf("integration events after AUTHORISED, sorted (-want +got):\n%s", diff)
		}
		tab.checkDownloads(t, base)

		tab.do(t, "revoke", chromedp.Click(chromedp.ID("revoke-link")))
		tab.waitAnswer(t, "202")
		tab.do(t, "wait for the consent to be REVOKED",
			chromedp.WaitVisible(chromedp.CSS(`#consents tbody tr[data-status="REVOKED"]`)))
		tab.waitEvents(t, linkID, "Consent Status Changed REVOKED", 1)

		tab.do(t, "delete", chromedp.Click(chromedp.ID("delete-link")))
		tab.waitAnswer(t, "202")
		tab.waitStatus(t, "DELETED")
		tab.waitEvents(t, linkID, "Link Data Purged", 1)
		tab.checkNoTaxID(t)
		tab.checkConsole(t)
	})

	t.Run("reject", func(t *testing.T) {
		tab := openTab(t, browserCtx)
		linkID := createLink(t, tab, base)
		consentPage(t, tab, linkID)
		tab.do(t, "reject", chromedp.Click(chromedp.ID("reject")))

		tab.waitStatus(t, "REJECTED")
		tab.checkReturned(t, linkID, "access_denied")
		consents := run(t, tab, "read the consents", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#consents tbody tr')].map((r) => r.dataset.status)`))
		if diff := cmp.Diff([]string{"REJECTED"}, consents); diff != "" {
			t.Errorf("consents listed (-want +got):\n%s", diff)
		}
		if n := run(t, tab, "count the reports", chromedp.Evaluate[int](`document.querySelectorAll('#reports tbody tr').length`)); n != 0 {
			t.Errorf("reports listed for a rejected consent = %d, want 0", n)
		}
		tab.checkNoTaxID(t)
		tab.checkConsole(t)
	})
}

type reportRow struct {
	Product  string `json:"product"`
	ReportID string `json:"reportId"`
	Href     string `json:"href"`
}

// chromium finds the browser. A missing browser skips the test, except in
// CI or when asked for, where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	awstest.SkipShort(t, "chromium")
	for _, name := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const msg = "chromium is not installed (Debian: apt-get install chromium)"
	t.Fatal(msg + "; `go test -short` skips system tests")
	return ""
}

// startStack runs the local stack in this process, as `make run` does:
// the simulator, the in-memory link store with its change feed, reports
// on disk. Its log is shown when the test fails and must hold no tax id.
func startStack(ctx context.Context, t *testing.T) string {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := devserver.New(devserver.Config{
		ReportsDir: filepath.Join(t.TempDir(), "reports"),
		Seed:       20261124, // the same ids in every screenshot
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("devserver.New: %v", err)
	}
	base, err := srv.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("devserver.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("devserver.Close: %v", err)
		}
		out := logs.String()
		for _, id := range []string{testCPF, testCPFBare} {
			if strings.Contains(out, id) {
				t.Errorf("server log holds the tax id %q", id)
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", out)
		}
	})
	return base
}

// startBrowser starts a headless Chromium with a profile of its own; it
// ends with ctx.
func startBrowser(ctx context.Context, t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // containers and CI runners as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.WindowSize(1200, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(errorf(t)))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browserCtx
}

// errorf passes chromedp's own error lines to the test log while the test
// runs, and drops them after (a late protocol message must not reach a
// finished test).
func errorf(t *testing.T) func(string, ...any) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
	})
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf("chromedp: "+format, args...)
		}
	}
}

// tab is one browser tab and what its pages wrote to the console.
type tab struct {
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// openTab opens a tab of its own (its own sessionStorage, so the demo page
// starts from nothing) and records its console.
func openTab(t *testing.T, browserCtx context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	tb := &tab{ctx: ctx}
	messages := chromedp.Console(ctx) // also opens the tab
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return tb
}

// do runs steps in the tab within waitTimeout.
func (tb *tab) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v%s", what, err, tb.state())
	}
}

// run runs one action in the tab within waitTimeout and returns its value.
func run[T any](t *testing.T, tb *tab, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v%s", what, err, tb.state())
	}
	return v
}

// state describes the page for a failure message: where it is, the link
// status shown, the error box and the console so far.
func (tb *tab) state() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	var b strings.Builder
	if s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + ' status=' +
		((document.getElementById('link-status') || {}).dataset || {}).status + ' error=' +
		((document.getElementById('error') || {}).innerText || '')`)); err == nil {
		b.WriteString("\npage: " + s)
	}
	for _, m := range tb.messages() {
		b.WriteString("\nconsole: " + m.String())
	}
	return b.String()
}

func (tb *tab) messages() []chromedp.ConsoleMessage {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.console)
}

// createLink fills the form on the demo page and creates a link, as a user
// does, and returns its id.
func createLink(t *testing.T, tb *tab, base string) string {
	t.Helper()
	tb.do(t, "open the demo page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("tax-id")),
		chromedp.SendKeys(chromedp.ID("tax-id"), testCPF),
		chromedp.SendKeys(chromedp.ID("email"), "ana@example.com"),
		chromedp.Click(chromedp.ID("create-link")),
		chromedp.WaitVisible(chromedp.ID("open-consent")),
	)
	linkID := run(t, tb, "read the link id", chromedp.Text(chromedp.ID("link-id")))
	if linkID == "" {
		t.Fatalf("no link id shown after creating a link%s", tb.state())
	}
	return linkID
}

// consentPage follows the demo's link to the simulator's consent page.
func consentPage(t *testing.T, tb *tab, linkID string) {
	t.Helper()
	tb.do(t, "open the consent page",
		chromedp.Click(chromedp.ID("open-consent")),
		chromedp.WaitVisible(chromedp.ID("consent")),
	)
	got := run(t, tb, "read the consent page", chromedp.AttributeValue(chromedp.ID("consent"), "data-link-id"))
	if got.Value != linkID {
		t.Fatalf("consent page is for link %q, want %q", got.Value, linkID)
	}
}

// waitStatus waits for the demo page, back from the consent page, to show
// the link in status.
func (tb *tab) waitStatus(t *testing.T, status string) {
	t.Helper()
	tb.do(t, "wait for "+status, chromedp.WaitVisible(chromedp.CSS(`#link-status[data-status="`+status+`"]`)))
}

// checkReturned checks that the page came back from the consent page for
// linkID and says so.
func (tb *tab) checkReturned(t *testing.T, linkID, banner string) {
	t.Helper()
	if got := run(t, tb, "read the link id", chromedp.Text(chromedp.ID("link-id"))); got != linkID {
		t.Errorf("demo page shows link %q after the consent page, want %q", got, linkID)
	}
	if got := run(t, tb, "read the banner", chromedp.Text(chromedp.ID("banner"))); !strings.Contains(got, banner) {
		t.Errorf("banner = %q, want it to contain %q", got, banner)
	}
}

// waitReports waits until the reports table lists n reports and returns
// their products, sorted.
func (tb *tab) waitReports(t *testing.T, n int) []string {
	t.Helper()
	run(t, tb, "wait for the reports", chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`document.querySelectorAll('#reports tbody tr').length >= %d`, n),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	got := run(t, tb, "read the reports", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#reports tbody tr')].map((r) => r.dataset.product)`))
	slices.Sort(got)
	return got
}

// waitEvents waits until the integration events panel shows n events
// reading what ("detail-type status" for a consent's change), all of
// linkID, and returns what it shows, oldest first.
func (tb *tab) waitEvents(t *testing.T, linkID, what string, n int) []string {
	t.Helper()
	const read = `[...document.querySelectorAll('#events tbody tr')].map((r) => {
		const d = JSON.parse(r.querySelector('pre').textContent);
		return (r.dataset.detailType + ' ' + (d.status || '')).trim() + '|' + r.cells[2].textContent + '|' + d.linkId;
	})`
	run(t, tb, "wait for "+what+" events", chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`%s.filter((e) => e.startsWith(%q + '|')).length >= %d`, read, what, n),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	rows := run(t, tb, "read the events", chromedp.Evaluate[[]string](read))
	var shown []string
	for _, r := range rows {
		parts := strings.Split(r, "|")
		if len(parts) != 3 || parts[1] != linkID || parts[2] != linkID {
			t.Errorf("event row %q: want link %s in the row and its detail", r, linkID)
			continue
		}
		shown = append(shown, parts[0])
	}
	html := run(t, tb, "read the events panel", chromedp.Evaluate[string](`document.getElementById('events').outerHTML`))
	for _, personal := range []string{testCPF, testCPFBare, "ana@example.com"} {
		if strings.Contains(html, personal) {
			t.Errorf("integration events panel shows %q", personal)
		}
	}
	return shown
}

// checkDownloads fetches each report's download link and checks it gives
// the stored bytes, those the report's own link opens.
func (tb *tab) checkDownloads(t *testing.T, base string) {
	t.Helper()
	rows := run(t, tb, "read the report links", chromedp.Evaluate[[][]string](`[...document.querySelectorAll('#reports tbody tr')].map((r) => [
		r.querySelector('a.open-report').getAttribute('href'),
		(r.querySelector('a.download-report') || {href: ''}).href])`))
	for _, r := range rows {
		if r[1] == "" {
			t.Errorf("report %s has no download link", r[0])
			continue
		}
		stored, downloaded := fetch(t, base+r[0]), fetch(t, r[1])
		if !bytes.Equal(stored, downloaded) {
			t.Errorf("download of %s gave %d bytes, not the %d stored", r[0], len(downloaded), len(stored))
		}
	}
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d (%v)", url, resp.StatusCode, err)
	}
	return body
}

// waitAnswer waits for the answer to Revoke or Delete and checks that it
// shows the status, then hides it for the next one.
func (tb *tab) waitAnswer(t *testing.T, status string) {
	t.Helper()
	tb.do(t, "wait for the answer", chromedp.WaitVisible(chromedp.ID("lifecycle")))
	got := run(t, tb, "read the answer", chromedp.Evaluate[string](
		`document.getElementById('lifecycle-status').textContent + ' ' + document.getElementById('lifecycle-body').textContent`))
	if !strings.HasPrefix(got, status+" ") {
		t.Fatalf("answer = %q, want status %s", got, status)
	}
	run(t, tb, "hide the answer for the next one", chromedp.Evaluate[bool](`document.getElementById('lifecycle').hidden = true`))
}

// checkNoTaxID checks that the page, back from the consent page, shows
// the tax id masked only, in its markup and in its fields.
func (tb *tab) checkNoTaxID(t *testing.T) {
	t.Helper()
	html := run(t, tb, "read the page", chromedp.Evaluate[string](
		`document.documentElement.outerHTML + [...document.querySelectorAll('input')].map((i) => i.value).join(' ')`))
	for _, id := range []string{testCPF, testCPFBare} {
		if strings.Contains(html, id) {
			t.Errorf("page shows the full tax id %q", id)
		}
	}
}

// checkConsole fails on any uncaught exception, console.error call or
// browser error the tab's pages caused. The one error let through is the
// browser's own request for /favicon.ico, which the page does not make and
// the server answers 404.
func (tb *tab) checkConsole(t *testing.T) {
	t.Helper()
	for _, m := range tb.messages() {
		switch {
		case m.Source == "network" && strings.HasSuffix(m.URL, "/favicon.ico"):
			t.Logf("browser console: %s (%s)", m, m.URL)
		case m.IsException(), m.Type == chromedp.ConsoleError:
			t.Errorf("browser console: %s (%s:%d)", m, m.URL, m.Line)
		case m.Type == chromedp.ConsoleWarning:
			t.Logf("browser console: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
}

// saveScreenshot writes the demo's picture: to docs/ with
// UPDATE_SCREENSHOT=1, else to a temporary directory, so that taking it is
// tested either way.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := filepath.Join(t.TempDir(), "demo.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		path = screenshotFile
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
