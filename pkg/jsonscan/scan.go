// Package jsonscan walks JSON text in place: it checks the syntax of a value
// and finds where it ends without building anything, and it unquotes one
// string into a caller's buffer. It exists for the report webhook, whose
// payloads are megabytes of which only a few fields are read: encoding/json
// validates a whole input before decoding it and reflect-decodes the rest,
// so reading a report's envelope that way costs several passes over bytes
// that are never used.
//
// What is accepted is exactly what encoding/json accepts (RFC 8259 with
// encoding/json's nesting limit; invalid UTF-8 inside strings is accepted),
// and Unquote gives the same string encoding/json would decode. The fuzz
// tests of the callers hold the two to that.
package jsonscan

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit: deeper input is a syntax error.
const MaxDepth = 10000

// SyntaxError reports invalid JSON at a byte offset. It carries no input.
type SyntaxError struct {
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d", e.Offset) }

func syntaxError(i int) error { return &SyntaxError{Offset: i} }

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// load reads 8 bytes little-endian; the caller guarantees i+8 <= len(b).
func load(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i : i+8]) }

// hasZero marks (in its high bits) the bytes of x that are zero. The lowest
// mark is exact; marks above it may be spurious.
func hasZero(x uint64) uint64 { return (x - ones) & ^x & highs }

// stringStops marks the bytes that end a run of plain string content: the
// quote, the backslash and control characters (< 0x20).
func stringStops(x uint64) uint64 {
	return hasZero(x^(ones*'"')) | hasZero(x^(ones*'\\')) | ((x - ones*0x20) & ^x & highs)
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ':
			// Pretty-printed input indents with runs of spaces.
			if i+8 <= len(b) && load(b, i) == ones*' ' {
				i += 8
			} else {
				i++
			}
		case '\n', '\t', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// StringEnd checks the string literal whose opening quote is at b[i] and
// returns the index just past its closing quote.
func StringEnd(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, syntaxError(i)
	}
	i++
	for {
		for i+8 <= len(b) {
			if m := stringStops(load(b, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			return i, syntaxError(i)
		}
		switch b[i] {
		case '"':
			return i + 1, nil
		case '\\':
			n, ok := escapeLen(b, i)
			if !ok {
				return i, syntaxError(i)
			}
			i += n
		default:
			return i, syntaxError(i)
		}
	}
}

// escapeLen returns the length of the valid escape sequence at b[i] ('\\').
func escapeLen(b []byte, i int) (int, bool) {
	if i+1 >= len(b) {
		return 0, false
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		if i+6 > len(b) {
			return 0, false
		}
		for _, c := range b[i+2 : i+6] {
			if hexVal(c) < 0 {
				return 0, false
			}
		}
		return 6, true
	}
	return 0, false
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// numberEnd checks the number at b[i] and returns the index past it.
func numberEnd(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i+1)
	default:
		return i, syntaxError(i)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, syntaxError(i)
		}
		i = digitsEnd(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, syntaxError(i)
		}
		i = digitsEnd(b, i+1)
	}
	return i, nil
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func literalEnd(b []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, syntaxError(i + k)
		}
	}
	return i + len(lit), nil
}

// SkipValue checks the value that starts at or after i (leading whitespace
// is skipped) and returns the index just past it. depth is the nesting
// depth of the value's container (0 at the top level), so that the nesting
// limit counts from the top of the document.
func SkipValue(b []byte, i, depth int) (int, error) {
	// stack holds '{' or '[' for every container open inside this value.
	var local [32]byte
	stack := local[:0]
	var err error
value:
	i = SkipSpace(b, i)
	if i >= len(b) {
		return i, syntaxError(i)
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth+len(stack)+1 > MaxDepth {
			return i, syntaxError(i)
		}
		stack = append(stack, c)
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
			stack = stack[:len(stack)-1]
			i++
			goto after
		}
		if c == '{' {
			goto key
		}
		goto value
	case '"':
		i, err = StringEnd(b, i)
	case 't':
		i, err = literalEnd(b, i, "true")
	case 'f':
		i, err = literalEnd(b, i, "false")
	case 'n':
		i, err = literalEnd(b, i, "null")
	default:
		i, err = numberEnd(b, i)
	}
	if err != nil {
		return i, err
	}
