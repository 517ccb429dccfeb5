// Package coldstart measures, against the hello-world aws-lambda-go function
// in test/baseline built the same way, two figures of design section 6: cold
// start (process start to first answer under the Lambda Runtime Interface
// Emulator, bar 2x the baseline's) and binary size (each function's
// linux/arm64 bootstrap, reported with its ratio, no bar).
//
// Every directory under functions/ with a main.go is measured; it is
// discovered at run time. Both are benchmarks, never timed tests:
//
//	go test -run='^$' -bench=. -benchtime=5x ./test/coldstart/
//
// Keep -benchtime to a count: each cold start iteration starts an emulator
// and a fresh function process, so a time-based benchtime runs hundreds of
// them.
package coldstart
