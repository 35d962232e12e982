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

func main() {
	env := cmd.SystemEnv()
	cmd.SetGC(env)
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
	err := cmd.Main(ctx, os.Args, env, s)
	stop()
	cmd.PrintError(s, err)
	if err != nil {
		os.Exit(cmd.ExitCode(err))
	}
}
