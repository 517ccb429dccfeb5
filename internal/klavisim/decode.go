package klavisim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
)

// object is a decoded JSON request body, kept raw per field. encoding/json
// matches field names case-insensitively, so a struct with
// DisallowUnknownFields would quietly accept "productsCallbackUrl" for
// "productsCallbackURL"; comparing the raw keys exactly does not.
type object map[string]json.RawMessage

// decodeObject parses body as one JSON object whose keys are all in allowed
// (exact casing).
func decodeObject(body []byte, allowed ...string) (object, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errBadRequest("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var o object
	if err := dec.Decode(&o); err != nil {
		return nil, errBadRequest("request body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errBadRequest("request body has data after the JSON object")
	}
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if !slices.Contains(allowed, k) {
			return nil, errBadRequest("unknown field " + quoteName(k))
		}
	}
	return o, nil
}

func (o object) has(k string) bool {
	_, ok := o[k]
	return ok
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(raw, []byte("null"))
}

// str returns a string field, "" when absent. A present field must be a
// non-empty string: optional fields are omitted, not sent as null or "".
func (o object) str(k string) (string, *apiError) {
	raw, ok := o[k]
	if !ok {
		return "", nil
	}
	if isNull(raw) {
		return "", errBadRequest(k + " must not be null; omit it instead")
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", errBadRequest(k + " must be a string")
	}
	if v == "" {
		return "", errBadRequest(k + " must not be empty; omit it instead")
	}
	return v, nil
}

// strings returns a field holding an array of non-empty strings, nil when
// absent. A present array must not be empty.
func (o object) strings(k string) ([]string, *apiError) {
	raw, ok := o[k]
	if !ok {
		return nil, nil
	}
	if isNull(raw) {
		return nil, errBadRequest(k + " must not be null; omit it instead")
	}
	var v []string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errBadRequest(k + " must be an array of strings")
	}
	if len(v) == 0 {
		return nil, errBadRequest(k + " must not be empty; omit it instead")
	}
	if slices.Contains(v, "") {
		return nil, errBadRequest(k + " must not contain empty strings")
	}
	return v, nil
}

// obj returns a field holding a JSON object, compacted, nil when absent.
func (o object) obj(k string) (json.RawMessage, *apiError) {
	raw, ok := o[k]
	if !ok {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errBadRequest(k + " must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errBadRequest(k + " must be a JSON object")
	}
	return buf.Bytes(), nil
}
