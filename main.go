// Command fly-autoscaler scales a fleet of Fly.io apps from metrics.
package main

import (
	"context"
	"fmt"
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
	err := cmd.Main(ctx, os.Args, cmd.SystemStreams())
	stop()
	if err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "fly-autoscaler:", msg)
		}
		os.Exit(cmd.ExitCode(err))
	}
}
