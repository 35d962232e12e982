package cmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SignalError is the cause of the context SignalContext cancels.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return e.Signal.String() + " signal received" }

// exitCode is the shell's status of a process ended by the signal: 128
// plus its number, 130 for SIGINT and 143 for SIGTERM.
func (e *SignalError) exitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return ExitFailed
}

// SignalContext returns a context that the first SIGINT or SIGTERM
// cancels, with a *SignalError as its cause. Past the first, the signals
// have their default effect again: a second one ends the process at once.
// stop releases the signals.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(&SignalError{Signal: s})
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel(nil)
		})
	}
}

// startGate tells a signal that comes before the first pass starts, which
// ends the command at once (nothing has been called yet, the config may
// still be being read), from one that comes during a pass, which lets the
// pass finish (runOrRepeat).
type startGate struct {
	mu      sync.Mutex
	started bool
	aborted bool
}

// begin marks the first pass as started; false when the command was
// already given up.
func (g *startGate) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.aborted {
		g.started = true
	}
	return !g.aborted
}

// abort gives the command up, unless a pass has started.
func (g *startGate) abort() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		g.aborted = true
	}
	return g.aborted
}

type startGateKey struct{}

// beginPasses marks the first pass of the command running under ctx as
// started: from now on a signal lets the pass in flight finish. false
// when a signal already ended the command.
func beginPasses(ctx context.Context) bool {
	if g, ok := ctx.Value(startGateKey{}).(*startGate); ok {
		return g.begin()
	}
	return true
}

// runGated runs app under a start gate: when ctx is cancelled before the
// command's first pass starts, it returns at once, with the exit status of
// the signal that cancelled it, and leaves the command behind (main ends
// the process).
func runGated(ctx context.Context, run func(context.Context) error) error {
	g := &startGate{}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("internal error: %v", r)
			}
		}()
		done <- run(context.WithValue(ctx, startGateKey{}, g))
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done: // the command ended as the signal came
		return err
	default:
	}
	if !g.abort() {
		return <-done // a pass is in flight: it finishes
	}
	code := ExitFailed
	var se *SignalError
	if cause, ok := context.Cause(ctx).(*SignalError); ok {
		se = cause
		code = se.exitCode()
	}
	msg := "interrupted before the first pass: stopped, nothing was changed"
	if se != nil {
		msg = se.Error() + " before the first pass: stopped, nothing was changed"
	}
	return &exitError{code: code, msg: msg}
}
