package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// safetyOrg has 200 apps: sa-* need machines created and one started,
// sb-* need machines destroyed, under the targets of safetyArgs.
func safetyOrg() *flytest.Org {
	return &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{
		{Name: "sa-%03d", Count: 100, Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}},
		{Name: "sb-%03d", Count: 100, Machines: []flytest.MachineSpec{{State: "started", Count: 3}, {State: "stopped", Count: 3}}},
	}}
}

var safetyArgs = []string{"run", "--org", "my-org", "--apps", "s*", "--output", "json",
	"--min-started-machine-count", "2", "--max-started-machine-count", "3", "--created-machine-count", "4"}

func safetyServer(t *testing.T, opts flytest.Options) *flytest.Server {
	t.Helper()
	opts.Token = testToken
	srv := flytest.New(safetyOrg(), opts)
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv
}

type fleetCounts struct{ started, created int }

func fleetState(srv *flytest.Server) map[string]fleetCounts {
	out := map[string]fleetCounts{}
	for _, a := range srv.Apps() {
		out[a] = fleetCounts{srv.Count(a, "started"), srv.Count(a, "")}
	}
	return out
}

func TestRunUnderFaultsStaysWithinTargets(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		if testing.Short() {
			t.Skip("a 200-app run under injected faults")
		}
		// On fake time: the 429s' Retry-After and the latencies are not
		// waited out.
		srv := inMemoryFly(t, safetyOrg(), flytest.Options{Token: testToken, Seed: 7})
		before := fleetState(srv)
		for _, op := range []string{flytest.OpList, flytest.OpStart, flytest.OpStop, flytest.OpLaunch, flytest.OpDestroy, flytest.OpLeaseAcquire} {
			srv.Inject(flytest.Fault{Op: op, Status: 500, Probability: 0.1})
		}
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: 429, RetryAfter: time.Second, Times: 20})
		srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Status: 429, RetryAfter: time.Second, Times: 10})
		srv.Inject(flytest.Fault{Latency: 300 * time.Millisecond, Probability: 0.05})
		for _, a := range []string{"sa-005", "sb-005", "sb-006"} {
			for _, m := range srv.Machines(a) {
				srv.HoldLease(a, m.ID, "deploy", time.Minute)
			}
		}

		code, out, stderr := runCLI(t, append(safetyArgs, "--timeout", "20s")...)
		rep := decodeReport(t, out)
		failed := rep.Summary.Failed > 0 || rep.Error != ""
		if (code == ExitFailed) != failed || (code != ExitOK && code != ExitFailed) {
			t.Errorf("exit code %d with %d failed apps (run error %q); stderr: %s", code, rep.Summary.Failed, rep.Error, stderr)
		}
		if len(rep.Apps) != 200 {
			t.Fatalf("%d apps reported, want 200", len(rep.Apps))
		}
		after := fleetState(srv)
		apps := byApp(rep)
		exact := 0
		for name, b := range before {
			a, r := after[name], apps[name]
			// A fault may leave an app short of its target, never past it and
			// never moved the wrong way.
			if a.started > max(b.started, 3) || a.started < min(b.started, 2) {
				t.Errorf("%s: %d started (was %d), outside [2,3] because of a fault (%s %s)", name, a.started, b.started, r.Status, r.Reason)
			}
			if a.created > max(b.created, 4) || a.created < min(b.created, 4) {
				t.Errorf("%s: %d machines (was %d), past the target 4: duplicates or over-destroy (%s %s)", name, a.created, b.created, r.Status, r.Reason)
			}
			if r.Status != "failed" && r.Status != "blocked" && len(r.Warnings) == 0 {
				if a.started < 2 || a.started > 3 || a.created != 4 {
					t.Errorf("%s: reported %s without warnings but ends at %d started, %d machines", name, r.Status, a.started, a.created)
				}
				exact++
			}
		}
		if exact < 100 {
			t.Errorf("only %d of 200 apps reached their targets: the retries are not working", exact)
		}
		for _, name := range []string{"sa-005", "sb-005", "sb-006"} {
			if after[name] != before[name] {
				t.Errorf("%s: fully leased by a deploy but changed from %+v to %+v", name, before[name], after[name])
			}
			if r := apps[name]; r.Status != "blocked" && r.Status != "failed" {
				t.Errorf("%s: fully leased by a deploy but reported %s (%s), want blocked", name, r.Status, r.Reason)
			}
		}
	})
}

