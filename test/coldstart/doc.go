// Package coldstart measures two bars of design section 6 against the
// hello-world function in test/baseline: binary size (each function's
// linux/arm64 bootstrap <= 1.5x the baseline's) and cold start (process
// start to first answer under the Lambda Runtime Interface Emulator <= 1.5x
// the baseline's).
//
// Every directory under functions/ with a main.go is measured; it is
// discovered at run time.
//
//	go test ./test/coldstart/                                   # size bar as a test
//	go test -run='^$' -bench=. -benchtime=5x ./test/coldstart/  # figures
//
// Keep -benchtime to a count: each cold start iteration starts an emulator
// and a fresh function process, so a time-based benchtime runs hundreds of
// them.
package coldstart
