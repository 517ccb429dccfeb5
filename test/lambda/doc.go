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
//	go test -race ./test/lambda/
//
// The race detector applies to the test process (and the simulator in it),
// not to the function binaries, which are built as Lambda runs them.
package lambda
