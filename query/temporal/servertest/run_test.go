package servertest

// Whole runs of the CLI against scale/flytest, a real Prometheus
// (query/promtest) and the real Temporal server.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/cmd"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/temporal"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const flyToken = "FlyV1 fm2_temporal-e2e-token"

// fleet starts flytest with the 100 my-app-NNN apps of fleet-100.json (2
// started, 2 stopped and 1 suspended machine each) and points the CLI at
// it, in an environment with no FAS_* or TEMPORAL_* variable of the caller.
func fleet(t *testing.T) *flytest.Server {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FAS_") || strings.HasPrefix(k, "TEMPORAL_") || k == "FLY_API_TOKEN" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	org, err := flytest.LoadOrg(filepath.Join("..", "..", "..", "testdata", "flytest", "fleet-100.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := flytest.New(org, flytest.Options{Token: flyToken})
	t.Cleanup(srv.Close)
	t.Setenv("FLY_API_BASE_URL", srv.URL)
	t.Setenv("FLY_FLAPS_BASE_URL", srv.URL)
	t.Setenv("FAS_API_TOKEN", flyToken)
	return srv
}

// runCLI runs fly-autoscaler with args and returns its exit code and
// output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	s, out, errOut := cmd.BufferStreams()
	err := cmd.Main(context.Background(), append([]string{"fly-autoscaler"}, args...), cmd.SystemEnv(), s)
	if err != nil {
		errOut.WriteString(err.Error() + "\n")
	}
	return cmd.ExitCode(err), out.String(), errOut.String()
}

// report is the part of the JSON report (docs/output.md) the tests read.
type report struct {
	Apps []struct {
		App     string             `json:"app"`
		Status  string             `json:"status"`
		Reason  string             `json:"reason"`
		Metrics map[string]float64 `json:"metrics"`
		Target  struct {
			Started int `json:"started"`
		} `json:"target"`
	} `json:"apps"`
}

func decode(t *testing.T, out string) report {
	t.Helper()
	var r report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, out)
	}
	return r
}

// waitBacklog waits until the server reports want tasks in the workflow
// backlog of each app's jobs-<app> queue: the statistics catch up with
// the starts asynchronously, and the run must see them settled.
func waitBacklog(t *testing.T, s *server, want map[string]int) {
	t.Helper()
	probe := newSource(t, s, temporal.Config{TaskQueue: "jobs-$APP_NAME", QueueTypes: []string{"workflow"}})
	for app, n := range want {
		eventually(t, "backlog of "+app, func() error {
			v, err := collect(probe, app)
			if err == nil && v != float64(n) {
				err = fmt.Errorf("got %v, want %d", v, n)
			}
			return err
		})
	}
}

