package cmd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// tenantsEnv starts flytest with org and points the CLI at it.
func tenantsEnv(t *testing.T, org *flytest.Org) *flytest.Server {
	t.Helper()
	srv := flytest.New(org, flytest.Options{Token: testToken})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv
}

func appOf(t *testing.T, rep jsonReport, name string) jsonApp {
	t.Helper()
	for _, a := range rep.Apps {
		if a.App == name {
			return a
		}
	}
	t.Fatalf("no app %s in the report", name)
	return jsonApp{}
}

// mutationOps returns the ops of the changes made since the last reset.
func mutationOps(srv *flytest.Server) []string {
	var ops []string
	for _, c := range srv.Mutations() {
		ops = append(ops, c.Op+" "+c.App)
	}
	return ops
}

func startedOf(srv *flytest.Server, app string) int { return srv.Count(app, "started") }

// TestPauseResume: pause writes the pause keys on every machine of the
// app's group through the metadata endpoint (no update, no other change);
// a run leaves the app alone and reports it paused in every format; a
// second pause changes nothing; resume deletes the keys and the next run
// scales the app again.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "acme", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 2}, {State: "started", Group: "worker"}}},
		{Name: "other", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}},
	}})
	before := time.Now()
	code, out, stderr := runCLI(t, "pause", "acme", "--for", "2h", "--reason", "migration")
	if code != ExitOK {
		t.Fatalf("pause: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "acme: 3 machines paused until ") || !strings.Contains(out, ": migration") {
		t.Errorf("pause output:\n%s", out)
	}
	var until string
	for _, m := range srv.Machines("acme") {
		md := m.Config.Metadata
		if m.Config.ProcessGroup() == "worker" {
			if _, ok := md[scale.MetaPausedUntil]; ok {
				t.Errorf("%s of another group was marked", m.ID)
			}
			continue
		}
		u, err := time.Parse(time.RFC3339, md[scale.MetaPausedUntil])
		if err != nil || u.Location() != time.UTC || u.Before(before.Add(2*time.Hour-2*time.Second)) || u.After(time.Now().Add(2*time.Hour+time.Minute)) || u.Second() != 0 {
			t.Errorf("%s: %s = %q (%v), want RFC 3339 UTC two hours on, to the minute", m.ID, scale.MetaPausedUntil, md[scale.MetaPausedUntil], err)
		}
		if md[scale.MetaPausedReason] != "migration" {
			t.Errorf("%s: reason %q", m.ID, md[scale.MetaPausedReason])
		}
		until = md[scale.MetaPausedUntil]
	}
	ops := mutationOps(srv)
	if len(ops) != 6 || slices.ContainsFunc(ops, func(op string) bool { return !strings.HasPrefix(op, flytest.OpMetadataSet+" ") }) {
		t.Errorf("pause made %q, want 6 metadata sets (2 keys on 3 machines) and nothing else", ops)
	}

	// A run leaves the paused app alone, and scales the other.
	srv.ResetCalls()
	code, out, stderr = runCLI(t, "run", "--org", "tenants", "--apps", "*", "--started-machine-count", "2", "--output", "json")
	if code != ExitOK {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	u, _ := time.Parse(time.RFC3339, until)
	wantReason := "paused until " + u.Format("2006-01-02T15:04")
	if a := appOf(t, rep, "acme"); a.Status != "paused" || !strings.HasPrefix(a.Reason, wantReason) || !strings.HasSuffix(a.Reason, ": migration") || len(a.Actions) != 0 {
		t.Errorf("acme: %s %q %v, want paused %q...: migration", a.Status, a.Reason, a.Actions, wantReason)
	}
	if a := appOf(t, rep, "other"); a.Status != "scaled" {
		t.Errorf("other: %s %q", a.Status, a.Reason)
	}
	if rep.Summary.Paused != 1 {
		t.Errorf("summary %+v, want 1 paused", rep.Summary)
	}
	for _, c := range srv.Mutations() {
		if c.App == "acme" {
			t.Errorf("the paused app was changed: %s %s", c.Op, c.MachineID)
		}
	}
	var acmeLists int
	for _, c := range srv.Calls() {
		if c.App == "acme" && strings.HasPrefix(c.Op, "metadata") {
			t.Errorf("the run read the pause with an extra call: %s", c.Op)
		}
		if c.App == "acme" && c.Op == flytest.OpList {
			acmeLists++
		}
	}
	if acmeLists != 1 {
		t.Errorf("%d machine lists of the paused app, want 1", acmeLists)
	}
	if startedOf(srv, "acme") != 2 { // the worker and one app machine
		t.Errorf("acme has %d started machines, want 2 (unchanged)", startedOf(srv, "acme"))
	}
	for _, format := range []string{"table", "markdown"} {
		_, out, _ := runCLI(t, "run", "--org", "tenants", "--apps", "acme", "--started-machine-count", "3", "--output", format, "--dry-run")
		if !strings.Contains(out, "paused: "+wantReason) || !strings.Contains(out, "1 paused") {
			t.Errorf("%s report does not show the pause:\n%s", format, out)
		}
	}

	// Pausing again writes nothing that is there already: the reason is
	// not written again, the time only when the minute it ends at moved
	// on (TestMarkAppsIdempotent has a fixed clock).
	srv.ResetCalls()
	code, out, _ = runCLI(t, "pause", "acme", "--for", "2h", "--reason", "migration")
	ops = mutationOps(srv)
	if code != ExitOK || len(ops) != 0 && len(ops) != 3 || len(ops) == 0 && !strings.Contains(out, "3 machines already paused") {
		t.Errorf("second pause: exit %d, %q\n%s", code, ops, out)
	}
	for _, c := range srv.Calls() {
		if strings.HasSuffix(c.Path, scale.MetaPausedReason) {
			t.Errorf("the reason was written again: %s %s", c.Op, c.Path)
		}
	}

	// Resume deletes both keys; the next run scales the app.
	srv.ResetCalls()
	code, out, stderr = runCLI(t, "resume", "acme")
	if code != ExitOK || !strings.Contains(out, "acme: 3 machines resumed") {
		t.Fatalf("resume: exit %d\n%s%s", code, out, stderr)
	}
	if ops := mutationOps(srv); len(ops) != 6 || slices.ContainsFunc(ops, func(op string) bool { return !strings.HasPrefix(op, flytest.OpMetadataDelete+" ") }) {
		t.Errorf("resume made %q, want 6 metadata deletes", ops)
	}
	for _, m := range srv.Machines("acme") {
		for k := range m.Config.Metadata {
			if strings.HasPrefix(k, scale.MetaPrefix) {
				t.Errorf("%s still carries %s after resume", m.ID, k)
			}
		}
	}
	srv.ResetCalls()
	code, out, _ = runCLI(t, "resume", "acme")
	if code != ExitOK || len(srv.Mutations()) != 0 || !strings.Contains(out, "not paused") {
		t.Errorf("second resume: exit %d, %d changes\n%s", code, len(srv.Mutations()), out)
	}
	code, out, _ = runCLI(t, "run", "--apps", "acme", "--started-machine-count", "3", "--output", "json")
	if a := appOf(t, decodeReport(t, out), "acme"); code != ExitOK || a.Status != "scaled" || a.Target.Started != 3 {
		t.Errorf("after resume: exit %d, %s %+v", code, a.Status, a.Target)
	}
}

// TestPauseExpiredAndClones: an expired pause is ignored and left in
// place, and a machine the run creates carries no fas_* key of the
// machine it is cloned from.
func TestPauseExpiredAndClones(t *testing.T) {
	t.Parallel()
	expired := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "acme", Machines: []flytest.MachineSpec{{State: "started",
			Metadata: map[string]string{scale.MetaPausedUntil: expired, scale.MetaPausedReason: "old", "fas_note": "x"}}}},
	}})
	code, out, stderr := runCLI(t, "run", "--apps", "acme", "--created-machine-count", "3", "--output", "json")
	if code != ExitOK {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	if a := appOf(t, decodeReport(t, out), "acme"); a.Status != "scaled" || a.Target.Created != 3 {
		t.Fatalf("acme: %s %q %+v", a.Status, a.Reason, a.Target)
	}
	ms := srv.Machines("acme")
	if len(ms) != 3 {
		t.Fatalf("%d machines, want 3", len(ms))
	}
	for _, m := range ms {
		md := m.Config.Metadata
		if m.ID == ms[0].ID && md[scale.MetaPausedUntil] == expired {
			continue // the source keeps its expired mark
		}
		for k := range md {
			if strings.HasPrefix(k, scale.MetaPrefix) && md[scale.MetaPausedUntil] != expired {
				t.Errorf("created machine %s carries %s", m.ID, k)
			}
		}
	}
	marked := 0
	for _, m := range ms {
		if m.Config.Metadata[scale.MetaPausedUntil] == expired {
			marked++
		}
	}
	if marked != 1 {
		t.Errorf("%d machines carry the expired mark, want the source's only", marked)
	}
}

