// Package browser clicks through the demo page of the local stack (`make
// run`, internal/devserver) in a headless Chromium driven over the DevTools
// protocol: create a link, authorise at the simulator's consent page, come
// back and watch REPORTS_RECEIVED and the reports arrive; then a second link
// whose consent is rejected ends REJECTED. Any uncaught JavaScript exception
// or console error on the way fails the test.
//
// The browser is Debian's chromium package (/usr/bin/chromium, or chromium on
// PATH). A missing browser fails the test; `go test -short` skips it, as it
// skips every system test.
//
//	go test -race ./test/browser/
//
// With UPDATE_SCREENSHOT=1 the test also writes the full-page screenshot of
// the demo at REPORTS_RECEIVED to docs/demo.png, the README's picture:
//
//	UPDATE_SCREENSHOT=1 go test ./test/browser/
package browser
