package klavisim

import (
	"net/http"
	"strings"
	"time"
)

// Rule makes matching requests fail. Rules are checked in the order they
// were armed, before routing and authentication; the first one that matches
// and has uses left applies and uses one up.
//
// What a rule does, in order: wait Delay (giving up, with no answer, as soon
// as the client cancels); then close the connection when CloseConnection;
// else answer Status (default 200) with Body, or with Klavi's error shape
// when Body is empty and Status >= 400. A rule that sets none of Status,
// Body and CloseConnection only delays, then lets the request through to the
// API: a slow but correct answer.
type Rule struct {
	// Method matches case-insensitively; empty matches any method.
	Method string
	// Path matches the exact path or any path below it
	// ("/data/v1/consents" also matches "/data/v1/consents/abc");
	// empty matches any path.
	Path string
	// Times is how many matching requests fail (default 1).
	Times int
	// Status is the HTTP status answered.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Delay holds the answer back, in real time.
	Delay time.Duration
	// Body is sent verbatim, e.g. "{not json", as application/json.
	Body string
	// CloseConnection closes the connection without any answer. It needs a
	// real server (httptest.NewServer); on a writer that cannot be hijacked
	// the handler aborts with http.ErrAbortHandler.
	CloseConnection bool
}

type armedRule struct {
	Rule
	left int
}

// FailNext arms r for the next r.Times matching requests.
func (s *Simulator) FailNext(r Rule) {
	if r.Times <= 0 {
		r.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, armedRule{Rule: r, left: r.Times})
}

// takeRule uses up one use of the first rule matching the request.
func (s *Simulator) takeRule(method, path string) (Rule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rules {
		ar := &s.rules[i]
		if !ar.matches(method, path) {
			continue
		}
		ar.left--
		rule := ar.Rule
		if ar.left <= 0 {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
		}
		return rule, true
	}
	return Rule{}, false
}

func (r Rule) matches(method, path string) bool {
	if r.Method != "" && !strings.EqualFold(r.Method, method) {
		return false
	}
	if r.Path == "" || path == r.Path {
		return true
	}
	prefix := r.Path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return strings.HasPrefix(path, prefix)
}

// applyRule carries out rule. It reports whether it answered (or
// deliberately did not); done is called with the status written, 0 for
// none, before the connection is closed. When it returns false the request
// goes on to the API.
func applyRule(w http.ResponseWriter, r *http.Request, rule Rule, done func(status int)) bool {
	if rule.Delay > 0 {
		t := time.NewTimer(rule.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			done(0)
			return true
		}
	}
	switch {
	case rule.CloseConnection:
		done(0)
		closeConnection(w)
		return true
	case rule.Status == 0 && rule.Body == "":
		return false
	}

	status := rule.Status
	if status == 0 {
		status = http.StatusOK
	}
	if rule.RetryAfter != "" {
		w.Header().Set("Retry-After", rule.RetryAfter)
	}
	switch {
	case rule.Body != "":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(rule.Body))
	case status >= 400:
		writeError(w, errStatus(status, "injected failure"))
	default:
		w.WriteHeader(status)
	}
	done(status)
	return true
}

// closeConnection drops the connection without writing a byte.
func closeConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// Aborting makes the server drop an HTTP/1 connection or reset an
	// HTTP/2 stream; nothing has been written yet.
	panic(http.ErrAbortHandler)
}