// TestPauseLease: a machine held by a lease (a deploy) is tried again; a
// lease that ends meanwhile is waited out, one held throughout is
// reported and pause exits 1, with the other machines marked.
func TestPauseLease(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "acme", Machines: []flytest.MachineSpec{{State: "started", Count: 2}}},
		{Name: "beta", Machines: []flytest.MachineSpec{{State: "started", Count: 2}}},
	}})
	short := srv.Machines("acme")[0].ID
	srv.HoldLease("acme", short, "deployer@example.com", 1500*time.Millisecond)
	held := srv.Machines("beta")[1].ID
	srv.HoldLease("beta", held, "deployer@example.com", time.Minute)

	code, out, _ := runCLI(t, "pause", "acme", "beta", "--for", "30m")
	if code != ExitFailed {
		t.Errorf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "acme: 2 machines paused until") {
		t.Errorf("the lease that ended was not waited out:\n%s", out)
	}
	if !strings.Contains(out, "beta: 1 machine paused until") || !strings.Contains(out, "1 machine not marked") ||
		!strings.Contains(out, held+": ") || !strings.Contains(out, "tried 3 times") {
		t.Errorf("the held machine is not reported:\n%s", out)
	}
	retries := 0
	for _, c := range srv.Calls() {
		if c.MachineID == held && c.Op == flytest.OpMetadataSet {
			retries++
		}
	}
	if retries != 3 {
		t.Errorf("%d attempts on the held machine, want 3", retries)
	}
}

