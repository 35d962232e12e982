package cmd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// flyEnv starts flytest on org with the test token and points the
// command's environment at it.
func flyEnv(t *testing.T, org *flytest.Org, opts flytest.Options) *flytest.Server {
	t.Helper()
	opts.Token = testToken
	srv := flytest.New(org, opts)
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv
}

func TestRepeatKeepsItsRateLimitsAcrossPasses(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		if testing.Short() {
			t.Skip("20 passes of --every 1s")
		}
		const passes = 20
		srv := inMemoryFly(t, &flytest.Org{Slug: "ev-org", Apps: []flytest.AppSpec{{Name: "ev-%02d", Count: 60,
			Machines: []flytest.MachineSpec{{State: "started", Count: 2}}}}}, flytest.Options{Token: testToken, RateLimit: true})
		// Changes made behind the command's back, as someone else would.
		_, other, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: testToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: srv.Transport()})
		if err != nil {
			t.Fatal(err)
		}
		r := startRepeat(t, "--org", "ev-org", "--apps", "ev-*", "--created-machine-count", "2", "--started-machine-count", "2",
			"--every", "1s", "--output", "json")
		reports := func() int { return strings.Count(r.out.String(), `"schema_version"`) }
		for done := 0; done < passes; {
			waitFor(t, 30*time.Second, "the next pass", func() bool { return reports() > done })
			done = reports()
			if done%5 == 0 && done < passes {
				// A change every 5 passes: one machine of each app destroyed,
				// which the next pass creates again (list, lease, recount,
				// create).
				for _, app := range srv.Apps() {
					ms := srv.Machines(app)
					if err := other.Destroy(context.Background(), app, fly.RemoveMachineInput{ID: ms[len(ms)-1].ID, Kill: true}, ""); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if code, _ := r.signal(t, 30*time.Second); code != ExitOK {
			t.Errorf("exit %d\n%s", code, r.err)
		}

		limited, lists, creates := 0, 0, 0
		for _, c := range srv.Calls() {
			switch {
			case c.Status == 429:
				limited++
			case c.Op == flytest.OpList:
				lists++
			case c.Op == flytest.OpLaunch:
				creates++
			}
		}
		if limited != 0 {
			t.Errorf("%d answers 429 from the Machines API's rate limits over %d passes (%d lists, %d creates)", limited, passes, lists, creates)
		}
		if creates < 3*60 {
			t.Errorf("%d creates, want at least 180: the changes were not made again", creates)
		}
		for _, app := range srv.Apps() {
			if n := srv.Count(app, ""); n != 2 {
				t.Errorf("%s: %d machines, want 2 after the last change was made up for", app, n)
			}
		}
	})
}

// startProcess starts the command line in a child process (see
// runProcess) without waiting for it.
func startProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
	cmd.Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join(args, "\x1f"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestCrashedRunLeavesLeasesForSecondsNotATimeout(t *testing.T) {
	t.Parallel()
	// The server's clock runs from the real one plus an offset the test
	// moves, so 20 s pass at once.
	var offset atomic.Int64
	srv := flyEnv(t, &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "crash-app",
		Machines: []flytest.MachineSpec{{State: "started"}}}}},
		flytest.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	args := []string{"run", "--apps", "crash-app", "--created-machine-count", "3", "--output", "json", "--timeout", "120s"}

	// The first run hangs in its create and is killed there (SIGKILL):
	// the anchor's lease is left behind.
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Latency: time.Minute})
	proc := startProcess(t, args...)
	waitFor(t, 20*time.Second, "the recount under the anchor's lease", func() bool { return countOp(srv, flytest.OpList) >= 2 })
	time.Sleep(200 * time.Millisecond) // the create is sent
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	srv.ClearFaults()
	if n := countOp(srv, flytest.OpLeaseAcquire); n != 1 || countOp(srv, flytest.OpLeaseRelease) != 0 {
		t.Fatalf("%d leases taken and %d released by the killed run, want 1 left behind", n, countOp(srv, flytest.OpLeaseRelease))
	}
	if n := srv.Count("crash-app", ""); n != 1 {
		t.Fatalf("%d machines after the killed run, want 1", n)
	}

	// 20 s later the next run converges the app.
	offset.Store(int64(20 * time.Second))
	code, out, stderr := runCLI(t, args...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	if a := byApp(decodeReport(t, out))["crash-app"]; a.Status != "scaled" {
		t.Errorf("crash-app: %s (%s), want scaled", a.Status, a.Reason)
	}
	if n := srv.Count("crash-app", ""); n != 3 {
		t.Errorf("%d machines, want 3", n)
	}
}

func TestThreeOverlappingProcessesNeverGoBelowTheTarget(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("10 trials of 3 processes over 150 apps")
	}
	// Under the race detector every child runs instrumented, several times
	// slower: the trials keep their number and their three processes but
	// cover 50 apps each, to stay near a minute on two busy cores.
	trials, apps := 10, 150
	if raceEnabled {
		apps = 50
	}
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "ov-%03d", Count: apps,
		Machines: []flytest.MachineSpec{{State: "started", Count: 6}}}}}
	args := []string{"run", "--org", "my-org", "--apps", "ov-*", "--output", "json",
		"--created-machine-count", "2", "--started-machine-count", "1"}
	start := time.Now()
	var summary []string
	for trial := range trials {
		srv := flyEnv(t, org, flytest.Options{Latency: time.Millisecond, Seed: uint64(trial)})
		srv.Inject(flytest.Fault{Latency: 4 * time.Millisecond, Probability: 0.3}) // jitter

		procs := make([]*exec.Cmd, 3)
		outs := make([]*strings.Builder, 3)
		for i := range procs {
			outs[i] = &strings.Builder{}
			procs[i] = exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
			procs[i].Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join(args, "\x1f"))
			procs[i].Stdout, procs[i].Stderr = outs[i], outs[i]
		}
		for _, p := range procs {
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, p := range procs {
			if err := p.Wait(); err != nil {
				t.Errorf("trial %d, process %d: %v\n%s", trial, i, err, outs[i])
			}
		}

		below, exact, other := 0, 0, 0
		for _, app := range srv.Apps() {
			started, created := srv.Count(app, "started"), srv.Count(app, "")
			switch {
			case started < 1 || created < 2:
				below++
				t.Errorf("trial %d: %s ends with %d started of %d machines, below the target of 1 of 2", trial, app, started, created)
			case started == 1 && created == 2:
				exact++
			default:
				other++
			}
		}
		summary = append(summary, fmt.Sprintf("trial %d: %d below, %d at target, %d above", trial, below, exact, other))
		srv.Close()
	}
	t.Logf("3 processes x %d apps x %d trials in %v:\n%s", apps, trials, time.Since(start).Round(time.Millisecond), strings.Join(summary, "\n"))
}
