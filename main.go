// Command fly-autoscaler scales a fleet of Fly.io apps from metrics.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/superfly/fly-autoscaler/cmd"
)

func main() {
	env := cmd.SystemEnv()
	cmd.SetGC(env)
	// No goroutine dumps for the user, even from a panic cmd.Main cannot
	// recover (one in a worker goroutine): the message alone.
	debug.SetTraceback("none")
	// After the first SIGINT or SIGTERM the pass in flight finishes (or,
	// before the first pass, the command ends at once, 130 or 143); a
	// second one gets Go's default handling and ends the process at once.
	ctx, stop := cmd.SignalContext(context.Background())
	s := cmd.SystemStreams()
	err := cmd.Main(ctx, os.Args, env, s)
	stop()
	cmd.PrintError(s, err)
	if err != nil {
		os.Exit(cmd.ExitCode(err))
	}
}
