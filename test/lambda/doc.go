// Package lambda runs every function's built bootstrap under the AWS Lambda
// Runtime Interface Emulator, against the AWS emulator (moto) and the Klavi
// simulator, and invokes it with the JSON files in events/: the Lambda
// runtime contract end to end, not just the handler funcs.
//
// The scenario test starts each function once and walks one link through
// its life: token refresh, link creation, a signed consent event, the
// stream record that asks for reports, a signed report, a manual report
// request, a reconciliation sweep. Each answer and each side effect (DynamoDB item, S3 object,
// token secret, simulator request) is asserted, and so is what the
// functions log. Another test checks that each function refuses to start,
// visibly, without each variable it requires.
//
// The consumer flow test walks a link through the consumer side: the
// simulator sends its signed webhooks (consent events, reports,
// consent_revoked) through a stand-in for API Gateway to the functions;
// the table's stream is read from the emulator's own DynamoDB stream
// (awstest.StreamReader) and handed to the report-request and
// integration-events functions as their event source mappings would; a
// rule sends the bus's events to an SQS queue the test reads as a consumer.
// It checks the download, revoke and delete routes' answers, that the
// presigned URLs give the stored bytes, the integration events of the link
// in order with each eventId once, no personal data in events or logs, and
// that after the delete nothing of the link's reports or tax id remains
// and later deliveries change nothing. The presign test fetches URLs from
// the emulator's S3 and says what moto does not enforce (signature and
// expiry of a presigned GET).
//
//	go test -race ./test/lambda/
//
// The race detector applies to the test process (and the simulator in it),
// not to the function binaries, which are built as Lambda runs them.
package lambda
