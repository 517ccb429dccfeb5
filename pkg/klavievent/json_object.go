package klavievent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// errNotObject marks a JSON value that should have been an object. It is
// internal: callers see it wrapped as ErrMalformed.
var errNotObject = errors.New("not a JSON object")

// member is one key/value pair of a JSON object, value left undecoded.
type member struct {
	key   string
	value json.RawMessage
}

// object keeps a JSON object's members in document order, duplicates
// included. Klavi's documentation spells some keys in two casings (eventId
// and eventID), so lookups must be case-insensitive, deterministic and able
// to see every spelling at once; a Go map gives none of that.
type object []member

// decodeObject reads one JSON object. It does not require data to be a
// single value: callers run json.Valid on the whole body first.
func decodeObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	var obj object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		obj = append(obj, member{key: key, value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return obj, nil
}

// get returns the value of the last member whose key equals name
// case-insensitively: the member encoding/json would have used.
func (o object) get(name string) (json.RawMessage, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if strings.EqualFold(o[i].key, name) {
			return o[i].value, true
		}
	}
	return nil, false
}

// str returns the named member as trimmed text, or "" when it is absent,
// null or not a scalar. Lenient on purpose: a field of an unexpected type
// must not make a whole delivery unreadable.
func (o object) str(name string) string {
	v, ok := o.get(name)
	if !ok {
		return ""
	}
	s, _ := scalar(v)
	return s
}

// scalar returns a JSON string's value or a JSON number's literal text,
// trimmed. Numbers keep their literal so that large ids lose no digits.
// null gives ("", true); objects, arrays and booleans give ("", false).
func scalar(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", true
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	case c == '-' || (c >= '0' && c <= '9'):
		return string(v), true
	case c == 'n':
		return "", true
	default:
		return "", false
	}
}

// isNull reports whether v is absent or the JSON literal null.
func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}

// firstNonEmpty returns the first argument that is not "".
func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
