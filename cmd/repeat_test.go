package cmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// syncBuffer is a buffer that a command running in another goroutine may
// write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// repeatOrg has four apps with one started and two stopped machines each:
// a started target of 3 makes two starts per app.
var repeatOrg = &flytest.Org{Slug: "rep-org", Apps: []flytest.AppSpec{{
	Name: "rep-%d", Count: 4,
	Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 2}},
}}}

// repeatRun is Main running in the background with a cancellable context,
// as main.go runs it under signal.NotifyContext.
type repeatRun struct {
	cancel   context.CancelFunc
	out, err *syncBuffer
	done     chan struct{}
	code     int
	ended    time.Time
}

func startRepeat(t *testing.T, args ...string) *repeatRun {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	r := &repeatRun{cancel: cancel, out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan struct{})}
	s := &Streams{Out: r.out, Err: r.err}
	go func() {
		defer close(r.done)
		err := Main(ctx, append([]string{"fly-autoscaler", "run"}, args...), envFor(t), s)
		r.code, r.ended = ExitCode(err), time.Now()
		if err != nil {
			r.err.Write([]byte(err.Error() + "\n"))
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// signal cancels the context (SIGINT) and waits for Main to return, at
// most limit.
func (r *repeatRun) signal(t *testing.T, limit time.Duration) (code int, took time.Duration) {
	t.Helper()
	at := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(limit):
		t.Fatalf("still running %s after the signal\nstdout:\n%s\nstderr:\n%s", limit, r.out, r.err)
	}
	return r.code, r.ended.Sub(at)
}

var summaryLine = regexp.MustCompile(`(?m)^\d+ apps: .*$`)

// waitFor polls cond every 5ms for at most limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func repeatEnv(t *testing.T, latency time.Duration) *flytest.Server {
	t.Helper()
	return inMemoryFly(t, repeatOrg, flytest.Options{Token: testToken, Latency: latency})
}

func countOp(srv *flytest.Server, op string) int {
	n := 0
	for _, c := range srv.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

// A signal during a pass lets the pass finish, every app of it, and then
// the command returns at once instead of waiting for the next tick.
func TestRepeatFinishesPassInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := repeatEnv(t, 60*time.Millisecond)
		// One app at a time: an app's starts go out at once, so the pass is
		// still in flight after the first change only while apps remain.
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3",
			"--every", "1s", "--detailed-exitcode", "--concurrency", "1")

		// Signal as soon as the pass has changed its first machine.
		waitFor(t, 10*time.Second, "the first machine change", func() bool { return len(srv.Mutations()) > 0 })
		before := len(srv.Mutations())
		code, took := r.signal(t, 15*time.Second)

		after := len(srv.Mutations())
		if before >= after {
			t.Fatalf("the pass was not in flight at the signal: %d changes before, %d after", before, after)
		}
		for _, app := range srv.Apps() {
			if n := srv.Count(app, "started"); n != 3 {
				t.Errorf("%s: %d started machines, want 3: the pass in flight was cut short", app, n)
			}
		}
		out := r.out.String()
		sums := summaryLine.FindAllString(out, -1)
		if len(sums) != 1 || !strings.HasPrefix(sums[0], "4 apps: 4 scaled, 0 unchanged, 0 skipped, 0 failed") {
			t.Errorf("want one report of a complete pass, got summaries %q\n%s", sums, out)
		}
		if strings.Contains(out, "not processed") || strings.Contains(out, "interrupted") {
			t.Errorf("the pass reports an interruption:\n%s", out)
		}
		if n := countOp(srv, flytest.OpGraphQLOrg); n != 1 {
			t.Errorf("%d passes started, want 1", n)
		}
		if code != ExitChanged {
			t.Errorf("exit code %d, want %d (the pass's, with --detailed-exitcode)\nstderr: %s", code, ExitChanged, r.err)
		}
		// Promptly: the rest of the pass (a few sequential calls of 60ms per
		// app), not another interval or pass.
		if took > 3*time.Second {
			t.Errorf("returned %s after the signal", took)
		}
		if !strings.Contains(r.err.String(), "stopped after the pass in flight") {
			t.Errorf("stderr does not say why it stopped:\n%s", r.err)
		}
	})
}

// A signal between passes ends the wait for the next tick at once.
func TestRepeatStopsWaitingOnSignal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := repeatEnv(t, 0)
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3", "--every", "1h")
		waitFor(t, 10*time.Second, "the first report", func() bool { return summaryLine.MatchString(r.out.String()) })
		code, took := r.signal(t, 5*time.Second)
		if code != ExitOK {
			t.Errorf("exit code %d, want 0\nstderr: %s", code, r.err)
		}
		if took > time.Second {
			t.Errorf("returned %s after the signal, want at once", took)
		}
		if n := countOp(srv, flytest.OpGraphQLOrg); n != 1 {
			t.Errorf("%d passes, want 1", n)
		}
	})
}