// TestRunMixesPrometheusAndTemporal: one run whose target adds a
// Prometheus value and a Temporal backlog, scales every app to it, and a
// second run finds nothing to change.
func TestRunMixesPrometheusAndTemporal(t *testing.T) {
	srv := fleet(t)
	s := startServer(t)
	depth := map[string]float64{"my-app-001": 5, "my-app-002": 12, "my-app-003": 0, "my-app-004": 31}
	backlog := map[string]int{"my-app-001": 0, "my-app-002": 9, "my-app-003": 25, "my-app-004": 3}
	prom := promtest.Start(t, depth)
	for app, n := range backlog {
		if n > 0 {
			s.startJobs(t, "jobs-"+app, n)
		}
	}
	waitBacklog(t, s, backlog)

	args := []string{"run", "--org", "my-org", "--apps", "my-app-00[1-4]", "--output", "json",
		"--prometheus-address", prom.URL(), "--prometheus-metric-name", "queue_depth",
		"--prometheus-query", `sum(queue_depth{app="$APP_NAME"})`,
		"--temporal-address", s.GetFrontendHostPort(), "--temporal-namespace", s.GetDefaultNamespace(),
		"--temporal-metric-name", "backlog", "--temporal-task-queue", "jobs-$APP_NAME",
		"--started-machine-count", "ceil((queue_depth + backlog) / 10)"}
	code, out, stderr := runCLI(t, args...)
	if code != cmd.ExitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	r := decode(t, out)
	if len(r.Apps) != len(depth) {
		t.Fatalf("%d apps reported, want %d", len(r.Apps), len(depth))
	}
	for _, a := range r.Apps {
		want := int((depth[a.App] + float64(backlog[a.App]) + 9) / 10)
		if a.Metrics["queue_depth"] != depth[a.App] || a.Metrics["backlog"] != float64(backlog[a.App]) {
			t.Errorf("%s: metrics %v, want queue_depth=%v backlog=%d", a.App, a.Metrics, depth[a.App], backlog[a.App])
		}
		if a.Target.Started != want {
			t.Errorf("%s: target %d started, want %d", a.App, a.Target.Started, want)
		}
		if got := srv.Count(a.App, "started"); got != want {
			t.Errorf("%s: %d machines started after the run, want %d (%s: %s)", a.App, got, want, a.Status, a.Reason)
		}
	}

	code, out, stderr = runCLI(t, args...)
	if code != cmd.ExitOK {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	for _, a := range decode(t, out).Apps {
		if a.Status != "unchanged" {
			t.Errorf("second run: %s %s (%s), want unchanged", a.App, a.Status, a.Reason)
		}
	}
}

// TestOriginalConfigRunsUnchanged: the original fly-autoscaler's Temporal
// configuration, as a YAML file and as variables, runs as it is; the only
// difference is the warning for interval, an option of the original's
// long-running server.
func TestOriginalConfigRunsUnchanged(t *testing.T) {
	srv := fleet(t)
	s := startServer(t)
	running := map[string]int{"my-app-001": 1, "my-app-002": 3, "my-app-003": 0}
	for app, n := range running {
		if n > 0 {
			s.startJobs(t, "jobs-"+app, n)
		}
	}
	// The visibility store sees the starts asynchronously.
	probe := newSource(t, s, temporal.Config{Query: `TaskQueue="jobs-$APP_NAME"`})
	for app, n := range running {
		eventually(t, "running workflows of "+app, func() error {
			v, err := collect(probe, app)
			if err == nil && v != float64(n) {
				err = fmt.Errorf("got %v, want %d", v, n)
			}
			return err
		})
	}
	t.Setenv("TEMPORAL_ADDRESS", s.GetFrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", s.GetDefaultNamespace())
	file := filepath.Join(t.TempDir(), "fly-autoscaler.yml")
	if err := os.WriteFile(file, []byte(`app-name: "my-app-00[1-3]"
org: "my-org"
started-machine-count: "running_jobs"
interval: "15s"
api-token: "${FAS_API_TOKEN}"
metric-collectors:
  - type: "temporal"
    metric-name: "running_jobs"
    address: "${TEMPORAL_ADDRESS}"
    namespace: "${TEMPORAL_NAMESPACE}"
    query: 'TaskQueue="jobs-$APP_NAME"'
`), 0o600); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, args ...string) {
		t.Helper()
		code, out, stderr := runCLI(t, append(args, "--dry-run", "--output", "json")...)
		if code != cmd.ExitOK {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
		}
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), "interval is ignored") {
			t.Errorf("stderr %q, want the interval warning alone", stderr)
		}
		r := decode(t, out)
		if len(r.Apps) != len(running) {
			t.Fatalf("%d apps reported, want %d", len(r.Apps), len(running))
		}
		for _, a := range r.Apps {
			if a.Metrics["running_jobs"] != float64(running[a.App]) || a.Target.Started != running[a.App] {
				t.Errorf("%s: metrics %v target %d, want running_jobs=%d", a.App, a.Metrics, a.Target.Started, running[a.App])
			}
		}
	}
	t.Run("file", func(t *testing.T) { check(t, "run", "--config", file) })
	t.Run("variables", func(t *testing.T) {
		for k, v := range map[string]string{
			"FAS_APP_NAME": "my-app-00[1-3]", "FAS_ORG": "my-org", "FAS_STARTED_MACHINE_COUNT": "running_jobs", "FAS_INTERVAL": "15s",
			"FAS_TEMPORAL_ADDRESS": s.GetFrontendHostPort(), "FAS_TEMPORAL_NAMESPACE": s.GetDefaultNamespace(),
			"FAS_TEMPORAL_METRIC_NAME": "running_jobs", "FAS_TEMPORAL_QUERY": `TaskQueue="jobs-$APP_NAME"`,
		} {
			t.Setenv(k, v)
		}
		check(t, "run")
	})
	assertNoMutation(t, srv)
}

func assertNoMutation(t *testing.T, srv *flytest.Server) {
	t.Helper()
	if m := srv.Mutations(); len(m) != 0 {
		t.Errorf("%d changing calls, first: %s %s", len(m), m[0].Method, m[0].Path)
	}
}
