package cmd

import (
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
)

// TestTemporalUnreachableFailsEveryApp: a Temporal server that does not
// answer fails every app, after one bounded connection attempt for the
// whole run, and nothing is scaled. (The runs against a real Temporal
// server are in query/temporal/servertest, a module of its own.)
func TestTemporalUnreachableFailsEveryApp(t *testing.T) {
	t.Parallel()
	skipShort(t)
	srv := fleetEnv(t, "fleet-100.json")
	silent := promtest.Silent(t)
	code, out, stderr := runCLI(t, "run", "--org", "my-org", "--apps", "my-app-0[1-5]?", "--output", "json", "--timeout", "15s",
		"--temporal-address", silent.Addr(), "--temporal-namespace", "default",
		"--temporal-metric-name", "backlog", "--temporal-task-queue", "jobs-$APP_NAME",
		"--started-machine-count", "backlog")
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\nstderr: %s", code, ExitFailed, stderr)
	}
	r := decodeReport(t, out)
	if len(r.Apps) != 50 {
		t.Fatalf("%d apps reported, want 50", len(r.Apps))
	}
	for _, a := range r.Apps {
		if a.Status != "failed" || !strings.Contains(a.Reason, `metric "backlog": connect to `+silent.Addr()) {
			t.Errorf("%s: %s (%s), want failed on the connection", a.App, a.Status, a.Reason)
		}
	}
	if n := silent.Accepted(); n != 1 {
		t.Errorf("%d connections for 50 apps, want one attempt", n)
	}
	assertNoScaling(t, srv)
}
