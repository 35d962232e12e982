// Command fly-autoscaler scales a fleet of Fly.io apps from metrics.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/superfly/fly-autoscaler/cmd"
)

// gcPercent is the collector's GOGC when the environment sets none. A
// run's live heap is mostly its report, which grows until the run ends and
// is needed until then; at Go's default of 100 the heap grows to twice the
// live heap between collections, at 50 to one and a half times: at the end
// of a 10,000-app scaling run, 5 to 10 MiB less peak RSS, for more frequent
// collections (some 15% more CPU in that run). Unlike a default soft
// memory limit (GOMEMLIMIT, still honoured when set), it asks nothing
// impossible of a larger fleet: below a run's live heap, a limit has the
// collector run back to back (a 16 MiB limit tripled that run's CPU).
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// No goroutine dumps for the user, even from a panic cmd.Main cannot
	// recover (one in a worker goroutine): the message alone.
	debug.SetTraceback("none")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the pass in flight finishes; a second one
		// gets Go's default handling and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	s := cmd.SystemStreams()
	err := cmd.Main(ctx, os.Args, cmd.SystemEnv(), s)
	stop()
	cmd.PrintError(s, err)
	if err != nil {
		os.Exit(cmd.ExitCode(err))
	}
}
