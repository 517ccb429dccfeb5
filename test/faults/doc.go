// Package faults runs each function's handler over the real stores (DynamoDB,
// S3 and Secrets Manager in the AWS emulator) and the Klavi simulator, with
// a fault proxy (internal/faultproxy) in front of each, and shows for every
// injected failure what the caller sees and that nothing is lost or
// duplicated: a webhook either answers 2xx with its effect durable, or
// non-2xx so that Klavi delivers it again, and the redelivery completes the
// effect exactly once.
//
// The AWS SDK clients use the standard retryer with its default of 3
// attempts, set explicitly (sdkAttempts), and a 1 ms backoff so the tests do
// not wait; a fault meant to reach the handler covers all 3 attempts.
//
//	go test -race ./test/faults/
package faults
