// Command fly-autoscaler scales a fleet of Fly.io apps from metrics.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/superfly/fly-autoscaler/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal the pass in flight finishes; a second one
		// gets Go's default handling and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	s := cmd.SystemStreams()
	err := cmd.Main(ctx, os.Args, s)
	stop()
	cmd.PrintError(s, err)
	if err != nil {
		os.Exit(cmd.ExitCode(err))
	}
}