func TestConcurrentRunsEndLikeOneRun(t *testing.T) {
	t.Parallel()
	// Reference: one run on a fresh org.
	ref := safetyServer(t, flytest.Options{})
	if code, _, stderr := runCLI(t, safetyArgs...); code != ExitOK {
		t.Fatalf("reference run: exit %d: %s", code, stderr)
	}
	want := fleetState(ref)

	srv := safetyServer(t, flytest.Options{Latency: 2 * time.Millisecond})
	// Two separate processes, as two overlapping cron jobs would be.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], outs[i] = runProcess(t, safetyArgs...)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != ExitOK {
			t.Errorf("run %d: exit %d\n%s", i, c, outs[i])
		}
	}
	got := fleetState(srv)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: two concurrent runs left %+v, one run %+v", name, got[name], w)
		}
	}
	launches := 0
	for _, c := range srv.Calls() {
		if c.Op == flytest.OpLaunch && c.Status == 200 {
			launches++
		}
	}
	if launches != 200 {
		t.Errorf("%d machines created by two runs, want 200 (2 for each sa-* app, no extra)", launches)
	}
}

func TestRunDuringADeployChangesNothingItMustNot(t *testing.T) {
	t.Parallel()
	srv := safetyServer(t, flytest.Options{})
	srv.SetReleaseStatus("sa-001", "running") // a release rolls out
	for _, a := range []string{"sa-002", "sb-002"} {
		for _, m := range srv.Machines(a) {
			srv.HoldLease(a, m.ID, "deploy", time.Minute) // the deploy holds every machine
		}
	}
	before := fleetState(srv)

	args := slices.Clone(safetyArgs)
	args[slices.Index(args, "s*")] = "sa-00[1-3],sb-002" // these four apps only
	code, out, stderr := runCLI(t, args...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	rep := decodeReport(t, out)
	if len(rep.Apps) != 4 {
		t.Fatalf("%d apps reported, want the 4 selected", len(rep.Apps))
	}
	apps := byApp(rep)
	after := fleetState(srv)
	if a := apps["sa-001"]; a.Status != "skipped" || a.Reason != "release in progress" {
		t.Errorf("sa-001: %s %q, want skipped: release in progress", a.Status, a.Reason)
	}
	for _, c := range srv.Calls() {
		if c.App == "sa-001" {
			t.Errorf("sa-001 is mid-release but was called: %s %s", c.Method, c.Path)
		}
		if (c.App == "sa-002" || c.App == "sb-002") && flytest.IsMutation(c.Op) && c.Status < 300 {
			t.Errorf("%s: a leased machine was changed: %s %s", c.App, c.Method, c.Path)
		}
	}
	for _, name := range []string{"sa-001", "sa-002", "sb-002"} {
		if after[name] != before[name] {
			t.Errorf("%s changed from %+v to %+v during the deploy", name, before[name], after[name])
		}
	}
	for _, name := range []string{"sa-002", "sb-002"} {
		if a := apps[name]; a.Status != "blocked" || !strings.HasPrefix(a.Reason, "busy, leased by someone else") {
			t.Errorf("%s: %s %q, want blocked: busy", name, a.Status, a.Reason)
		}
	}
	if a := after["sa-003"]; a.started != 2 || a.created != 4 {
		t.Errorf("sa-003 (not leased) ends at %+v, want 2 started of 4", a)
	}
}

func TestTokensNeverAppearInOutput(t *testing.T) {
	t.Parallel()
	const secret = "fm2_PLANTED-SECRET-42"
	tok := "FlyV1 " + secret
	cases := []struct {
		name string
		opts flytest.Options
		args []string
		env  map[string]string
	}{
		{name: "401 from the API", opts: flytest.Options{Token: "FlyV1 fm2_other"}, args: []string{"--started-machine-count", "2"}},
		{name: "bad prometheus url", args: []string{"--started-machine-count", "q",
			"--prometheus-address", "http://u:" + secret + "@127.0.0.1:1/prom", "--prometheus-metric-name", "q",
			"--prometheus-query", `up{app="$APP_NAME"}`, "--prometheus-token", tok}},
		{name: "timeouts", opts: flytest.Options{Latency: 300 * time.Millisecond}, args: []string{"--started-machine-count", "2", "--timeout", "100ms"}},
	}
	for _, format := range []string{"table", "json", "markdown"} {
		for _, tc := range cases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				if tc.opts.Token == "" {
					tc.opts.Token = tok
				}
				srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-%d", Count: 3,
					Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}, tc.opts)
				t.Cleanup(srv.Close)
				setenv(t, "FLY_API_BASE_URL", srv.URL)
				setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
				setenv(t, "FAS_API_TOKEN", tok)
				args := append([]string{"run", "--org", "my-org", "--apps", "app-*", "--output", format, "--verbose"}, tc.args...)
				code, out, stderr := runCLI(t, args...)
				if code == ExitOK {
					t.Errorf("exit 0, want a failure: %s", out)
				}
				for _, stream := range []string{out, stderr} {
					if strings.Contains(stream, secret) {
						t.Errorf("the token appears in the output:\n%s", stream)
					}
				}
			})
		}
	}
}

