package cmd

// End-to-end tests of the metrics path: the CLI against flytest and a real
// Prometheus (query/promtest), a real prometheus-pushgateway, or loopback
// servers that fail. Every test that runs a fleet skips under -short; the
// ones that need a binary skip without it (and fail under CI=true).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	promsource "github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const (
	perAppQuery = `sum(queue_depth{app="$APP_NAME"})`
	fleetQuery  = `sum by (app) (queue_depth)`
)

// queryForms are the two ways of asking for the same per-app value.
var queryForms = []struct{ name, query string }{
	{"per-app", perAppQuery},
	{"fleet-wide", fleetQuery},
}

// targetArgs are the expressions of the fleet tests: wantStarted(i) started
// machines for my-app-i, at least as many created, at most 8.
var targetArgs = []string{
	"--started-machine-count", "ceil(queue_depth / 10)",
	"--min-created-machine-count", "ceil(queue_depth / 10)",
	"--max-created-machine-count", "8",
}

// promArgs are the flags of one Prometheus collector named queue_depth.
func promArgs(address, query string) []string {
	return []string{"--prometheus-address", address, "--prometheus-metric-name", "queue_depth", "--prometheus-query", query}
}

// args joins argument lists.
func args(lists ...[]string) []string { return slices.Concat(lists...) }

// appName is the name of the i-th app of fleet-100.json.
func appName(i int) string { return fmt.Sprintf("my-app-%03d", i) }

// skipShort skips a test that runs a fleet under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end fleet test: skipped in -short mode")
	}
}

// assertNoScaling fails the test if flytest saw any call that changes a
// machine, or that is the first step of one.
func assertNoScaling(t *testing.T, srv *flytest.Server) {
	t.Helper()
	for _, c := range srv.Calls() {
		switch c.Op {
		case flytest.OpStart, flytest.OpStop, flytest.OpSuspend, flytest.OpDestroy, flytest.OpLaunch, flytest.OpLeaseAcquire:
			t.Errorf("unexpected %s call: %s %s", c.Op, c.Method, c.Path)
		}
	}
	if m := srv.Mutations(); len(m) != 0 {
		t.Errorf("%d changing calls, first: %s %s", len(m), m[0].Method, m[0].Path)
	}
}