// Passes repeat, each one a whole invocation's work (the app list is read
// again), and the exit code is the last pass's: the first pass scales (3),
// the later ones find nothing to do (0).
func TestRepeatExitCodeOfLastPass(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := repeatEnv(t, 0)
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3",
			"--every", "1s", "--detailed-exitcode")
		waitFor(t, 10*time.Second, "three reports", func() bool { return len(summaryLine.FindAllString(r.out.String(), -1)) >= 3 })
		code, _ := r.signal(t, 5*time.Second)

		sums := summaryLine.FindAllString(r.out.String(), -1)
		if !strings.HasPrefix(sums[0], "4 apps: 4 scaled") {
			t.Errorf("first pass: %q, want 4 scaled", sums[0])
		}
		for i, s := range sums[1:] {
			if !strings.HasPrefix(s, "4 apps: 0 scaled, 4 unchanged") {
				t.Errorf("pass %d: %q, want 4 unchanged", i+2, s)
			}
		}
		if code != ExitOK {
			t.Errorf("exit code %d, want 0: the last pass changed nothing\nstderr: %s", code, r.err)
		}
		if n := countOp(srv, flytest.OpGraphQLOrg); n != len(sums) {
			t.Errorf("%d app listings for %d passes, want one per pass", n, len(sums))
		}
		if !strings.Contains(r.out.String(), "\n\nAPP") {
			t.Errorf("no blank line between two reports:\n%s", r.out)
		}
	})
}

// --every with --dry-run is allowed: every pass plans, none changes.
func TestRepeatDryRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := repeatEnv(t, 0)
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3",
			"--every", "1s", "--dry-run", "--detailed-exitcode", "--output", "json")
		waitFor(t, 10*time.Second, "two reports", func() bool { return strings.Count(r.out.String(), `"schema_version"`) >= 2 })
		code, _ := r.signal(t, 5*time.Second)
		if code != ExitChanged {
			t.Errorf("exit code %d, want 3 (changes planned)\nstderr: %s", code, r.err)
		}
		if m := srv.Mutations(); len(m) != 0 {
			t.Errorf("dry run changed machines: %+v", m[0])
		}
	})
}

// A failed pass is logged when the next one starts; the last pass decides
// the exit code.
func TestRepeatRecoversFromFailedPass(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := repeatEnv(t, 0)
		srv.Inject(flytest.Fault{Op: flytest.OpList, App: "rep-2", Status: 404, Body: `{"error":"app not found"}`, Times: 1})
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3", "--every", "1s")
		waitFor(t, 10*time.Second, "two reports", func() bool { return len(summaryLine.FindAllString(r.out.String(), -1)) >= 2 })
		code, _ := r.signal(t, 5*time.Second)
		if code != ExitOK {
			t.Errorf("exit code %d, want 0 (the last pass succeeded)\nstderr: %s", code, r.err)
		}
		if !strings.Contains(r.err.String(), "pass failed") || !strings.Contains(r.err.String(), "1 of 4 apps failed") {
			t.Errorf("the failed pass is not logged:\n%s", r.err)
		}
	})
}

// TestRepeatQuietStampsEachSummary: with --every -q, each pass's summary
// line starts with the time the pass started, so that the output reads as
// a log (a single quiet run's does not: TestRenderTableQuietNothingFailed).
func TestRepeatQuietStampsEachSummary(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		repeatEnv(t, 0)
		r := startRepeat(t, "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3", "--every", "20ms", "-q")
		stamped := regexp.MustCompile(`(?m)^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) 4 apps: .*$`)
		waitFor(t, 10*time.Second, "two stamped summaries", func() bool { return len(stamped.FindAllString(r.out.String(), -1)) >= 2 })
		r.signal(t, 5*time.Second)
		lines := stamped.FindAllStringSubmatch(r.out.String(), -1)
		var times []time.Time
		for _, l := range lines {
			at, err := time.Parse(time.RFC3339, l[1])
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, at)
		}
		for i := 1; i < len(times); i++ {
			if times[i].Before(times[i-1]) {
				t.Errorf("pass %d stamped %s, before pass %d's %s", i+1, times[i], i, times[i-1])
			}
		}
		if n := len(summaryLine.FindAllString(r.out.String(), -1)); n != 0 {
			t.Errorf("%d summaries without their time:\n%s", n, r.out)
		}
	})
}