after:
	if len(stack) == 0 {
		return i, nil
	}
	i = SkipSpace(b, i)
	if i >= len(b) {
		return i, syntaxError(i)
	}
	switch top := stack[len(stack)-1]; b[i] {
	case ',':
		i = SkipSpace(b, i+1)
		if top == '{' {
			goto key
		}
		goto value
	case top + 2:
		stack = stack[:len(stack)-1]
		i++
		goto after
	default:
		return i, syntaxError(i)
	}
key:
	if i, err = StringEnd(b, i); err != nil {
		return i, err
	}
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, syntaxError(i)
	}
	i++
	goto value
}

// Members walks the object whose opening brace is at or after i, at the
// given depth (0 for the top level), calling member for each key with the
// key's literal (quotes and escapes included) and the index where the value
// starts. member returns the index just past the value, for example from
// SkipValue(b, at, depth+1). Members returns the index past the closing
// brace.
func Members(b []byte, i, depth int, member func(key []byte, at int) (int, error)) (int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return i, syntaxError(i)
	}
	if depth+1 > MaxDepth {
		return i, syntaxError(i)
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		start := i
		end, err := StringEnd(b, i)
		if err != nil {
			return end, err
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxError(i)
		}
		if i, err = member(b[start:end], SkipSpace(b, i+1)); err != nil {
			return i, err
		}
		i = SkipSpace(b, i)
		if i >= len(b) {
			return i, syntaxError(i)
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, syntaxError(i)
		}
	}
}

// KeyIs reports whether the key literal (as Members gives it) names the
// struct field tagged name the way encoding/json matches them: exactly or
// case-insensitively under Unicode simple folding.
func KeyIs(key []byte, name string) bool {
	raw := key[1 : len(key)-1]
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		if len(raw) != len(name) {
			return false
		}
		for k, c := range raw {
			if upperASCII(c) != upperASCII(name[k]) {
				return false
			}
		}
		return true
	}
	s, _, err := Unquote(nil, key, 0)
	if err != nil {
		return false
	}
	return string(foldName(s)) == string(foldName([]byte(name)))
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// foldName is encoding/json's key folding: ASCII upper case, and every
// other rune mapped to the smallest rune of its simple fold orbit.
func foldName(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			out = append(out, upperASCII(c))
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// Unquote checks the string literal whose opening quote is at b[i] and
// appends its contents to dst, decoded as encoding/json decodes a string:
// escapes resolved, a \u escape that is half a surrogate pair and every
// byte of invalid UTF-8 replaced by U+FFFD. It returns the extended buffer
// and the index past the closing quote.
//
// The string is read once. When dst has room for the literal's length plus
// 8 bytes (the usual case: the caller sizes it from the input), the
// contents are copied 8 bytes at a time and dst is never reallocated; only
// invalid UTF-8, which decodes longer than it is written, can make it grow.
func Unquote(dst []byte, b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		return dst, i, syntaxError(i)
	}
	i++
	w := len(dst)
	dst = dst[:cap(dst)]
	for {
		i, w = unquoteRuns(dst, b, i, w)
		if i >= len(b) {
			return dst[:w], i, syntaxError(i)
		}
		c := b[i]
		switch {
		case c == '"':
			return dst[:w], i + 1, nil
		case c == '\\':
			// The two-byte escapes (\" and \n above all, in an event
			// carrying pretty-printed JSON) decode to one byte.
			if i+1 < len(b) && w < len(dst) {
				if e := unescape[b[i+1]]; e != 0 {
					dst[w] = e
					w++
					i += 2
					continue
				}
			}
			n, ok := escapeLen(b, i)
			if !ok {
				return dst[:w], i, syntaxError(i)
			}
			var r rune
			if n == 6 {
				r = hex4(b[i+2:])
				if utf16.IsSurrogate(r) {
					r = unicode.ReplacementChar
					if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						if m, ok := escapeLen(b, i+6); ok && m == 6 {
							if d := utf16.DecodeRune(hex4(b[i+2:]), hex4(b[i+8:])); d != unicode.ReplacementChar {
								r = d
								n = 12
							}
						}
					}
				}
			} else {
				r = rune(unescape[b[i+1]])
			}
			dst, w = putRune(dst, w, r)
			i += n
		case c < 0x20:
			return dst[:w], i, syntaxError(i)
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				dst, w = putRune(dst, w, unicode.ReplacementChar)
			} else {
				dst, w = grow(dst, w, n)
				w += copy(dst[w:], b[i:i+n])
			}
			i += n
		default:
			// A plain byte near the end of b or of dst.
			dst, w = grow(dst, w, 1)
			dst[w] = c
			w++
			i++
		}
	}
}

