package cmd

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const testToken = "FlyV1 fm2_test-token-for-e2e"

// fleetEnv starts flytest with fixture and points the CLI at it through
// FLY_API_BASE_URL and FLY_FLAPS_BASE_URL, with FAS_API_TOKEN set.
func fleetEnv(t *testing.T, fixture string) *flytest.Server {
	t.Helper()
	org, err := flytest.LoadOrg(filepath.Join("..", "testdata", "flytest", fixture))
	if err != nil {
		t.Fatal(err)
	}
	srv := flytest.New(org, flytest.Options{Token: testToken})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv
}

// queueDepth is the metric value of my-app-N in the fleet tests: it spreads
// the started targets over 0..6 so every kind of change happens.
func queueDepth(i int) float64 { return float64((i*7)%61) + 0.5 }

func wantStarted(i int) int { return int(math.Ceil(queueDepth(i) / 10)) }

// fleetProm starts a real Prometheus serving queue_depth for the 200
// my-app-* apps, and points the CLI's collector at it.
func fleetProm(t *testing.T) *promtest.Server {
	t.Helper()
	series := map[string]float64{}
	for i := 1; i <= 200; i++ {
		series[fmt.Sprintf("my-app-%03d", i)] = queueDepth(i)
	}
	prom := promtest.Start(t, series)
	setenv(t, "FAS_PROMETHEUS_ADDRESS", prom.URL())
	setenv(t, "FAS_PROMETHEUS_METRIC_NAME", "queue_depth")
	setenv(t, "FAS_PROMETHEUS_QUERY", `sum(queue_depth{app="$APP_NAME"})`)
	setenv(t, "FAS_STARTED_MACHINE_COUNT", "ceil(queue_depth / 10)")
	setenv(t, "FAS_MIN_CREATED_MACHINE_COUNT", "ceil(queue_depth / 10)")
	setenv(t, "FAS_MAX_CREATED_MACHINE_COUNT", "8")
	return prom
}

func decodeReport(t *testing.T, out string) jsonReport {
	t.Helper()
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, out)
	}
	return r
}

func byApp(r jsonReport) map[string]jsonApp {
	m := map[string]jsonApp{}
	for _, a := range r.Apps {
		m[a.App] = a
	}
	return m
}