// TestOwnApp: the app FLY_APP_NAME names is never changed by a run that
// selects it by a pattern, and pause refuses it.
func TestOwnApp(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "fly-autoscaler", Machines: []flytest.MachineSpec{{State: "started"}}},
		{Name: "acme", Machines: []flytest.MachineSpec{{State: "started"}}},
	}})
	setenv(t, "FLY_APP_NAME", "fly-autoscaler")
	code, out, stderr := runCLI(t, "run", "--org", "tenants", "--apps", "*", "--started-machine-count", "0", "--output", "json")
	if code != ExitOK {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	if a := appOf(t, rep, "fly-autoscaler"); a.Status != "skipped" || a.Reason != scale.OwnAppReason || a.ReasonCode != "own_app" {
		t.Errorf("own app: %s %q", a.Status, a.Reason)
	}
	if a := appOf(t, rep, "acme"); a.Status != "scaled" {
		t.Errorf("acme: %s %q", a.Status, a.Reason)
	}
	for _, c := range srv.Calls() {
		if c.App == "fly-autoscaler" && c.Op != flytest.OpGraphQLApps && c.Op != flytest.OpGraphQLOrg {
			t.Errorf("a call about the own app: %s", c.Op)
		}
	}
	if startedOf(srv, "fly-autoscaler") != 1 {
		t.Errorf("the own app was changed")
	}

	srv.ResetCalls()
	code, _, stderr = runCLI(t, "pause", "fly-autoscaler", "--for", "1h")
	if code != ExitUsage || !strings.Contains(stderr, "own app (FLY_APP_NAME)") {
		t.Errorf("pause of the own app: exit %d, %s", code, stderr)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("pause of the own app made %d calls", n)
	}
	// A glob leaves it out.
	code, out, _ = runCLI(t, "pause", "--org", "tenants", "*", "--for", "1h")
	if code != ExitOK || !strings.Contains(out, "fly-autoscaler: skipped: the autoscaler's own app") || !strings.Contains(out, "acme: 1 machine paused") {
		t.Errorf("pause '*': exit %d\n%s", code, out)
	}
	for _, m := range srv.Machines("fly-autoscaler") {
		if _, ok := m.Config.Metadata[scale.MetaPausedUntil]; ok {
			t.Errorf("the own app was paused")
		}
	}
}

