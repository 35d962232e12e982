package cmd

import "runtime/debug"

// GCPercent is the collector's GOGC when the environment sets none. A
// run's live heap is mostly its report, which grows until the run ends and
// is needed until then; at Go's default of 100 the heap grows to twice the
// live heap between collections, at 50 to one and a half times: at the end
// of a 10,000-app scaling run, 5 to 10 MiB less peak RSS, for more frequent
// collections (some 15% more CPU in that run). Unlike a default soft
// memory limit (GOMEMLIMIT, still honoured when set), it asks nothing
// impossible of a larger fleet: below a run's live heap, a limit has the
// collector run back to back (a 16 MiB limit tripled that run's CPU).
const GCPercent = 50

// SetGC sets the collector's GOGC to GCPercent unless env sets GOGC (Go
// has read that already, and the user's choice stands). The program calls
// it once, before any work.
func SetGC(env Env) {
	if env.Get("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