func TestRunFleetConvergesInOneInvocation(t *testing.T) {
	onRealPrometheus(t)
	if testing.Short() {
		t.Skip("starts a real Prometheus")
	}
	srv := fleetEnv(t, "fleet-250.json")
	fleetProm(t)

	code, out, stderr := runCLI(t, "run", "--org", "my-org", "--apps", "my-app-*", "--output", "json")
	if code != ExitOK {
		t.Fatalf("exit code %d, stderr: %s\n%s", code, stderr, out)
	}
	rep := decodeReport(t, out)
	if rep.Summary.AppsMatched != 200 || len(rep.Apps) != 200 {
		t.Fatalf("matched %d apps (%d results), want 200", rep.Summary.AppsMatched, len(rep.Apps))
	}
	apps := byApp(rep)
	for i := 1; i <= 200; i++ {
		name := fmt.Sprintf("my-app-%03d", i)
		want := wantStarted(i)
		if got := srv.Count(name, "started"); got != want {
			t.Errorf("%s: %d started machines after one run, want %d (report: %+v)", name, got, want, apps[name])
		}
		if a := apps[name]; a.Target.Started != want || a.Status == "failed" {
			t.Errorf("%s: report target %d status %s %s, want target %d", name, a.Target.Started, a.Status, a.Reason, want)
		}
		if v := apps[name].Metrics["queue_depth"]; v == nil || *v != queueDepth(i) {
			t.Errorf("%s: report metric %v, want %v", name, v, queueDepth(i))
		}
	}
	// The org was listed once: one organization lookup, two pages of apps.
	ops := map[string]int{}
	for _, c := range srv.Calls() {
		ops[c.Op]++
		if strings.HasPrefix(c.App, "other-app-") {
			t.Errorf("call %s %s touched an app that was not selected", c.Method, c.Path)
		}
	}
	if ops[flytest.OpGraphQLOrg] != 1 || ops[flytest.OpGraphQLApps] != 2 || ops[flytest.OpGraphQLRelease] != 0 {
		t.Errorf("graphql calls: org %d, apps pages %d, release %d; want 1, 2, 0", ops[flytest.OpGraphQLOrg], ops[flytest.OpGraphQLApps], ops[flytest.OpGraphQLRelease])
	}
	// One list per app, plus the count under the anchor's lease of the
	// apps that create or destroy machines; an app that also starts or
	// stops takes that lease first and counts under it twice: before its
	// starts and stops (to see another run's changes) and after them,
	// before its creates or destroys.
	if ops[flytest.OpList] < 200 || ops[flytest.OpList] > 200+2*ops[flytest.OpLeaseAcquire] {
		t.Errorf("%d machine lists for 200 apps and %d leases", ops[flytest.OpList], ops[flytest.OpLeaseAcquire])
	}

	// A second invocation finds nothing to do.
	srv.ResetCalls()
	code, out, stderr = runCLI(t, "run", "--org", "my-org", "--apps", "my-app-*", "--output", "json")
	if code != ExitOK {
		t.Fatalf("second run: exit code %d, stderr: %s", code, stderr)
	}
	rep = decodeReport(t, out)
	if rep.Summary.Unchanged != 200 {
		t.Errorf("second run: %d unchanged, want 200 (summary %+v)", rep.Summary.Unchanged, rep.Summary)
	}
	if m := srv.Mutations(); len(m) != 0 {
		t.Errorf("second run made %d changing calls, first: %+v", len(m), m[0])
	}
	// A steady-state app costs one Machines API call.
	for _, c := range srv.Calls() {
		if strings.HasPrefix(c.Path, "/v1/") && c.Op != flytest.OpList {
			t.Errorf("steady-state run called %s %s", c.Method, c.Path)
		}
	}
	if n := len(srv.Calls()); n != 200+3 {
		t.Errorf("steady-state run made %d calls, want 203 (org, 2 pages of apps, one list per app)", n)
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	onRealPrometheus(t)
	if testing.Short() {
		t.Skip("starts a real Prometheus")
	}
	srv := fleetEnv(t, "fleet-250.json")
	fleetProm(t)
	before := map[string]int{}
	for _, a := range srv.Apps() {
		before[a] = srv.Count(a, "started")
	}

	code, out, stderr := runCLI(t, "run", "--org", "my-org", "--apps", "my-app-*", "--dry-run")
	if code != ExitOK {
		t.Fatalf("exit code %d, stderr: %s", code, stderr)
	}
	if m := srv.Mutations(); len(m) != 0 {
		t.Errorf("dry run made %d changing calls, first: %+v", len(m), m[0])
	}
	for a, n := range before {
		if got := srv.Count(a, "started"); got != n {
			t.Errorf("%s: %d started after a dry run, had %d", a, got, n)
		}
	}
	if !strings.Contains(out, "planned") || !strings.Contains(out, "dry run") {
		t.Errorf("dry-run table does not show the plan:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("piped output holds escape codes")
	}
}

func TestRunOneFailingAppDoesNotStopTheOthers(t *testing.T) {
	onRealPrometheus(t)
	if testing.Short() {
		t.Skip("starts a real Prometheus")
	}
	srv := fleetEnv(t, "fleet-250.json")
	fleetProm(t)
	srv.Inject(flytest.Fault{Op: flytest.OpList, App: "my-app-007", Status: 500, Body: `{"error":"internal error listing machines"}`})
	srv.SetReleaseStatus("my-app-010", "running")

	code, out, _ := runCLI(t, "run", "--org", "my-org", "--apps", "my-app-*")
	if code != ExitFailed {
		t.Errorf("exit code %d, want %d", code, ExitFailed)
	}
	var failedRow, skippedRow string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "my-app-007") {
			failedRow += line
		}
		if strings.Contains(line, "my-app-010") {
			skippedRow += line
		}
	}
	if !strings.Contains(failedRow, "failed") || !strings.Contains(failedRow, "list machines") {
		t.Errorf("table row of my-app-007 does not say why it failed: %q", failedRow)
	}
	if !strings.Contains(skippedRow, "skipped: release in progress") {
		t.Errorf("table row of my-app-010 does not say it was skipped: %q", skippedRow)
	}
	for _, c := range srv.Calls() {
		if c.App == "my-app-010" {
			t.Errorf("skipped app was called: %s %s", c.Method, c.Path)
		}
		if c.App == "my-app-007" && c.Op != flytest.OpList {
			t.Errorf("failed app was changed: %s %s", c.Method, c.Path)
		}
	}
	for i := 1; i <= 200; i++ {
		name := fmt.Sprintf("my-app-%03d", i)
		if name == "my-app-007" || name == "my-app-010" {
			continue
		}
		if got := srv.Count(name, "started"); got != wantStarted(i) {
			t.Errorf("%s: %d started, want %d", name, got, wantStarted(i))
		}
	}
}

func TestRunPlainAppNamesNeedNoOrgListing(t *testing.T) {
	t.Parallel()
	srv := fleetEnv(t, "fleet-250.json")
	code, out, stderr := runCLI(t, "run", "--apps", "my-app-001,my-app-150", "--started-machine-count", "2", "--output", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rep := decodeReport(t, out)
	if len(rep.Apps) != 2 || rep.Apps[0].App != "my-app-001" || rep.Apps[1].App != "my-app-150" {
		t.Fatalf("apps %+v", rep.Apps)
	}
	ops := map[string]int{}
	for _, c := range srv.Calls() {
		ops[c.Op]++
	}
	if ops[flytest.OpGraphQLOrg]+ops[flytest.OpGraphQLApps] != 0 {
		t.Errorf("the org was listed for plain app names: %v", ops)
	}
	if ops[flytest.OpGraphQLRelease] != 2 {
		t.Errorf("%d release look-ups, want one per named app", ops[flytest.OpGraphQLRelease])
	}
	for _, name := range []string{"my-app-001", "my-app-150"} {
		if n := srv.Count(name, "started"); n != 2 {
			t.Errorf("%s: %d started, want 2", name, n)
		}
	}
}
