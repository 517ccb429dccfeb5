package lambdatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// InvokeError is an invocation the function did not answer with a result.
type InvokeError struct {
	// StatusCode is the emulator's HTTP status: 200 for an error the handler
	// returned or a timeout, 502 for a panic, an exit or a failed init.
	StatusCode int
	// Type and Message are errorType and errorMessage of the error body;
	// both are empty when the emulator sent none (a failed init).
	Type    string
	Message string
	// Body is the answer as the emulator sent it.
	Body []byte
}

func (e *InvokeError) Error() string {
	if e.Type == "" && e.Message == "" {
		return fmt.Sprintf("function failed with emulator status %d and no error body", e.StatusCode)
	}
	return fmt.Sprintf("function failed with emulator status %d: %s: %s", e.StatusCode, e.Type, e.Message)
}

// timeoutPrefix starts the emulator's plain-text answer to an invocation
// that ran out of time; it comes with status 200.
const timeoutPrefix = "Task timed out after"

// classify returns nil for a result and the error otherwise. The emulator
// sends no X-Amz-Function-Error header, so a handler error is recognised by
// its body: an object with both errorType and errorMessage.
func classify(status int, body []byte) *InvokeError {
	if status == http.StatusOK && bytes.HasPrefix(body, []byte(timeoutPrefix)) {
		return &InvokeError{StatusCode: status, Type: "Sandbox.Timedout", Message: string(body), Body: body}
	}
	var e struct {
		Type    *string `json:"errorType"`
		Message *string `json:"errorMessage"`
	}
	isError := json.Unmarshal(body, &e) == nil && e.Type != nil && e.Message != nil
	if status == http.StatusOK && !isError {
		return nil
	}
	ierr := &InvokeError{StatusCode: status, Body: body}
	if isError {
		ierr.Type, ierr.Message = *e.Type, *e.Message
	}
	return ierr
}
