package klavi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// seconds decodes a lifetime in seconds leniently: Klavi's examples send
// expireIn as a number (1800) while one of its field tables types it as a
// string, so 1800, "1800", 1800.5 and "1800.5" are all accepted. null and ""
// decode as zero, meaning "not given".
type seconds time.Duration

// maxSeconds keeps the conversion to time.Duration from overflowing.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

var errBadSeconds = &shapeError{msg: "expireIn is not a non-negative number of seconds"}

func (s *seconds) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = 0
		return nil
	}
	text := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &text); err != nil {
			return errBadSeconds
		}
		text = strings.TrimSpace(text)
		if text == "" {
			*s = 0
			return nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxSeconds {
		return errBadSeconds
	}
	*s = seconds(time.Duration(math.Round(f * float64(time.Second))))
	return nil
}