// TestQueryE2E shares one real Prometheus, serving queue_depth for the 100
// apps of fleet-100.json, among its subtests.
func TestQueryE2E(t *testing.T) {
	onRealPrometheus(t)
	skipShort(t)
	series := map[string]float64{}
	for i := 1; i <= 100; i++ {
		series[appName(i)] = queueDepth(i)
	}
	prom := promtest.Start(t, series)

	t.Run("per-app and fleet-wide queries give the same targets", func(t *testing.T) {
		srv := fleetEnv(t, "fleet-100.json")
		run := func(query string) jsonReport {
			t.Helper()
			prom.ResetQueries()
			code, out, stderr := runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--dry-run", "--output", "json"},
				promArgs(prom.URL(), query), targetArgs)...)
			if code != ExitOK {
				t.Fatalf("%s: exit code %d, stderr: %s", query, code, stderr)
			}
			return decodeReport(t, out)
		}

		perApp := run(perAppQuery)
		if n := prom.Queries(); n != 100 {
			t.Errorf("per-app query: %d queries, want one per app (100)", n)
		}
		for round := 1; round <= 2; round++ {
			fleet := run(fleetQuery)
			if n := prom.Queries(); n != 1 {
				t.Errorf("fleet-wide query, run %d: %d queries, want exactly 1: %+v", round, n, prom.QueryLog())
			}
			if len(perApp.Apps) != 100 || len(fleet.Apps) != 100 {
				t.Fatalf("%d and %d apps reported, want 100 each", len(perApp.Apps), len(fleet.Apps))
			}
			fleetApps := byApp(fleet)
			for i := 1; i <= 100; i++ {
				name := appName(i)
				p, f := byApp(perApp)[name], fleetApps[name]
				if p.Status != "planned" && p.Status != "unchanged" {
					t.Errorf("%s: per-app status %s (%s)", name, p.Status, p.Reason)
				}
				if p.Target == nil || f.Target == nil || *p.Target != *f.Target || p.Status != f.Status {
					t.Errorf("%s: per-app target %+v (%s), fleet-wide %+v (%s)", name, p.Target, p.Status, f.Target, f.Status)
				}
				if p.Target.Started != wantStarted(i) {
					t.Errorf("%s: target started %d, want %d", name, p.Target.Started, wantStarted(i))
				}
				if v := f.Metrics["queue_depth"]; v == nil || *v != queueDepth(i) {
					t.Errorf("%s: fleet-wide metric %v, want %v", name, v, queueDepth(i))
				}
			}
		}
		assertNoScaling(t, srv)
	})

	t.Run("empty result", func(t *testing.T) {
		// backlog has series for my-app-001..003 only: my-app-004's query
		// comes back empty.
		backlog := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backlog", Help: "Test backlog."}, []string{"app"})
		prom.Registry().MustRegister(backlog)
		want := map[string]float64{"my-app-001": 25, "my-app-002": 5, "my-app-003": 40}
		for app, v := range want {
			backlog.WithLabelValues(app).Set(v)
		}
		prom.WaitFor(t, "backlog", func(r promtest.Result) bool { return len(r) == len(want) })
		wantTarget := map[string]int{"my-app-001": 3, "my-app-002": 1, "my-app-003": 4}

		base := []string{"run", "--org", "my-org", "--apps", "my-app-00[1-4]", "--output", "json",
			"--started-machine-count", "ceil(backlog / 10)"}
		for _, form := range []struct{ name, query string }{
			{"per-app", `sum(backlog{app="$APP_NAME"})`},
			{"fleet-wide", `sum by (app) (backlog)`},
		} {
			flags := []string{"--prometheus-address", prom.URL(), "--prometheus-metric-name", "backlog", "--prometheus-query", form.query}
			checkScaled := func(t *testing.T, srv *flytest.Server, rep jsonReport) {
				t.Helper()
				apps := byApp(rep)
				for app, n := range wantTarget {
					if a := apps[app]; a.Status != "scaled" || a.Target.Started != n {
						t.Errorf("%s: status %s (%s) target %d, want scaled to %d", app, a.Status, a.Reason, a.Target.Started, n)
					}
					if got := srv.Count(app, "started"); got != n {
						t.Errorf("%s: %d started, want %d", app, got, n)
					}
				}
			}

			t.Run(form.name+"/on-empty error leaves the app alone", func(t *testing.T) {
				srv := fleetEnv(t, "fleet-100.json")
				code, out, stderr := runCLI(t, args(base, flags)...)
				if code != ExitFailed {
					t.Errorf("exit code %d, want %d; stderr: %s", code, ExitFailed, stderr)
				}
				rep := decodeReport(t, out)
				a := byApp(rep)["my-app-004"]
				if a.Status != "failed" || !strings.Contains(a.Reason, `"backlog"`) || !strings.Contains(a.Reason, "no series") || !strings.HasSuffix(a.Reason, promsource.NoSeriesHint) {
					t.Errorf("my-app-004: status %s, reason %q; want failed naming the metric backlog and no series, with the way out", a.Status, a.Reason)
				}
				for _, c := range srv.Calls() {
					if c.App == "my-app-004" && c.Op != flytest.OpList {
						t.Errorf("my-app-004 was called beyond its machine list: %s %s", c.Method, c.Path)
					}
				}
				if got := srv.Count("my-app-004", "started"); got != 2 {
					t.Errorf("my-app-004: %d started, want its 2 untouched", got)
				}
				checkScaled(t, srv, rep)
			})

			t.Run(form.name+"/on-empty zero in YAML", func(t *testing.T) {
				srv := fleetEnv(t, "fleet-100.json")
				cfg := writeFile(t, "fas.yml", fmt.Sprintf(`metric-collectors:
  - type: prometheus
    metric-name: backlog
    address: %s
    query: '%s'
    on-empty: zero
`, prom.URL(), form.query))
				code, out, stderr := runCLI(t, args(base, []string{"--config", cfg})...)
				if code != ExitOK {
					t.Fatalf("exit code %d, stderr: %s\n%s", code, stderr, out)
				}
				rep := decodeReport(t, out)
				if a := byApp(rep)["my-app-004"]; a.Status != "scaled" || a.Target.Started != 0 {
					t.Errorf("my-app-004: status %s (%s) target %d, want scaled to 0", a.Status, a.Reason, a.Target.Started)
				}
				if got := srv.Count("my-app-004", "started"); got != 0 {
					t.Errorf("my-app-004: %d started, want 0", got)
				}
				checkScaled(t, srv, rep)
			})

			t.Run(form.name+"/--prometheus-on-empty zero", func(t *testing.T) {
				srv := fleetEnv(t, "fleet-100.json")
				code, out, stderr := runCLI(t, args(base, flags, []string{"--prometheus-on-empty", "zero"})...)
				if code != ExitOK {
					t.Fatalf("exit code %d, stderr: %s\n%s", code, stderr, out)
				}
				rep := decodeReport(t, out)
				if a := byApp(rep)["my-app-004"]; a.Status != "scaled" || a.Target.Started != 0 {
					t.Errorf("my-app-004: status %s (%s) target %d, want scaled to 0", a.Status, a.Reason, a.Target.Started)
				}
				checkScaled(t, srv, rep)
			})
		}
	})

	t.Run("several collectors in one expression", func(t *testing.T) {
		srv := fleetEnv(t, "fleet-100.json")
		// depth_a: per-app, through the counting proxy, with a token.
		// depth_b: fleet-wide, straight to Prometheus (another address),
		// split on a custom app label.
		// depth_c: the FAS_PROMETHEUS_* collector, per-app, twice the value.
		cfg := writeFile(t, "fas.yml", fmt.Sprintf(`metric-collectors:
  - type: prometheus
    metric-name: depth_a
    address: %s
    query: 'sum(queue_depth{app="$APP_NAME"})'
    token: token-a
  - type: prometheus
    metric-name: depth_b
    address: %s
    query: 'sum by (service) (label_replace(queue_depth, "service", "$1", "app", "(.*)"))'
    app-label: service
`, prom.URL(), prom.DirectURL()))
		setenv(t, "FAS_PROMETHEUS_ADDRESS", prom.URL())
		setenv(t, "FAS_PROMETHEUS_METRIC_NAME", "depth_c")
		setenv(t, "FAS_PROMETHEUS_QUERY", `2 * sum(queue_depth{app="$APP_NAME"})`)
		setenv(t, "FAS_PROMETHEUS_TOKEN", "token-c")
		setenv(t, "FAS_STARTED_MACHINE_COUNT", "ceil((depth_a + depth_b + depth_c) / 40)")
		setenv(t, "FAS_MIN_CREATED_MACHINE_COUNT", "ceil((depth_a + depth_b + depth_c) / 40)")
		setenv(t, "FAS_MAX_CREATED_MACHINE_COUNT", "8")

		prom.ResetQueries()
		code, out, stderr := runCLI(t, "run", "--config", cfg, "--org", "my-org", "--apps", "my-app-0[0-1]*", "--dry-run", "--output", "json")
		if code != ExitOK {
			t.Fatalf("exit code %d, stderr: %s\n%s", code, stderr, out)
		}
		rep := decodeReport(t, out)
		if len(rep.Apps) != 19 {
			t.Fatalf("%d apps, want 19 (my-app-001..019)", len(rep.Apps))
		}
		for _, a := range rep.Apps {
			var i int
			fmt.Sscanf(a.App, "my-app-%d", &i)
			q := queueDepth(i)
			for name, want := range map[string]float64{"depth_a": q, "depth_b": q, "depth_c": 2 * q} {
				if v := a.Metrics[name]; v == nil || *v != want {
					t.Errorf("%s: %s = %v, want %v", a.App, name, v, want)
				}
			}
			if a.Target.Started != wantStarted(i) {
				t.Errorf("%s: target started %d (%s %s), want %d", a.App, a.Target.Started, a.Status, a.Reason, wantStarted(i))
			}
		}
		auth := map[string]int{}
		for _, r := range prom.QueryLog() {
			auth[r.Authorization]++
		}
		if auth["Bearer token-a"] != 19 || auth["Bearer token-c"] != 19 || len(auth) != 2 {
			t.Errorf("queries by Authorization through the proxy: %v; want 19 with token-a and 19 with token-c", auth)
		}
		assertNoScaling(t, srv)
	})

	t.Run("pushgateway receives the run's figures", func(t *testing.T) {
		gw := promtest.StartPushgateway(t)
		fleetEnv(t, "fleet-100.json")
		before := time.Now()
		code, out, stderr := runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--output", "json", "--pushgateway", gw.URL()},
			promArgs(prom.URL(), fleetQuery), targetArgs)...)
		after := time.Now()
		if code != ExitOK {
			t.Fatalf("exit code %d, stderr: %s", code, stderr)
		}
		if strings.Contains(stderr, "pushgateway") {
			t.Errorf("push warned: %s", stderr)
		}
		rep := decodeReport(t, out)
		starts := 0
		for _, a := range rep.Apps {
			for _, ac := range a.Actions {
				if ac.Kind == "start" && ac.Outcome == "done" {
					starts++
				}
			}
		}

		m := gw.Metrics(t)
		job := map[string]string{"job": "fly-autoscaler", "org": "my-org"}
		expect := func(name string, labels map[string]string, want float64) {
			t.Helper()
			if v, ok := pushed(m, name, job, labels); !ok || v != want {
				t.Errorf("%s%v = %v (found %v), want %v", name, labels, v, ok, want)
			}
		}
		expect("fly_autoscaler_apps_matched", nil, 100)
		expect("fly_autoscaler_apps", map[string]string{"result": "scaled"}, float64(rep.Summary.Scaled))
		expect("fly_autoscaler_apps", map[string]string{"result": "unchanged"}, float64(rep.Summary.Unchanged))
		expect("fly_autoscaler_apps", map[string]string{"result": "failed"}, 0)
		expect("fly_autoscaler_machine_actions", map[string]string{"action": "start", "outcome": "done"}, float64(starts))
		expect("fly_autoscaler_machine_actions", map[string]string{"action": "destroy", "outcome": "failed"}, 0)
		for _, i := range []int{1, 42, 100} {
			app := map[string]string{"app": appName(i)}
			expect("fly_autoscaler_app_started_machines", app, 2)
			expect("fly_autoscaler_app_target_started_machines", app, float64(wantStarted(i)))
		}
		if n := len(m["fly_autoscaler_app_started_machines"]); n != 100 {
			t.Errorf("%d per-app started series, want 100", n)
		}
		if v, ok := pushed(m, "fly_autoscaler_run_duration_seconds", job, nil); !ok || v <= 0 {
			t.Errorf("run duration %v (found %v), want > 0", v, ok)
		}
		success := map[string]string{"run": "success"}
		last, ok := pushed(m, "fly_autoscaler_last_success_timestamp_seconds", job, success)
		if !ok || last < float64(before.Unix()) || last > float64(after.Unix()+1) {
			t.Errorf("last success time %v (found %v), want between %d and %d", last, ok, before.Unix(), after.Unix()+1)
		}

		// A failed run updates the figures and keeps the last success time.
		code, _, stderr = runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--output", "json", "--pushgateway", gw.URL()},
			promArgs("http://"+promtest.ClosedAddr(t), fleetQuery), targetArgs)...)
		if code != ExitFailed {
			t.Fatalf("run with Prometheus down: exit code %d, want %d; stderr: %s", code, ExitFailed, stderr)
		}
		m = gw.Metrics(t)
		expect("fly_autoscaler_apps", map[string]string{"result": "failed"}, 100)
		expect("fly_autoscaler_apps", map[string]string{"result": "scaled"}, 0)
		if n := len(m["fly_autoscaler_app_started_machines"]); n != 0 {
			t.Errorf("%d per-app started series after a run where every app failed, want none", n)
		}
		if v, ok := pushed(m, "fly_autoscaler_last_success_timestamp_seconds", job, success); !ok || v != last {
			t.Errorf("last success time after a failed run: %v (found %v), want it kept at %v", v, ok, last)
		}

		// A successful dry run pushes under dry_run="true": the real runs'
		// figures and their last success time stay as they were.
		code, _, stderr = runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--output", "json", "--dry-run", "--pushgateway", gw.URL()},
			promArgs(prom.URL(), fleetQuery), targetArgs)...)
		if code != ExitOK {
			t.Fatalf("dry run: exit code %d; stderr: %s", code, stderr)
		}
		m = gw.Metrics(t)
		real, dry := map[string]string{"dry_run": ""}, map[string]string{"dry_run": "true"}
		if v, ok := pushed(m, "fly_autoscaler_apps", job, map[string]string{"result": "failed", "dry_run": ""}); !ok || v != 100 {
			t.Errorf("real run's failed apps after a dry run: %v (found %v), want 100 kept", v, ok)
		}
		if v, ok := pushed(m, "fly_autoscaler_apps_matched", job, dry); !ok || v != 100 {
			t.Errorf("dry run's apps matched: %v (found %v), want 100", v, ok)
		}
		if v, ok := pushed(m, "fly_autoscaler_apps", job, map[string]string{"result": "failed", "dry_run": "true"}); !ok || v != 0 {
			t.Errorf("dry run's failed apps: %v (found %v), want 0", v, ok)
		}
		if v, ok := pushed(m, "fly_autoscaler_last_success_timestamp_seconds", job, real); !ok || v != last {
			t.Errorf("last success time after a dry run: %v (found %v), want it kept at %v", v, ok, last)
		}
		if n := len(m["fly_autoscaler_last_success_timestamp_seconds"]); n != 1 {
			t.Errorf("%d last success series, want 1 (a dry run pushes none)", n)
		}

		// A sharded run covers its shard's apps only and pushes to groups
		// of its own (shard="2/4"): the whole-fleet groups stay as they were.
		setenv(t, "FAS_SHARD", "2/4")
		code, out, stderr = runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--output", "json", "--pushgateway", gw.URL()},
			promArgs(prom.URL(), fleetQuery), targetArgs)...)
		if code != ExitOK {
			t.Fatalf("sharded run: exit code %d; stderr: %s", code, stderr)
		}
		rep = decodeReport(t, out)
		inShard := 0
		for i := 1; i <= 100; i++ {
			if scale.ShardOf(appName(i), 4) == 2 {
				inShard++
			}
		}
		if rep.Shard != "2/4" || rep.Summary.AppsMatched != inShard || len(rep.Apps) != inShard || inShard == 0 {
			t.Errorf("sharded run: shard %q, %d apps matched and %d reported, want 2/4 and %d", rep.Shard, rep.Summary.AppsMatched, len(rep.Apps), inShard)
		}
		for _, a := range rep.Apps {
			if scale.ShardOf(a.App, 4) != 2 {
				t.Errorf("sharded run reconciled %s of shard %d/4", a.App, scale.ShardOf(a.App, 4))
			}
		}
		m = gw.Metrics(t)
		shard := map[string]string{"shard": "2/4", "dry_run": ""}
		if v, ok := pushed(m, "fly_autoscaler_apps_matched", job, shard); !ok || v != float64(inShard) {
			t.Errorf("shard's apps matched: %v (found %v), want %d", v, ok, inShard)
		}
		if v, ok := pushed(m, "fly_autoscaler_apps", job, map[string]string{"result": "failed", "dry_run": "", "shard": ""}); !ok || v != 100 {
			t.Errorf("whole fleet's failed apps after a sharded run: %v (found %v), want 100 kept", v, ok)
		}
		if v, ok := pushed(m, "fly_autoscaler_last_success_timestamp_seconds", job, map[string]string{"run": "success", "shard": "2/4"}); !ok || v < last {
			t.Errorf("shard's last success time %v (found %v), want at least %v", v, ok, last)
		}
		if v, ok := pushed(m, "fly_autoscaler_last_success_timestamp_seconds", job, map[string]string{"run": "success", "shard": ""}); !ok || v != last {
			t.Errorf("whole fleet's last success time after a sharded run: %v (found %v), want it kept at %v", v, ok, last)
		}
	})

	t.Run("eval", func(t *testing.T) {
		srv := fleetEnv(t, "fleet-100.json")
		prom.ResetQueries()
		code, out, stderr := runCLI(t, args([]string{"eval", "--org", "my-org", "--apps", "my-app-00*", "--output", "json"},
			promArgs(prom.URL(), fleetQuery), targetArgs)...)
		if code != ExitOK {
			t.Fatalf("exit code %d, stderr: %s\n%s", code, stderr, out)
		}
		var rep jsonEval
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("decode: %v\n%s", err, out)
		}
		if rep.AppsMatched != 9 || len(rep.Apps) != 9 || rep.Failed != 0 {
			t.Fatalf("matched %d, %d apps, %d failed; want 9, 9, 0:\n%s", rep.AppsMatched, len(rep.Apps), rep.Failed, out)
		}
		for i, a := range rep.Apps {
			n := i + 1
			want := wantStarted(n)
			if a.App != appName(n) {
				t.Errorf("app %d is %s, want %s", i, a.App, appName(n))
			}
			if v := a.Metrics["queue_depth"]; v == nil || *v != queueDepth(n) {
				t.Errorf("%s: queue_depth %v, want %v", a.App, v, queueDepth(n))
			}
			tg := a.Targets
			if tg.MinStarted == nil || tg.MaxStarted == nil || tg.MinCreated == nil || tg.MaxCreated == nil ||
				*tg.MinStarted != want || *tg.MaxStarted != want || *tg.MinCreated != want || *tg.MaxCreated != 8 {
				t.Errorf("%s: targets %s, want started %d, created %d..8", a.App, jsonString(tg), want, want)
			}
		}
		if n := prom.Queries(); n != 1 {
			t.Errorf("%d queries, want 1 (fleet-wide)", n)
		}

		// The table, with an expression that reads a fleet variable (0).
		code, out, stderr = runCLI(t, args([]string{"eval", "--org", "my-org", "--apps", "my-app-00[1-2]"},
			promArgs(prom.URL(), perAppQuery), []string{"--started-machine-count", "ceil(queue_depth / 10) + started"})...)
		if code != ExitOK {
			t.Fatalf("table: exit code %d, stderr: %s", code, stderr)
		}
		for _, s := range []string{"APP", "METRICS", "STARTED", "CREATED", "my-app-001", "queue_depth=7.5", "my-app-002", "queue_depth=14.5", "2 apps: 2 evaluated, 0 failed"} {
			if !strings.Contains(out, s) {
				t.Errorf("table lacks %q:\n%s", s, out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "my-app-002") && !strings.Contains(line, " 2 ") {
				t.Errorf("my-app-002 row does not show started target 2: %q", line)
			}
		}

		for _, c := range srv.Calls() {
			if !strings.HasPrefix(c.Op, "graphql") {
				t.Errorf("eval called the Machines API: %s %s", c.Method, c.Path)
			}
		}
	})
}