func TestPauseUsage(t *testing.T) {
	t.Parallel()
	calls := tripwire(t)
	setenv(t, "FAS_API_TOKEN", "tok")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pause"}, "no app named"},
		{[]string{"pause", "acme", "--for", "31d"}, "--for"},
		{[]string{"pause", "acme", "--for", "-1h"}, "--for"},
		{[]string{"pause", "acme", "--for", "soon"}, "--for"},
		{[]string{"pause", "acme-*"}, "--org (FAS_ORG)"},
		{[]string{"pause", "acme", "--frobnicate"}, "unknown flag"},
		{[]string{"resume", "acme", "--for", "1h"}, "unknown flag"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %s; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d API calls for bad input", calls.Load())
	}
	for v, want := range map[string]time.Duration{"": time.Hour, "90m": 90 * time.Minute, "2d": 48 * time.Hour, "30d": 30 * 24 * time.Hour} {
		if d, err := parsePauseFor(v); err != nil || d != want {
			t.Errorf("parsePauseFor(%q) = %v, %v", v, d, err)
		}
	}
}

// budgetOrg has three paying apps and three trial apps, each with one
// started machine of four.
func budgetOrg() *flytest.Org {
	org := &flytest.Org{Slug: "tenants"}
	for _, name := range []string{"pay-1", "pay-2", "pay-3", "trial-1", "trial-2", "trial-3"} {
		org.Apps = append(org.Apps, flytest.AppSpec{Name: name, Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}})
	}
	return org
}

// budgetConfig gives the paying apps priority 10 and the trial apps the
// default 0; every app wants 4 started machines (+3), the idle ones 1.
const budgetConfig = `
org: tenants
app-name: "*"
started-machine-count: "4"
policies:
  - name: paying
    apps: ["pay-*"]
    priority: 10
  - name: idle
    apps: ["idle-*"]
    started-machine-count: "1"
  - name: trial
    apps: ["trial-*"]
`

