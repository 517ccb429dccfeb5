package linkstore

import "time"

// Option configures a store.
type Option func(*options)

type options struct {
	reportGrace time.Duration
	now         func() time.Time
}

// DefaultReportGrace is how long after a consent is authorised the link is
// due for reconciliation if no report arrived.
const DefaultReportGrace = 15 * time.Minute

// WithReportGrace sets the AWAITING_REPORTS grace period.
func WithReportGrace(d time.Duration) Option { return func(o *options) { o.reportGrace = d } }

// WithClock sets the clock used for timestamps the caller did not give.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func newOptions(opts []Option) options {
	o := options{reportGrace: DefaultReportGrace, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