// pushed returns the value of the sample of name whose labels include
// every one of job and labels.
func pushed(m map[string][]promtest.Sample, name string, job, labels map[string]string) (float64, bool) {
	for _, s := range m[name] {
		ok := true
		for _, want := range []map[string]string{job, labels} {
			for k, v := range want {
				if s.Labels[k] != v {
					ok = false
				}
			}
		}
		if ok {
			return s.Value, true
		}
	}
	return 0, false
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestQueryE2EPrometheusUnavailable: with Prometheus down or failing, every
// app fails, the run exits 1, and no machine is touched.
func TestQueryE2EPrometheusUnavailable(t *testing.T) {
	t.Parallel()
	skipShort(t)
	var hits atomic.Int64
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"status":"error","errorType":"internal","error":"storage on fire"}`)
	}))
	t.Cleanup(broken.Close)

	for _, server := range []struct{ name, address string }{
		{"port closed", "http://" + promtest.ClosedAddr(t)},
		{"answers 500", broken.URL},
	} {
		for _, form := range queryForms {
			t.Run(server.name+"/"+form.name, func(t *testing.T) {
				srv := fleetEnv(t, "fleet-100.json")
				hits.Store(0)
				code, out, stderr := runCLI(t, args([]string{"run", "--org", "my-org", "--apps", "my-app-*", "--output", "json"},
					promArgs(server.address, form.query), targetArgs)...)
				if code != ExitFailed {
					t.Errorf("exit code %d, want %d; stderr: %s", code, ExitFailed, stderr)
				}
				rep := decodeReport(t, out)
				if rep.Summary.Failed != 100 || len(rep.Apps) != 100 {
					t.Errorf("%d of %d apps failed, want all 100 (summary %+v)", rep.Summary.Failed, len(rep.Apps), rep.Summary)
				}
				for _, a := range rep.Apps {
					if a.Status != "failed" || !strings.Contains(a.Reason, `metric "queue_depth"`) {
						t.Errorf("%s: status %s, reason %q; want failed on the metric", a.App, a.Status, a.Reason)
						break
					}
				}
				assertNoScaling(t, srv)
				if server.address == broken.URL {
					want := int64(100)
					if form.query == fleetQuery {
						want = 1
					}
					if n := hits.Load(); n != want {
						t.Errorf("%d requests to the failing Prometheus, want %d", n, want)
					}
				}
			})
		}
	}
}

// TestQueryE2EDuplicateMetricNames: a metric name defined twice, in the
// YAML file or across the file and FAS_PROMETHEUS_*, is a configuration
// error: exit 2 before any call.
func TestQueryE2EDuplicateMetricNames(t *testing.T) {
	t.Parallel()
	collector := func(name string) string {
		return fmt.Sprintf(`  - type: prometheus
    metric-name: %s
    address: http://127.0.0.1:9
    query: 'sum(x{app="$APP_NAME"})'
`, name)
	}
	for _, tc := range []struct {
		name string
		yaml string
		env  bool
	}{
		{"across YAML and FAS_PROMETHEUS_*", "metric-collectors:\n" + collector("depth_a") + collector("depth_b"), true},
		{"within YAML", "metric-collectors:\n" + collector("depth_a") + collector("depth_a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			setenv(t, "FAS_API_TOKEN", testToken)
			if tc.env {
				setenv(t, "FAS_PROMETHEUS_ADDRESS", "http://127.0.0.1:9")
				setenv(t, "FAS_PROMETHEUS_METRIC_NAME", "depth_b")
				setenv(t, "FAS_PROMETHEUS_QUERY", "sum(y)")
			}
			cfg := writeFile(t, "fas.yml", tc.yaml)
			for _, command := range []string{"run", "eval"} {
				code, _, stderr := runCLI(t, command, "--config", cfg, "--org", "my-org", "--apps", "my-app-*",
					"--started-machine-count", "depth_a + depth_b")
				if code != ExitUsage {
					t.Errorf("%s: exit code %d, want %d; stderr: %s", command, code, ExitUsage, stderr)
				}
				if !strings.Contains(stderr, "already defined") {
					t.Errorf("%s: error does not say the name is defined twice: %s", command, stderr)
				}
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls before the configuration error", n)
			}
		})
	}
}

// TestQueryE2EPushgatewayUnavailable: a push that fails is a warning on
// stderr without credentials; the run's exit code stays 0.
func TestQueryE2EPushgatewayUnavailable(t *testing.T) {
	t.Parallel()
	skipShort(t)
	var (
		mu    sync.Mutex
		auths []string
	)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		mu.Lock()
		auths = append(auths, user+":"+pw)
		mu.Unlock()
		http.Error(w, "gateway broken at "+r.URL.Path, http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)

	const user, password = "pushuser", "s3cret-pw"
	for _, tc := range []struct{ name, host string }{
		{"port closed", promtest.ClosedAddr(t)},
		{"answers 500", strings.TrimPrefix(broken.URL, "http://")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fleetEnv(t, "fleet-100.json")
			gateway := fmt.Sprintf("http://%s:%s@%s", user, password, tc.host)
			code, out, stderr := runCLI(t, "run", "--org", "my-org", "--apps", "my-app-00[1-3]", "--started-machine-count", "1",
				"--pushgateway", gateway)
			if code != ExitOK {
				t.Errorf("exit code %d, want %d; stderr: %s", code, ExitOK, stderr)
			}
			if !strings.Contains(stderr, "WARN") || !strings.Contains(stderr, "pushgateway") || !strings.Contains(stderr, "http://"+tc.host) {
				t.Errorf("no warning naming the gateway on stderr: %q", stderr)
			}
			for _, secret := range []string{user, password, testToken} {
				if strings.Contains(stderr+out, secret) {
					t.Errorf("output holds the secret %q:\n%s\n%s", secret, stderr, out)
				}
			}
			if got := srv.Count("my-app-001", "started"); got != 1 {
				t.Errorf("my-app-001: %d started, want 1: the run must go on", got)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) == 0 || auths[0] != user+":"+password {
		t.Errorf("gateway saw basic auth %v, want %s:%s", auths, user, password)
	}
}