// TestFleetBudget: the paying apps are served first, then the trial apps
// one machine at a time; the total never passes the cap; demand and target
// are both in the JSON report.
func TestFleetBudget(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "fas.yml", budgetConfig)
	for _, tc := range []struct {
		name       string
		cap        int
		pay, trial int
	}{
		// 6 started now, the paying apps need 9 more.
		{name: "the paying apps' need", cap: 15, pay: 4, trial: 1},
		{name: "three more", cap: 18, pay: 4, trial: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tenantsEnv(t, budgetOrg())
			code, out, stderr := runCLI(t, "run", "--config", cfg, "--fleet-max-started", fmt.Sprint(tc.cap), "--output", "json")
			if code != ExitOK {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			rep := decodeReport(t, out)
			if rep.Budget == nil || rep.Budget.MaxStarted == nil || *rep.Budget.MaxStarted != tc.cap || rep.Budget.MaxCreated != nil {
				t.Errorf("budget %+v", rep.Budget)
			}
			total := 0
			for _, a := range rep.Apps {
				want := tc.trial
				if strings.HasPrefix(a.App, "pay-") {
					want = tc.pay
				}
				if a.Target.Started != want || a.Demand == nil || a.Demand.Started != 4 {
					t.Errorf("%s: target %+v demand %+v, want target %d and demand 4", a.App, a.Target, a.Demand, want)
				}
				if got := startedOf(srv, a.App); got != want {
					t.Errorf("%s: %d started, want %d", a.App, got, want)
				}
				if want < 4 && !slices.ContainsFunc(a.Warnings, func(w string) bool {
					return strings.Contains(w, fmt.Sprintf("held back by --fleet-max-started %d: %d of 4 started granted", tc.cap, want))
				}) {
					t.Errorf("%s: no held-back warning: %q", a.App, a.Warnings)
				}
				total += startedOf(srv, a.App)
			}
			if total != tc.cap {
				t.Errorf("%d started in all, want the cap %d", total, tc.cap)
			}
			if !slices.ContainsFunc(rep.Warnings, func(w string) bool {
				return strings.Contains(w, fmt.Sprintf("trial-1 by %d, trial-2 by %d, trial-3 by %d", 4-tc.trial, 4-tc.trial, 4-tc.trial))
			}) {
				t.Errorf("run warnings %q", rep.Warnings)
			}
			// The table shows the demand beside the target.
			_, table, _ := runCLI(t, "run", "--config", cfg, "--fleet-max-started", fmt.Sprint(tc.cap), "--dry-run")
			if !strings.Contains(table, fmt.Sprintf("%d (wants 4)", tc.trial)) {
				t.Errorf("table:\n%s", table)
			}
		})
	}
}

// TestFleetBudgetScaleDownsFirst: an app that scales down frees budget
// that another app gets in the same run, and its stops are made before
// the other's starts, so that the total never passes the cap.
func TestFleetBudgetScaleDownsFirst(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "idle-1", Machines: []flytest.MachineSpec{{State: "started", Count: 4}}},
		{Name: "pay-1", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}},
	}})
	cfg := writeFile(t, "fas.yml", budgetConfig)
	code, out, stderr := runCLI(t, "run", "--config", cfg, "--fleet-max-started", "5", "--output", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	if a := appOf(t, rep, "pay-1"); a.Target.Started != 4 || len(a.Warnings) != 0 {
		t.Errorf("pay-1: target %+v, warnings %q", a.Target, a.Warnings)
	}
	if startedOf(srv, "idle-1") != 1 || startedOf(srv, "pay-1") != 4 {
		t.Errorf("started: idle-1 %d, pay-1 %d; want 1 and 4", startedOf(srv, "idle-1"), startedOf(srv, "pay-1"))
	}
	// Replay the changes: the total is never above the cap.
	started := 5
	for _, c := range srv.Mutations() {
		switch c.Op {
		case flytest.OpStart:
			started++
		case flytest.OpStop:
			started--
		}
		if started > 5 {
			t.Fatalf("the total passed the cap at %s %s: %q", c.Op, c.App, mutationOps(srv))
		}
	}
}

// TestFleetBudgetShards: each shard enforces its share of the cap.
func TestFleetBudgetShards(t *testing.T) {
	t.Parallel()
	org := &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{{Name: "trial-%d", Count: 6, Machines: []flytest.MachineSpec{{State: "stopped", Count: 4}}}}}
	srv := tenantsEnv(t, org)
	cfg := writeFile(t, "fas.yml", budgetConfig)
	shares := []int{4, 3} // 7 over 2 shards
	for k, share := range shares {
		shard := fmt.Sprintf("%d/2", k+1)
		code, out, stderr := runCLI(t, "run", "--config", cfg, "--fleet-max-started", "7", "--shard", shard, "--output", "json")
		if code != ExitOK {
			t.Fatalf("shard %s: exit %d\n%s", shard, code, stderr)
		}
		rep := decodeReport(t, out)
		if rep.Budget == nil || *rep.Budget.MaxStarted != share {
			t.Errorf("shard %s: budget %+v, want %d", shard, rep.Budget, share)
		}
		total := 0
		for _, a := range rep.Apps {
			if scale.ShardOf(a.App, 2) != k+1 {
				t.Errorf("shard %s reports %s", shard, a.App)
			}
			total += startedOf(srv, a.App)
		}
		if want := min(share, 4*len(rep.Apps)); total != want {
			t.Errorf("shard %s: %d started over %d apps, want %d", shard, total, len(rep.Apps), want)
		}
	}
}

