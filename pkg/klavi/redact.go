package klavi

import (
	"net/url"
	"strconv"
)

// mask stands in for a secret or personal value in String and LogValue
// output. It still tells an empty value from a set one, which is what
// debugging usually needs.
func mask(s string) string {
	if s == "" {
		return `""`
	}
	return redacted
}

// maskRaw describes partner JSON by its size only: it may hold anything.
func maskRaw(b []byte) string {
	if len(b) == 0 {
		return `""`
	}
	return "[" + strconv.Itoa(len(b)) + " bytes]"
}

// stripQuery drops the query and fragment of a URL, where tokens travel
// (Klavi's linkURL carries the link token as ?v=).
func stripQuery(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = ""
		u.ForceQuery = false
		u.Fragment = ""
		return u.String() + "?" + redacted
	}
	u.Fragment = ""
	return u.String()
}
