package cmd

import (
	"context"
	"fmt"
	"time"
)

// runOrRepeat is the run command after its configuration is loaded: it logs
// the configuration's warnings once, then makes one pass or, with --every,
// repeats passes until ctx is cancelled (SIGINT or SIGTERM).
func runOrRepeat(ctx context.Context, s *Streams, rc *runConfig) error {
	rc.log = newLogger(s.Err, rc.logFormat, rc.verbose)
	for _, w := range rc.warnings {
		rc.log.Warn(w)
	}
	if rc.every > 0 {
		return repeat(ctx, s, rc)
	}
	// As in repeat mode, a signal does not cut the run short: changes
	// half made are worse than a run that ends within its timeouts. A
	// second signal ends the process (main stops catching signals).
	// The watcher is joined before returning: main cancels ctx once Main
	// returns, and a watcher still running then would log a signal that
	// was never sent.
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-ctx.Done():
			select {
			case <-done: // the run ended first: select picked at random
			default:
				rc.log.Warn("signal received: finishing the run in flight (each app within --timeout); a second signal stops at once")
			}
		case <-done:
		}
	}()
	err := runOnce(context.WithoutCancel(ctx), s, rc)
	close(done)
	<-exited
	return err
}

// repeat makes a pass every rc.every, start to start (a pass longer than the
// interval is followed by the next one at once), until ctx is cancelled.
//
// Each pass lists the org's apps and reports on its own; the Fly clients
// are built once and serve every pass, so their client-side rate limiters
// remember the requests of the pass before.
// A signal never cuts a pass short: passes run under a context detached
// from ctx's cancellation, bounded by the per-app timeouts, and the signal
// only ends the wait for the next tick. The result is the last pass's.
func repeat(ctx context.Context, s *Streams, rc *runConfig) error {
	log := rc.log
	log.Info("repeating the run until SIGINT or SIGTERM", "every", rc.every.String())
	passCtx := context.WithoutCancel(ctx)
	tick := time.NewTicker(rc.every)
	defer tick.Stop()
	for pass := 1; ; pass++ {
		if pass > 1 && rc.render.Format != FormatJSON {
			// A blank line between two reports; JSON documents follow
			// each other as a stream (jq reads them one by one).
			fmt.Fprintln(s.Out)
		}
		err := runOnce(passCtx, s, rc)
		if ExitCode(err) == ExitUsage {
			return err // the next pass would fail the same way
		}
		// Checked before the select, which picks at random when the tick
		// and the signal are both ready.
		if ctx.Err() != nil {
			log.Info("signal received: stopped after the pass in flight", "passes", pass)
			return err
		}
		select {
		case <-ctx.Done():
			log.Info("signal received: stopped between passes", "passes", pass)
			return err
		case <-tick.C:
		}
		// The pass's error is printed by main only if it is the last;
		// the others are logged as the next pass starts.
		if code := ExitCode(err); code != ExitOK && code != ExitChanged {
			log.Error("pass failed", "pass", pass, "error", err.Error())
		}
	}
}
