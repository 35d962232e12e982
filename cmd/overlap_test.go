package cmd

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// overlap starts one child process per args list (see runProcess), each
// gap after the one before, waits for them all and returns their exit
// codes and outputs.
func overlap(t *testing.T, gap time.Duration, args ...[]string) ([]int, []string) {
	t.Helper()
	procs := make([]*exec.Cmd, len(args))
	outs := make([]*strings.Builder, len(args))
	for i, a := range args {
		if i > 0 {
			time.Sleep(gap)
		}
		outs[i] = &strings.Builder{}
		procs[i] = exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
		procs[i].Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join(a, "\x1f"))
		procs[i].Stdout, procs[i].Stderr = outs[i], outs[i]
		if err := procs[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	codes := make([]int, len(args))
	texts := make([]string, len(args))
	for i, p := range procs {
		_ = p.Wait()
		codes[i], texts[i] = p.ProcessState.ExitCode(), outs[i].String()
	}
	return codes, texts
}

func TestFourOverlappingProcessesDoNotOverStart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("3 trials of 4 processes over 60 apps")
	}
	// Each run sees 1 started machine of 7 wanted, 5 of them started: it
	// creates 4 started and 2 stopped machines. A run that starts later
	// may see some of an earlier run's new machines, the stopped ones
	// among them, and plan to start them.
	trials, apps := 3, 60
	if raceEnabled {
		apps = 20
	}
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "os-%03d", Count: apps,
		Machines: []flytest.MachineSpec{{State: "started"}}}}}
	args := []string{"run", "--org", "my-org", "--apps", "os-*", "--output", "json",
		"--created-machine-count", "7", "--started-machine-count", "5"}
	start := time.Now()
	var summary []string
	for trial := range trials {
		srv := flyEnv(t, org, flytest.Options{Latency: 5 * time.Millisecond, Seed: uint64(trial)})
		srv.Inject(flytest.Fault{Latency: 20 * time.Millisecond, Probability: 0.3}) // jitter

		codes, outs := overlap(t, 300*time.Millisecond, args, args, args, args)
		for i, c := range codes {
			if c != ExitOK {
				t.Errorf("trial %d, run %d: exit %d\n%s", trial, i, c, outs[i])
			}
		}
		exact, off := 0, 0
		for _, app := range srv.Apps() {
			started, created := srv.Count(app, "started"), srv.Count(app, "")
			if started == 5 && created == 7 {
				exact++
				continue
			}
			off++
			t.Errorf("trial %d: %s ends with %d started of %d machines, want exactly 5 of 7", trial, app, started, created)
		}
		summary = append(summary, fmt.Sprintf("trial %d: %d at 5 of 7, %d not", trial, exact, off))
		srv.Close()
	}
	t.Logf("4 processes 0.3 s apart x %d apps x %d trials in %v:\n%s", apps, trials, time.Since(start).Round(time.Millisecond), strings.Join(summary, "\n"))
}

func TestFourOverlappingRunsUnderRateLimits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("4 processes over 100 apps under the Machines API's rate limits")
	}
	apps := 100
	if raceEnabled {
		apps = 40
	}
	// 1 started and 1 stopped machine, for 3 started of 4: a start and two
	// creates, one started, by each of four runs at once, under Fly's
	// rate limits (which the four processes share) at 40 ms a request.
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "rl-%03d", Count: apps,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}
	srv := flyEnv(t, org, flytest.Options{Latency: 40 * time.Millisecond, RateLimit: true})
	args := []string{"run", "--org", "my-org", "--apps", "rl-*", "--output", "json",
		"--created-machine-count", "4", "--started-machine-count", "3"}
	start := time.Now()
	codes, outs := overlap(t, 0, args, args, args, args)
	for i, c := range codes {
		if c != ExitOK {
			t.Errorf("run %d: exit %d\n%s", i, c, outs[i])
		}
	}
	limited := 0
	for _, c := range srv.Calls() {
		if c.Status == 429 {
			limited++
		}
	}
	for _, app := range srv.Apps() {
		if started, created := srv.Count(app, "started"), srv.Count(app, ""); started != 3 || created != 4 {
			t.Errorf("%s ends with %d started of %d machines, want 3 of 4", app, started, created)
		}
	}
	t.Logf("4 runs over %d apps in %v; %d answers 429", apps, time.Since(start).Round(time.Millisecond), limited)
}
