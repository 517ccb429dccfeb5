package devserver

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openfinance-br/klavi-link-lambda/pkg/httpapi"
	"github.com/openfinance-br/klavi-link-lambda/pkg/linkstore"
	"github.com/openfinance-br/klavi-link-lambda/pkg/reportstore"
)

// static holds the demo page: what a fintech's frontend does with the API.
//
//go:embed static
var static embed.FS

// demoCSP keeps the demo page to its own scripts and styles; API calls go
// to the same origin.
const demoCSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// devRoutes adds the demo page and the routes that exist only locally:
// the list of a link's stored reports and the reports themselves, which a
// deployed backend keeps in a private bucket.
func (s *Server) devRoutes(mux *http.ServeMux) {
	assets, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(assets)
	page := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", demoCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		files.ServeHTTP(w, r)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.Handle("GET /assets/", http.StripPrefix("/assets", http.HandlerFunc(page)))
	mux.HandleFunc("GET /dev/links/{linkId}/reports", s.serveReportList)
	mux.HandleFunc("GET /dev/reports/{key...}", s.serveReport)
	mux.HandleFunc("GET /dev/info", s.serveInfo)
	mux.HandleFunc("GET /dev/events", s.serveEvents)
	if s.disk != nil {
		mux.HandleFunc("GET "+downloadPath+"{key...}", s.serveDownload)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		// What API Gateway answers for a route it does not have.
		writeGatewayError(w, http.StatusNotFound, newRequestID())
	})
}

// storedReport is one entry of GET /dev/links/{linkId}/reports.
type storedReport struct {
	ProductName     string    `json:"productName"`
	ProductReportID string    `json:"productReportId"`
	RequestID       string    `json:"requestId"`
	ObjectKey       string    `json:"objectKey"`
	Bytes           int64     `json:"bytes"`
	ReceivedAt      time.Time `json:"receivedAt"`
	// Href opens the report (GET /dev/reports/{objectKey}).
	Href string `json:"href"`
}

// serveReportList is GET /dev/links/{linkId}/reports: the link's reports
// with the keys they are stored under, which the link view leaves out.
func (s *Server) serveReportList(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("linkId")
	if !linkstore.ValidLinkID(id) {
		writeAPI(w, httpapi.Error(http.StatusNotFound, "link_not_found", "No link with this id."))
		return
	}
	link, err := s.links.GetLink(r.Context(), id)
	switch {
	case errors.Is(err, linkstore.ErrNotFound):
		writeAPI(w, httpapi.Error(http.StatusNotFound, "link_not_found", "No link with this id."))
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "dev report list: get link", "linkId", id, "error", err)
		writeAPI(w, httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The link could not be read. Try again."))
		return
	}
	out := struct {
		LinkID  string         `json:"linkId"`
		Reports []storedReport `json:"reports"`
	}{LinkID: link.LinkID, Reports: make([]storedReport, 0, len(link.Reports))}
	for _, rep := range link.Reports {
		out.Reports = append(out.Reports, storedReport{
			ProductName:     rep.ProductName,
			ProductReportID: rep.ProductReportID,
			RequestID:       rep.RequestID,
			ObjectKey:       rep.ObjectKey,
			Bytes:           rep.Bytes,
			ReceivedAt:      rep.ReceivedAt.UTC(),
			Href:            reportHref(rep.ObjectKey),
		})
	}
	writeAPI(w, httpapi.JSON(http.StatusOK, out))
}

// reportHref is the dev route of a stored report.
func reportHref(key string) string { return "/dev/reports/" + escapeKey(key) }

// escapeKey escapes each segment of an object key for a URL path (keys may
// hold '%').
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// serveReport is GET /dev/reports/{objectKey}: a stored report, byte for
// byte. Only keys of the report store's own shapes are served, so nothing
// outside the store can be named.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	s.writeStored(w, r, r.PathValue("key"))
}

// writeStored answers with a stored report, byte for byte.
func (s *Server) writeStored(w http.ResponseWriter, r *http.Request, key string) {
	if reportstore.CheckKey(key) != nil {
		writeAPI(w, httpapi.Error(http.StatusNotFound, "report_not_found", "No stored report with this key."))
		return
	}
	body, size, err := s.objects.Open(r.Context(), key)
	switch {
	case errors.Is(err, reportstore.ErrNotFound):
		writeAPI(w, httpapi.Error(http.StatusNotFound, "report_not_found", "No stored report with this key."))
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "dev report: open", "objectKey", key, "error", err)
		writeAPI(w, httpapi.Error(http.StatusServiceUnavailable, "storage_unavailable", "The report could not be read. Try again."))
		return
	}
	defer body.Close()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		s.log.WarnContext(r.Context(), "dev report: copy", "objectKey", key, "error", err)
	}
}

// serveEvents is GET /dev/events: the integration events published so far
// (the last DefaultKeptEvents), oldest first; ?linkId= keeps one link's.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	writeAPI(w, httpapi.JSON(http.StatusOK, s.events.Events(r.URL.Query().Get("linkId"))))
}

// Info describes how the server is put together, for the demo page and the
// start banner. It holds no secret.
type Info struct {
	URL          string `json:"url"`
	Klavi        string `json:"klavi"` // "simulator" or the base URL
	KlaviBaseURL string `json:"klaviBaseURL"`
	LinkStore    string `json:"linkStore"` // "memory" or "dynamodb:<table>"
	ReportStore  string `json:"reportStore"`
	Tokens       string `json:"tokens"`
	ChangeFeed   bool   `json:"changeFeed"`
	// EventBus is where integration events go: "local" (kept in process)
	// or "eventbridge:<bus>"; "" when nothing publishes them (no feed).
	EventBus           string `json:"eventBus"`
	AutoRequestReports bool   `json:"autoRequestReports"`
	ReportWebhookURL   string `json:"reportWebhookURL"`
}

