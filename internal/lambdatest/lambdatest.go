// Package lambdatest builds Lambda function binaries and runs them under the
// AWS Lambda Runtime Interface Emulator (RIE), so tests exercise the real
// Runtime API contract of a built bootstrap rather than a handler func.
//
//	bin := lambdatest.Build(t, "./functions/token-refresh")
//	fn := lambdatest.Start(t, bin, awstest.Env(t))
//	out, ferr := fn.InvokeFile(t, "events/token-refresh.json")
//
// Package paths and file paths that are relative are resolved against the
// module root (the directory of `go env GOMOD`), not the test's directory,
// so the same path works from every package.
//
// # Building
//
// Binaries are built like the Makefile builds them for Lambda
// (CGO_ENABLED=0, -tags lambda.norpc, -trimpath, -ldflags="-s -w"), for the
// host platform by [Build] and for any platform by [BuildFor]. The lambda.norpc
// tag makes aws-lambda-go speak the Runtime API that the emulator serves. Each
// package path is built once per test binary, at most two `go build` at a
// time. Outputs live in one directory per module under os.TempDir, named
// after the module root, and are replaced atomically by each build, so
// repeated runs neither accumulate files nor see a half-written binary.
//
// The emulator is the module's pinned `go tool aws-lambda-rie`; [RIEPath]
// builds it from the module cache (no network), once per test binary. When it
// cannot be built the test fails; it is never skipped.
//
// # What the emulator does (read from its source and observed)
//
//   - It takes the bootstrap as its first argument and starts it lazily, on
//     the first invocation, not at start-up; that first invocation therefore
//     carries the whole cold start (process start, init, first answer).
//   - It listens on --runtime-interface-emulator-address (default
//     0.0.0.0:8080) for POST /2015-03-31/functions/function/invocations, and
//     serves the Runtime API on --runtime-api-address (default
//     127.0.0.1:9001). Both defaults are fixed ports, so [Start] picks free
//     127.0.0.1 ports for both; otherwise two emulators collide.
//   - It passes its whole environment to the function and sets
//     AWS_LAMBDA_RUNTIME_API itself. [Start] therefore runs it with a small,
//     fixed environment (never the test process's), so developer credentials
//     or profiles never reach a function under test. AWS_LAMBDA_MAX_CONCURRENCY
//     must not be set: it switches the emulator to another, managed-instances
//     mode.
//   - Its own log goes to stderr; the function's stdout and stderr share the
//     emulator's stdout, where it also prints START, END and REPORT lines and
//     "INIT REPORT(durationMs: ...)" on stderr. [Function.Logs] holds both
//     streams in one buffer.
//   - Answers: a result is 200 with the handler's JSON. An error the handler
//     returned is also 200, with {"errorMessage","errorType"} in the body and
//     no X-Amz-Function-Error header (the emulator drops response headers).
//     A panic or an exit during an invocation is 502 with the error body
//     (errorType "Runtime.ExitError" for an exit); the emulator then restarts
//     the runtime on the next invocation. A failed init is 502 with an empty
//     body. A timeout is 200 with the plain text "Task timed out after N.00
//     seconds". [Function.Invoke] turns all of these but a result into an
//     [InvokeError].
//   - It runs the bootstrap in its own process group and kills it with
//     SIGKILL when it gets SIGTERM, so [Function.Stop] sends SIGTERM first
//     and only kills the runtime itself when the emulator does not exit.
package lambdatest
