package s3lite

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// ErrChecksumMismatch reports that an object's bytes, read to the end, do
// not match the checksum S3 stored with it.
var ErrChecksumMismatch = errors.New("object checksum mismatch")

// maxErrorBytes bounds what is read of an error response: S3's error
// documents are small, and only a few of their fields are kept.
const maxErrorBytes = 64 << 10

// maxMessageLen bounds the message kept from an error response.
const maxMessageLen = 256

// APIError is an error response from S3. It satisfies smithy.APIError, and
// HTTPStatusCode reports the status, so callers can match either the code
// or, for responses without a body, the status. NoSuchKey and NoSuchBucket
// also unwrap to the SDK's modeled *types.NoSuchKey and *types.NoSuchBucket.
//
// Only S3's Code, Message, RequestId and HostId are kept: error documents
// can echo the string S3 signed and the access key id, and those stay out
// of errors.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	HostID     string
}

var _ smithy.APIError = (*APIError)(nil)

func (e *APIError) Error() string {
	msg := fmt.Sprintf("api error %s: %s (HTTP %d", e.Code, e.Message, e.StatusCode)
	if e.RequestID != "" {
		msg += ", request id " + e.RequestID
	}
	return msg + ")"
}

// ErrorCode returns S3's error code, or one derived from the HTTP status
// ("NotFound", "PreconditionFailed", ...) when the response had no body.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage returns S3's message.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault reports a 5xx as the server's fault and anything else as the
// client's.
func (e *APIError) ErrorFault() smithy.ErrorFault {
	if e.StatusCode >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// HTTPStatusCode returns the response's HTTP status.
func (e *APIError) HTTPStatusCode() int { return e.StatusCode }

// Unwrap returns the SDK's modeled error for the codes S3 models, so code
// written against *s3.Client's errors keeps matching.
func (e *APIError) Unwrap() error {
	msg := &e.Message
	switch e.Code {
	case "NoSuchKey":
		return &types.NoSuchKey{Message: msg}
	case "NoSuchBucket":
		return &types.NoSuchBucket{Message: msg}
	}
	return nil
}

type errorDoc struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
	HostID    string `xml:"HostId"`
}

// readError turns a non-2xx response into an *APIError and closes its
// body.
func readError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  resp.Header.Get("X-Amz-Request-Id"),
		HostID:     resp.Header.Get("X-Amz-Id-2"),
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var doc errorDoc
	if len(data) > 0 && xml.Unmarshal(data, &doc) == nil && doc.Code != "" {
		e.Code = clean(doc.Code)
		e.Message = clean(doc.Message)
		if doc.RequestID != "" {
			e.RequestID = doc.RequestID
		}
		if doc.HostID != "" {
			e.HostID = doc.HostID
		}
	} else {
		e.Code = statusCode(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.RequestID, e.HostID = clean(e.RequestID), clean(e.HostID)
	return e
}

// statusCode derives an error code from an HTTP status, as S3 itself
// would name it: 404 "NotFound", 412 "PreconditionFailed".
func statusCode(status int) string {
	if text := http.StatusText(status); text != "" {
		return strings.NewReplacer(" ", "", "-", "").Replace(text)
	}
	return fmt.Sprintf("HTTP%d", status)
}

// clean keeps at most maxMessageLen bytes of printable text.
func clean(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for _, r := range s {
		if b.Len()+utf8.RuneLen(r) > maxMessageLen {
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// retryableCode reports whether an S3 error code is worth another attempt
// whatever its status (RequestTimeout comes with a 400).
func retryableCode(code string) bool {
	switch code {
	case "RequestTimeout", "RequestTimeoutException", "SlowDown", "InternalError",
		"ServiceUnavailable", "Throttling", "ThrottlingException", "RequestThrottled",
		"RequestLimitExceeded", "TooManyRequestsException", "BandwidthLimitExceeded",
		"PriorRequestNotComplete":
		return true
	}
	return false
}

// retryable reports whether an attempt that failed with err may succeed
// if repeated.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return retryableCode(apiErr.Code)
	}
	return retryableNetError(err)
}

// retryableNetError reports whether err is a connection failure: refused,
// reset, closed before the response was complete, or timed out. Requests
// the transport refuses to send (an invalid header, say) are not retried.
func retryableNetError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &opErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return false
}
