package faultproxy

import (
	"encoding/json"
	"encoding/xml"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type kind int

const (
	kindThrottle kind = iota + 1
	kindStatus
	kindReset
	kindResetAfterForward
	kindDelay
)

// Fault is what happens to a request a Rule selects. Build one with
// Throttle, Status, Reset, ResetAfterForward or Delay.
type Fault struct {
	kind   kind
	status int
	delay  time.Duration
}

// Throttle answers the way the service refuses a request for its rate,
// without forwarding it:
//
//   - DynamoDB: 400 ProvisionedThroughputExceededException;
//   - S3: 503 SlowDown;
//   - Secrets Manager and EventBridge: 400 ThrottlingException;
//   - anything else (Klavi): 429 with Klavi's error body.
//
// The AWS SDK retries all three AWS answers.
func Throttle() Fault { return Fault{kind: kindThrottle} }

// Status answers code with the service's error body for it, without
// forwarding: for example Status(500) is DynamoDB's InternalServerError,
// S3's InternalError, Secrets Manager's InternalServiceError, and Klavi's
// {"statusCode":500,...}.
func Status(code int) Fault { return Fault{kind: kindStatus, status: code} }

// Reset reads the request and closes the connection without an answer,
// before forwarding: the request had no effect, the client sees a
// connection reset.
func Reset() Fault { return Fault{kind: kindReset} }

// ResetAfterForward forwards the request, lets the target act on it and
// answer, drops the answer and resets the client's connection: the effect
// happened, the client saw a failure. This is the case that tests whether
// a retried write is idempotent.
func ResetAfterForward() Fault { return Fault{kind: kindResetAfterForward} }

// Delay waits d before forwarding. When the client gives up first (its
// context ends, its connection closes), the request is never forwarded.
func Delay(d time.Duration) Fault { return Fault{kind: kindDelay, delay: d} }

// String names the fault, for test names and messages.
func (f Fault) String() string {
	switch f.kind {
	case kindThrottle:
		return "Throttle"
	case kindStatus:
		return "Status(" + strconv.Itoa(f.status) + ")"
	case kindReset:
		return "Reset"
	case kindResetAfterForward:
		return "ResetAfterForward"
	case kindDelay:
		return "Delay(" + f.delay.String() + ")"
	default:
		return "None"
	}
}

// errorShape is the code, message and status of an injected error answer.
type errorShape struct {
	status  int
	code    string
	message string
}

// writeFault answers r with the throttling or status error of its service.
func writeFault(w http.ResponseWriter, r *http.Request, f Fault, requestID string) {
	svc := serviceOf(r)
	e := shapeFor(svc, f)
	h := w.Header()
	var body []byte
	switch svc {
	case serviceDynamoDB, serviceSecretsManager, serviceEventBridge:
		prefix, contentType := "", "application/x-amz-json-1.1"
		if svc == serviceDynamoDB {
			prefix, contentType = "com.amazonaws.dynamodb.v20120810#", "application/x-amz-json-1.0"
		}
		body, _ = json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{prefix + e.code, e.message})
		h.Set("Content-Type", contentType)
		h.Set("X-Amzn-Requestid", requestID)
		h.Set("X-Amzn-Errortype", e.code)
		if svc == serviceDynamoDB {
			h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
		}
	case serviceS3:
		body, _ = xml.Marshal(struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string   `xml:"Code"`
			Message   string   `xml:"Message"`
			RequestID string   `xml:"RequestId"`
			HostID    string   `xml:"HostId"`
		}{Code: e.code, Message: e.message, RequestID: requestID, HostID: requestID})
		body = append([]byte(xml.Header), body...)
		h.Set("Content-Type", "application/xml")
		h.Set("X-Amz-Request-Id", requestID)
		h.Set("X-Amz-Id-2", requestID)
	default:
		body, _ = json.Marshal(struct {
			StatusCode int    `json:"statusCode"`
			Error      string `json:"error"`
			Message    string `json:"message"`
		}{e.status, e.code, e.message})
		h.Set("Content-Type", "application/json")
		h.Set("X-Request-Id", requestID)
	}
	if r.Method == http.MethodHead {
		// Answers to HEAD carry no body; S3 clients then go by the status.
		body = nil
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func shapeFor(svc service, f Fault) errorShape {
	if f.kind == kindThrottle {
		switch svc {
		case serviceDynamoDB:
			return errorShape{http.StatusBadRequest, "ProvisionedThroughputExceededException",
				"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}
		case serviceS3:
			return errorShape{http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."}
		case serviceSecretsManager, serviceEventBridge:
			return errorShape{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
		default:
			return errorShape{http.StatusTooManyRequests, http.StatusText(http.StatusTooManyRequests), "Rate limit exceeded, retry later"}
		}
	}
	code := f.status
	switch {
	case svc == serviceDynamoDB && code == http.StatusInternalServerError:
		return errorShape{code, "InternalServerError", "Internal server error"}
	case svc == serviceS3 && code == http.StatusInternalServerError:
		return errorShape{code, "InternalError", "We encountered an internal error. Please try again."}
	case svc == serviceSecretsManager && code == http.StatusInternalServerError:
		return errorShape{code, "InternalServiceError", "An error occurred on the server side."}
	case svc == serviceEventBridge && code == http.StatusInternalServerError:
		return errorShape{code, "InternalException", "An internal error occurred."}
	case svc != serviceOther && code == http.StatusServiceUnavailable:
		return errorShape{code, "ServiceUnavailable", "Service is unable to handle request."}
	case svc != serviceOther:
		return errorShape{code, strings.ReplaceAll(http.StatusText(code), " ", ""), http.StatusText(code)}
	default:
		return errorShape{code, http.StatusText(code), "Injected failure"}
	}
}