// TestFallback: with the metrics source down, an app below the fallback
// count is raised to it (its stopped machines started), one above is left
// alone; both are reported fallback with the metric error, and the run
// exits 1.
func TestFallback(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "low", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}},
		{Name: "high", Machines: []flytest.MachineSpec{{State: "started", Count: 4}, {State: "stopped"}}},
	}})
	args := []string{"run", "--org", "tenants", "--apps", "*", "--started-machine-count", "ceil(queue / 10)",
		"--prometheus-address", "http://127.0.0.1:1", "--prometheus-metric-name", "queue",
		"--prometheus-query", `sum(queue_depth{app="$APP_NAME"})`, "--timeout", "10s", "--output", "json"}
	code, out, stderr := runCLI(t, append(args, "--fallback-started", "3")...)
	if code != ExitFailed {
		t.Errorf("exit %d, want 1\n%s", code, stderr)
	}
	rep := decodeReport(t, out)
	low, high := appOf(t, rep, "low"), appOf(t, rep, "high")
	if low.Status != "fallback" || !strings.HasPrefix(low.Reason, "metrics: ") || low.Target.Started != 3 {
		t.Errorf("low: %s %q %+v", low.Status, low.Reason, low.Target)
	}
	if high.Status != "fallback" || !strings.HasPrefix(high.Reason, "metrics: ") || high.Target.Started != 4 || len(high.Actions) != 0 {
		t.Errorf("high: %s %q %+v %v", high.Status, high.Reason, high.Target, high.Actions)
	}
	if startedOf(srv, "low") != 3 || startedOf(srv, "high") != 4 {
		t.Errorf("started: low %d, high %d; want 3 and 4", startedOf(srv, "low"), startedOf(srv, "high"))
	}
	for _, c := range srv.Mutations() {
		if c.Op != flytest.OpStart || c.App != "low" {
			t.Errorf("unexpected change %s %s", c.Op, c.App)
		}
	}
	if rep.Summary.Fallback != 2 {
		t.Errorf("summary %+v", rep.Summary)
	}

	// Unset, the apps are left alone and fail, as before.
	srv.ResetCalls()
	code, out, _ = runCLI(t, args...)
	if a := appOf(t, decodeReport(t, out), "low"); code != ExitFailed || a.Status != "failed" || len(srv.Mutations()) != 0 {
		t.Errorf("without a fallback: exit %d, %s, %d changes", code, a.Status, len(srv.Mutations()))
	}
}

// TestDemandCappedByMachines: an app whose started target is capped by
// the machines it has reports its demand beside the capped target, in
// the JSON and the table.
func TestDemandCappedByMachines(t *testing.T) {
	t.Parallel()
	tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "acme", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}},
	}})
	code, out, stderr := runCLI(t, "run", "--apps", "acme", "--started-machine-count", "8", "--output", "json", "--dry-run")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	a := appOf(t, decodeReport(t, out), "acme")
	if a.Target.Started != 4 || a.Demand == nil || a.Demand.Started != 8 || a.Demand.Created != 4 {
		t.Errorf("target %+v, demand %+v; want 4 started aimed at, 8 asked for", a.Target, a.Demand)
	}
	_, table, _ := runCLI(t, "run", "--apps", "acme", "--started-machine-count", "8", "--dry-run")
	if !strings.Contains(table, "1 → 4 (wants 8)") {
		t.Errorf("table:\n%s", table)
	}
}

