package cmd

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// callsEnv starts flytest with apps tenant-001.. (two started machines and
// three stopped each) and a real Prometheus where every app's queue_depth
// is 20, and points the CLI at both.
func callsEnv(t *testing.T, apps int) (*flytest.Server, *promtest.Server) {
	t.Helper()
	series := map[string]float64{}
	for i := 1; i <= apps; i++ {
		series[fmt.Sprintf("tenant-%03d", i)] = 20
	}
	prom := promtest.Start(t, series)
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "tenant-%03d", Count: apps, ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Count: 2}, {State: "stopped", Count: 3}}}}}
	srv := flytest.New(org, flytest.Options{Token: testToken})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv, prom
}

// callsByApp counts the Machines API calls of each app by operation, and
// the GraphQL calls under the app "".
func callsByApp(srv *flytest.Server) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, c := range srv.Calls() {
		app := c.App
		if strings.HasPrefix(c.Op, "graphql") {
			app = ""
		}
		if out[app] == nil {
			out[app] = map[string]int{}
		}
		out[app][c.Op]++
	}
	return out
}

// TestRunCallCounts: a steady-state run over 500 apps with a fleet-wide
// query costs exactly one Machines API call per app, one org lookup, one
// GraphQL page per 200 apps and one Prometheus query; a scale-up run adds
// no call per app beyond its actions.
func TestRunCallCounts(t *testing.T) {
	onRealPrometheus(t)
	skipShort(t)
	const apps = 500
	srv, prom := callsEnv(t, apps)
	run := func(expr string) jsonReport {
		t.Helper()
		srv.ResetCalls()
		prom.ResetQueries()
		code, out, stderr := runCLI(t, "run", "--org", "my-org", "--apps", "tenant-*", "--output", "json",
			"--prometheus-address", prom.URL(), "--prometheus-metric-name", "queue_depth", "--prometheus-query", fleetQuery,
			"--started-machine-count", expr)
		if code != ExitOK {
			t.Fatalf("exit code %d; stderr: %s", code, stderr)
		}
		return decodeReport(t, out)
	}

	t.Run("steady state", func(t *testing.T) {
		conns := srv.Connections()
		rep := run("ceil(queue_depth / 10)")
		if rep.Summary.Unchanged != apps {
			t.Fatalf("summary %+v, want %d apps unchanged", rep.Summary, apps)
		}
		calls := callsByApp(srv)
		// A run that lasts longer than 20 s (the race detector on a busy
		// machine) reads the listing again for fresh release statuses.
		want := map[string]int{flytest.OpGraphQLOrg: 1, flytest.OpGraphQLApps: (apps + 199) / 200}
		if slow := rep.ElapsedSeconds >= 20; !slow && !maps.Equal(calls[""], want) {
			t.Errorf("GraphQL calls %v, want %v", calls[""], want)
		} else if slow && (calls[""][flytest.OpGraphQLOrg] != 1 || calls[""][flytest.OpGraphQLApps]%want[flytest.OpGraphQLApps] != 0) {
			t.Errorf("GraphQL calls %v in %.1fs, want one org lookup and whole listings of %d pages", calls[""], rep.ElapsedSeconds, want[flytest.OpGraphQLApps])
		}
		if n := len(calls) - 1; n != apps {
			t.Errorf("Machines API calls for %d apps, want %d", n, apps)
		}
		for app, ops := range calls {
			if app != "" && !maps.Equal(ops, map[string]int{flytest.OpList: 1}) {
				t.Errorf("%s: calls %v, want one list", app, ops)
			}
		}
		if n := prom.Queries(); n != 1 {
			t.Errorf("%d Prometheus queries, want 1", n)
		}
		// The workers (32 by default) keep their connections: a new one
		// per request would cost a TLS handshake against the real API.
		if n := srv.Connections() - conns; n > 2*scale.DefaultConcurrency {
			t.Errorf("%d connections opened for %d requests, want at most %d: connections are not reused", n, len(srv.Calls()), 2*scale.DefaultConcurrency)
		}
	})

	t.Run("scale-up", func(t *testing.T) {
		rep := run("ceil(queue_depth / 10) + 2")
		if rep.Summary.Scaled != apps {
			t.Fatalf("summary %+v, want %d apps scaled", rep.Summary, apps)
		}
		calls := callsByApp(srv)
		for _, a := range rep.Apps {
			total := 0
			for _, n := range calls[a.App] {
				total += n
			}
			if want := len(a.Actions) + 1; total > want || calls[a.App][flytest.OpList] != 1 {
				t.Errorf("%s: calls %v for %d actions, want at most %d with one list", a.App, calls[a.App], len(a.Actions), want)
			}
			if a.Target == nil || a.Target.Started != 4 {
				t.Errorf("%s: target %+v, want 4 started", a.App, a.Target)
			}
		}
		if n := prom.Queries(); n != 1 {
			t.Errorf("%d Prometheus queries, want 1", n)
		}
	})
}
