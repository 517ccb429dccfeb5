// Package klavireporttest builds realistic Klavi product reports for code
// that reads them with package klavireport: the simulator's deliveries, the
// report webhook's and report store's tests, load and performance runs.
// Nothing that ships generates a report, so the generator lives here and
// not beside the envelope reader.
package klavireporttest
