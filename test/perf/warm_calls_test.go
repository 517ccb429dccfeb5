package perf_test

import (
	"context"
	"testing"
)

// warmUp builds the route's handler on a new instance of d and sends it one
// request, after which the instance holds what a warm instance holds: the
// token, the webhook key, open connections.
func warmUp(tb testing.TB, d *deployment, r route) (*instance, driver) {
	tb.Helper()
	in := d.newInstance(tb)
	drv := r.new(tb, d, in)
	ctx := context.Background()
	drv.prepare(ctx, tb)
	drv.send(ctx, tb)
	return in, drv
}

// BenchmarkWarmCalls reports the external calls of one warm request per
// route, counted at the proxies during the timed loop and divided by the
// requests: klavi/op (every Klavi call, /auth included), auth/op,
// dynamodb/op, s3/op and secrets/op (Secrets Manager reads). Design bars:
// links-api Klavi 1 + DynamoDB 1; event-webhook DynamoDB <= 2;
// report-webhook S3 1 + DynamoDB <= 2; no Secrets Manager read and no
// /auth on a warm request. report-request has no bar.
//
// Each iteration is one request; making its input (a new link, event,
// report or authorised consent) is outside the timer and the counts.
func BenchmarkWarmCalls(b *testing.B) {
	d := newDeployment(b, nil)
	d.refresh(b)
	for _, r := range routes {
		b.Run(r.name, func(b *testing.B) {
			in, drv := warmUp(b, d, r)
			ctx := b.Context()
			before := d.count(in)
			n := 0
			for b.Loop() {
				b.StopTimer()
				drv.prepare(ctx, b)
				b.StartTimer()
				drv.send(ctx, b)
				n++
			}
			got := d.count(in).minus(before)
			per := func(v int) float64 { return float64(v) / float64(n) }
			b.ReportMetric(per(got.klavi), "klavi/op")
			b.ReportMetric(per(got.dynamodb), "dynamodb/op")
			b.ReportMetric(per(got.s3), "s3/op")
			b.ReportMetric(per(got.secrets), "secrets/op")
			b.ReportMetric(per(got.auth), "auth/op")
			if got.otherAWS != 0 {
				b.ReportMetric(per(got.otherAWS), "otheraws/op")
			}
		})
	}
}