// unquoteRuns is Unquote's fast path: it copies plain bytes and decodes the
// two-byte escapes from b[i:] to dst[w:] until it meets a byte it leaves to
// the caller (the closing quote, a \u escape, a control character or any
// byte of a multi-byte UTF-8 sequence) or comes within 16 bytes of the end
// of b or dst. It returns the new i and w.
//
// A pretty-printed report inside an event has an escape every ten bytes or
// so: every round stores 8 bytes as they are, advances past the plain ones,
// and decodes the escape that stopped it, if any, in the same round. Loop
// bounds of 16 bytes let the escape be read and written without further
// checks. Branching on the stop measured faster than computing the round
// without branches: the loads of the next round then wait for the escape's
// table lookup, where a predicted branch does not.
func unquoteRuns(dst, b []byte, i, w int) (int, int) {
	for i+16 <= len(b) && w+16 <= len(dst) {
		x := load(b, i)
		binary.LittleEndian.PutUint64(dst[w:w+8], x)
		m := plainStops(x)
		if m == 0 {
			i += 8
			w += 8
			continue
		}
		n := bits.TrailingZeros64(m) >> 3
		i += n
		w += n
		if b[i] != '\\' {
			return i, w
		}
		e := unescape[b[i+1]]
		if e == 0 {
			return i, w
		}
		dst[w] = e
		w++
		i += 2
	}
	return i, w
}

// plainStops marks (in the high bit of each byte) the bytes of x that
// Unquote's fast path does not copy as they are: '"', '\\', control
// characters and every byte >= 0x80. The lowest mark is exact; marks above
// it may be spurious. Each subtraction sets the high bit of a byte that is
// below the subtrahend (or wraps a borrow from a lower marked byte), and
// bytes >= 0x80 are marked through x itself.
func plainStops(x uint64) uint64 {
	quote := (x ^ (ones * '"')) - ones
	backslash := (x ^ (ones * '\\')) - ones
	control := x - ones*0x20
	return (quote | backslash | control | x) & highs
}

var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(b []byte) rune {
	return rune(hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3]))
}

// grow makes room for n more bytes after w.
func grow(dst []byte, w, n int) ([]byte, int) {
	if w+n <= len(dst) {
		return dst, w
	}
	bigger := make([]byte, max(2*len(dst), w+n+8))
	copy(bigger, dst[:w])
	return bigger, w
}

func putRune(dst []byte, w int, r rune) ([]byte, int) {
	if r < utf8.RuneSelf {
		dst, w = grow(dst, w, 1)
		dst[w] = byte(r)
		return dst, w + 1
	}
	dst, w = grow(dst, w, utf8.UTFMax)
	return dst, w + utf8.EncodeRune(dst[w:], r)
}
