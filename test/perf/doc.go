// Package perf measures the call-count bars of design section 6: external
// calls per warm request of each function, Klavi /auth calls and Secrets
// Manager reads on the token path, and /auth calls per 25 minutes while the
// token-refresh schedule runs.
//
// The handlers are wired as functions/*/main.go and pkg/lambdaapp wire them
// (config.LoadDefaultConfig, linkstore.NewDynamo, reportstore over the SDK's
// S3 client, the shared tokensource over Secrets Manager, the Klavi client
// authenticating through it). AWS calls go through a counting proxy
// (internal/faultproxy) in front of the emulator (internal/awstest), Klavi
// calls through a second one in front of the Klavi simulator
// (internal/klavisim); counts are read at the proxies, so they are what
// left the process, retries included. Setup and checks bypass the proxies.
//
//	go test ./test/perf/                                        # the bars, as counts
//	go test -run='^$' -bench=. -benchtime=10x ./test/perf/      # the figures
//
// Bytes per 5 MB report are measured by BenchmarkReportDelivery5MB in
// pkg/reportwebhook, binary sizes and cold starts by test/coldstart.
package perf