// Info returns the server's setup; URLs are empty before Start.
func (s *Server) Info() Info {
	url := s.URL()
	in := Info{
		URL:                url,
		Klavi:              s.cfg.KlaviBaseURL,
		KlaviBaseURL:       s.cfg.KlaviBaseURL,
		LinkStore:          "memory",
		ChangeFeed:         s.stream != nil,
		AutoRequestReports: !s.cfg.ManualReportsOnly,
		ReportWebhookURL:   s.cfg.ReportWebhookURL,
		Tokens:             "klavi-auth",
	}
	if s.cfg.Simulated() {
		in.Klavi = "simulator"
		if url != "" {
			in.KlaviBaseURL = url + "/klavi"
		}
	}
	if s.cfg.LinksTable != "" {
		in.LinkStore = "dynamodb:" + s.cfg.LinksTable
	}
	if s.disk != nil {
		in.ReportStore = "disk:" + displayPath(s.disk.Root())
	} else {
		in.ReportStore = "s3:" + s.cfg.ReportsBucket
	}
	if s.cfg.CredentialsSecret != "" {
		in.Tokens = "secretsmanager"
	}
	switch {
	case s.stream == nil:
	case s.cfg.EventBusName != "":
		in.EventBus = "eventbridge:" + s.cfg.EventBusName
	default:
		in.EventBus = localBusName
	}
	if in.ReportWebhookURL == "" && url != "" {
		in.ReportWebhookURL = url + httpapi.ReportWebhookPath
	}
	return in
}

func (s *Server) serveInfo(w http.ResponseWriter, _ *http.Request) {
	writeAPI(w, httpapi.JSON(http.StatusOK, s.Info()))
}

// writeAPI writes a response built with httpapi, as the adapter would.
func writeAPI(w http.ResponseWriter, resp httpapi.Response) {
	_, _ = writeResponse(w, resp, newRequestID())
}

// Describe writes what runs where, for a person at a terminal: the URLs to
// open and where each part lives. It never prints a key or token.
func (s *Server) Describe(w io.Writer) {
	in := s.Info()
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	p("\nKlavi Link — local development server\n\n")
	p("  demo page        %s/\n", in.URL)
	p("  API              %s  (POST /links, GET and DELETE /links/{linkId}, POST /links/{linkId}/reports,\n", in.URL)
	p("                   GET /links/{linkId}/reports/{productReportId}, POST /links/{linkId}/revoke)\n")
	p("  events           %s/dev/events", in.URL)
	switch {
	case in.EventBus == localBusName:
		p("  (kept in process, the last %d)\n", s.events.max)
	case in.EventBus != "":
		p("  (and EventBridge bus %s)\n", s.cfg.EventBusName)
	default:
		p("  (none: they are published from the stream)\n")
	}
	p("  webhooks         %s/webhooks/klavi/events\n", in.URL)
	p("                   %s/webhooks/klavi/reports\n", in.URL)
	if in.Klavi == "simulator" {
		p("  Klavi            simulator at %s (KLAVI_BASE_URL for other tools; consent pages at %s/link/...)\n", in.KlaviBaseURL, in.URL)
	} else {
		p("  Klavi            %s\n", in.KlaviBaseURL)
	}
	if in.ChangeFeed {
		p("  link store       in memory, lost on exit; its change feed stands in for the DynamoDB stream\n")
	} else {
		p("  link store       DynamoDB table %s\n", s.cfg.LinksTable)
	}
	if s.disk != nil {
		p("  reports          %s\n", s.disk.Root())
	} else {
		p("  reports          S3 bucket %s\n", s.cfg.ReportsBucket)
	}
	if in.Tokens == "secretsmanager" {
		p("  Klavi token      Secrets Manager (%s), renewed every %s\n", s.cfg.TokenSecret, s.cfg.TokenRefresh)
	} else {
		p("  Klavi token      in memory from /auth, renewed every %s\n", s.cfg.TokenRefresh)
	}
	switch {
	case !in.AutoRequestReports:
		p("\n  Reports are requested only through POST /links/{linkId}/reports (AUTO_REQUEST_REPORTS=false).\n")
	case !in.ChangeFeed:
		p("\n  A DynamoDB table's stream cannot be read locally: authorised consents are found by a sweep\n")
		p("  every %s instead (the reconciliation path), or request reports with POST /links/{linkId}/reports.\n", s.cfg.SweepInterval)
		p("  Purges on consent_deleted_by_user need the stream and do not happen in this mode.\n")
	}
	if in.Klavi != "simulator" {
		p("\n  Klavi must reach the webhooks: expose this server on a public https URL (a tunnel), set\n")
		p("  REPORT_WEBHOOK_URL to <public URL>/webhooks/klavi/reports, and enter <public URL>/webhooks/klavi/events\n")
		p("  as the event webhook in Klavi's console. Now sending reports to %s\n", in.ReportWebhookURL)
	}
	p("\n  Open %s/ in a browser. Ctrl-C stops.\n\n", in.URL)
}

// displayPath shows dir relative to the working directory when it is below
// it, as a developer would type it.
func displayPath(dir string) string {
	wd, err := os.Getwd()
	if err != nil {
		return dir
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return dir
	}
	return rel
}
