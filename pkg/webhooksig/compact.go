package webhooksig

import (
	"bytes"
	"io"
)

// jsonSpace holds the bytes JSON treats as insignificant whitespace. A body
// without any of them is its own compact form.
const jsonSpace = " \t\n\r"

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// writeCompact writes src to w without the whitespace outside string
// literals, which for valid JSON is exactly what json.Compact produces. It
// streams runs of src instead of building the compact copy, so checking a
// multi-megabyte report costs no allocation proportional to its size. src
// must be valid JSON (json.Valid); for anything else the output is
// unspecified. Write errors are ignored: w is a hash, which never fails.
func writeCompact(w io.Writer, src []byte) {
	start := 0
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == '"':
			i = stringEnd(src, i+1)
		case isSpace(c):
			if start < i {
				w.Write(src[start:i])
			}
			i++
			start = i
		default:
			i++
		}
	}
	if start < len(src) {
		w.Write(src[start:])
	}
}

// stringEnd returns the index just past the quote that closes the string
// literal whose contents start at i. Reports are mostly string contents, so
// it jumps from quote to quote instead of stepping byte by byte.
func stringEnd(src []byte, i int) int {
	for {
		j := bytes.IndexByte(src[i:], '"')
		if j < 0 {
			return len(src)
		}
		q := i + j
		// The quote is escaped when an odd number of backslashes precede
		// it. The run cannot reach past the opening quote.
		n := 0
		for k := q - 1; k >= 0 && src[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}