// TestRunRegistryTenants: the Pushgateway's figures count paused and
// fallback apps, carry each app's demand and the budget the run enforced.
func TestRunRegistryTenants(t *testing.T) {
	t.Parallel()
	capStarted := 10
	rep := &scale.Report{Org: "tenants", Budget: scale.Budget{MaxStarted: &capStarted}, Apps: []scale.AppResult{
		{App: "acme", Status: scale.StatusPlanned, Observed: true, Current: scale.Counts{Started: 1, Created: 4},
			Target: scale.Counts{Started: 4, Created: 4}, Demand: &scale.Counts{Started: 8, Created: 4}},
		{App: "held", Status: scale.StatusPaused, Observed: true, Current: scale.Counts{Started: 2, Created: 2}, Target: scale.Counts{Started: 2, Created: 2}},
		{App: "blind", Status: scale.StatusFallback, Observed: true, Current: scale.Counts{Started: 1, Created: 3}, Target: scale.Counts{Started: 3, Created: 3}},
	}}
	mfs, err := runRegistry(rep).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		metricDemandStarted + ",app=acme,policy=default": 8,
		metricDemandCreated + ",app=acme,policy=default": 4,
		metricTargetStarted + ",app=acme,policy=default": 4,
		metricBudgetStarted:             10,
		metricApps + ",result=paused":   1,
		metricApps + ",result=fallback": 1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", key, v, ok, want)
		}
	}
	if _, ok := got[metricBudgetCreated]; ok {
		t.Errorf("%s pushed without --fleet-max-created", metricBudgetCreated)
	}
}

func TestTenantsConfigErrors(t *testing.T) {
	t.Parallel()
	calls := tripwire(t)
	base := []string{"run", "--api-token", "tok", "--apps", "acme", "--started-machine-count", "1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--fleet-max-started", "-1"), "--fleet-max-started (FAS_FLEET_MAX_STARTED)"},
		{append(base, "--fleet-max-created", "many"), "--fleet-max-created (FAS_FLEET_MAX_CREATED)"},
		{append(base, "--fallback-started", "0"), "--fallback-started (FAS_FALLBACK_STARTED)"},
		{append(base, "--config", writeFile(t, "p.yml", "policies:\n  - name: paying\n    apps: [pay-*]\n    priority: high\n")), "priority"},
		{append(base, "--config", writeFile(t, "f.yml", "policies:\n  - name: paying\n    apps: [pay-*]\n    fallback-started: -2\n")), "fallback-started"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %s; want 2 and %q", tc.args[len(tc.args)-2:], code, stderr, tc.want)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d API calls for bad input", calls.Load())
	}
}

// TestFallbackPolicyKey: fallback-started as a policy key applies to the
// policy's apps only.
func TestFallbackPolicyKey(t *testing.T) {
	t.Parallel()
	srv := tenantsEnv(t, &flytest.Org{Slug: "tenants", Apps: []flytest.AppSpec{
		{Name: "pay-1", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}},
		{Name: "trial-1", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 3}}},
	}})
	cfg := writeFile(t, "fas.yml", `
org: tenants
app-name: "*"
started-machine-count: ceil(queue / 10)
metric-collectors:
  - type: prometheus
    metric-name: queue
    address: http://127.0.0.1:1
    query: sum(queue_depth{app="$APP_NAME"})
policies:
  - name: paying
    apps: [pay-*]
    fallback-started: 2
`)
	code, out, _ := runCLI(t, "run", "--config", cfg, "--output", "json", "--timeout", "10s")
	rep := decodeReport(t, out)
	if pay, trial := appOf(t, rep, "pay-1"), appOf(t, rep, "trial-1"); code != ExitFailed || pay.Status != "fallback" || trial.Status != "failed" {
		t.Errorf("exit %d, pay-1 %s, trial-1 %s", code, pay.Status, trial.Status)
	}
	if startedOf(srv, "pay-1") != 2 || startedOf(srv, "trial-1") != 1 {
		t.Errorf("started: pay-1 %d, trial-1 %d; want 2 and 1", startedOf(srv, "pay-1"), startedOf(srv, "trial-1"))
	}
}