func TestMaxFailureRatioAbortsRemainingChanges(t *testing.T) {
	t.Parallel()
	srv := safetyServer(t, flytest.Options{})
	// The first 50 apps in name order cannot be read.
	for i := 1; i <= 50; i++ {
		srv.Inject(flytest.Fault{Op: flytest.OpList, App: fmt.Sprintf("sa-%03d", i), Status: 422}) // not retried
	}
	code, out, _ := runCLI(t, append(safetyArgs, "--concurrency", "1", "--max-failure-ratio", "0.2")...)
	if code != ExitFailed {
		t.Errorf("exit code %d, want %d", code, ExitFailed)
	}
	rep := decodeReport(t, out)
	if rep.Summary.Failed != 50 || rep.Summary.Skipped != 150 {
		t.Errorf("summary %+v, want 50 failed and 150 skipped", rep.Summary)
	}
	if m := srv.Mutations(); len(m) != 0 {
		t.Errorf("%d changes made after more than 20%% of the apps failed; first %+v", len(m), m[0])
	}
	if a := byApp(rep)["sb-100"]; !strings.Contains(a.Reason, "changes aborted: 50 of 200 apps failed") {
		t.Errorf("sb-100: reason %q", a.Reason)
	}
}

// runProcess runs the command line in a child process (this test binary,
// re-entered through TestMainProcess) with the test's environment, and
// returns its exit code and combined output.
func runProcess(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
	cmd.Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join(args, "\x1f"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Errorf("run process: %v", err)
	}
	return 0, string(out)
}

// TestMainProcess is the child of runProcess; it does nothing in a normal
// test run.
func TestMainProcess(t *testing.T) {
	args := os.Getenv("FAS_TEST_MAIN_ARGS")
	if args == "" {
		t.Skip("child process of runProcess only")
	}
	// As main.go: signals cancel the context, which is cancelled as soon
	// as Main returns.
	ctx, cancel := SignalContext(context.Background())
	if ready := os.Getenv("FAS_TEST_BLOCK_BEFORE_PASSES"); ready != "" {
		// The parent signals once the file exists: the command is then
		// between its configuration and its first pass, held there.
		testHookBeforePasses = func() {
			_ = os.WriteFile(ready, nil, 0o600)
			time.Sleep(time.Minute)
		}
	}
	s := SystemStreams()
	err := Main(ctx, append([]string{"fly-autoscaler"}, strings.Split(args, "\x1f")...), SystemEnv(), s)
	cancel()
	runtime.Gosched() // a goroutine Main left behind would run now
	PrintError(s, err)
	os.Exit(ExitCode(err))
}

func TestUnauthorizedSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	srv := flytest.New(safetyOrg(), flytest.Options{Token: "FlyV1 fm2_the-right-one"})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_a-wrong-one")
	code, out, stderr := runCLI(t, safetyArgs...)
	if code != ExitFailed || !strings.Contains(stderr, "401 unauthorized: check the Fly API token (FAS_API_TOKEN") {
		t.Errorf("exit %d, stderr %q, stdout %q", code, stderr, out)
	}
}

func TestSignalLetsTheRunInFlightFinish(t *testing.T) {
	t.Parallel()
	srv := safetyServer(t, flytest.Options{Latency: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	// SIGINT while apps are being reconciled: 150ms after the first call.
	go func() {
		for i := 0; i < 12_000 && len(srv.Calls()) == 0; i++ { // a minute at most
			time.Sleep(5 * time.Millisecond)
		}
		time.AfterFunc(150*time.Millisecond, cancel)
	}()
	s, out, errOut := BufferStreams()
	err := Main(ctx, append([]string{"fly-autoscaler"}, safetyArgs...), envFor(t), s)
	if code := ExitCode(err); code != ExitOK {
		t.Fatalf("exit %d: %v\n%s", code, err, errOut)
	}
	rep := decodeReport(t, out.String())
	if rep.Summary.Scaled+rep.Summary.Unchanged != 200 {
		t.Errorf("summary %+v: every app should finish its pass", rep.Summary)
	}
	if !strings.Contains(errOut.String(), "finishing the run in flight") {
		t.Errorf("stderr does not say the run finishes: %s", errOut)
	}
	for _, a := range srv.Apps() {
		if n := srv.Count(a, ""); n != 4 {
			t.Errorf("%s: %d machines, want 4", a, n)
		}
	}
}
