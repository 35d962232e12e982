package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// policyHead is the top of the config files of the policy tests: four
// lines, so that the first policy's entry is on line 6.
const policyHead = `org: my-org
api-token: tok
app-name: "*"
started-machine-count: 1
policies:
`

func TestPolicyConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		args []string
		env  map[string]string
		want []string
	}{
		{
			name: "identical glob",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n  - name: again\n    apps: [paying-*]\n",
			want: []string{`config.yml:8: policy "again": can never apply`, `earlier policy first, "paying" (line 6)`},
		},
		{
			name: "covered by an earlier star",
			yaml: policyHead + "  - name: everyone\n    apps: '*'\n    regions: [ams]\n  - name: paying\n    apps: [paying-*]\n",
			want: []string{`config.yml:9: policy "paying": can never apply`, `"everyone" (line 6)`},
		},
		{
			name: "covered by two earlier policies",
			yaml: policyHead + "  - name: eu\n    apps: ['*-eu']\n  - name: us\n    apps: ['*-us']\n  - name: web\n    apps: ['web-{eu,us}']\n",
			want: []string{`config.yml:10: policy "web": can never apply`, `"eu" (line 6), "us" (line 8)`},
		},
		{
			name: "excluded entirely",
			yaml: policyHead + "  - name: nobody\n    apps: [web-*]\n    exclude: [web-*]\n",
			want: []string{`config.yml:7: policy "nobody": apps: can never apply: its apps match no possible app name`},
		},
		{
			name: "duplicate name",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n  - name: paying\n    apps: [trial-*]\n",
			want: []string{`config.yml:8: policy "paying": name: the name is already used by the policy at line 6`},
		},
		{
			name: "bad expression",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    started-machine-count: ceil(queue_depth / 10\n",
			want: []string{`config.yml:8: policy "trial": started-machine-count: expression "ceil(queue_depth / 10" does not compile`},
		},
		{
			name: "unknown variable, with the time variables listed",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    max-started-machine-count: ceil(backlog / 10)\n",
			want: []string{`config.yml:8: policy "trial": max-started-machine-count: expression "ceil(backlog / 10)" does not compile`, "hour, minute, weekday, day, month"},
		},
		{
			name: "malformed glob",
			yaml: policyHead + "  - name: trial\n    apps: ['trial-[']\n",
			want: []string{`config.yml:7: policy "trial": apps: malformed glob`, `"trial-["`},
		},
		{
			name: "malformed exclude",
			yaml: policyHead + "  - name: trial\n    apps: ['trial-*']\n    exclude: ['[x']\n",
			want: []string{`config.yml:8: policy "trial": exclude: malformed glob`},
		},
		{
			name: "no name",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n  - apps: [trial-*]\n",
			want: []string{`config.yml:8: policies[1]: name: missing`},
		},
		{
			name: "the default's name",
			yaml: policyHead + "  - name: default\n    apps: [paying-*]\n",
			want: []string{`config.yml:6: policy "default": name: "default" names the top level's settings`},
		},
		{
			name: "no apps",
			yaml: policyHead + "  - name: paying\n    regions: [ams]\n",
			want: []string{`config.yml:6: policy "paying": apps: missing`},
		},
		{
			name: "unknown key",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n    max-scale-upp: 2\n",
			want: []string{`config.yml:8: unknown key "max-scale-upp" of a policy (did you mean "max-scale-up"?)`},
		},
		{
			name: "a policy that is not a mapping",
			yaml: policyHead + "  - paying\n",
			want: []string{`config.yml:6: want a policy (a mapping of keys to values), not a string`},
		},
		{
			name: "policies not a list",
			yaml: strings.TrimSuffix(policyHead, "policies:\n") + "policies: {name: paying}\n",
			want: []string{`config.yml:5: policies: want a list of policies, not a mapping`},
		},
		{
			name: "min without max",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n    min-started-machine-count: 2\n",
			want: []string{`config.yml:8: policy "paying": min-started-machine-count: set together with max-started-machine-count`},
		},
		{
			name: "one and a bound",
			yaml: policyHead + "  - name: paying\n    apps: [paying-*]\n    created-machine-count: 2\n    max-created-machine-count: 3\n",
			want: []string{`config.yml:8: policy "paying": created-machine-count: set either it or`},
		},
		{
			name: "bad scale-down",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    scale-down: sleep\n",
			want: []string{`config.yml:8: policy "trial": scale-down: "sleep": use stop or suspend`},
		},
		{
			name: "bad duration",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    min-started-duration: 5\n",
			want: []string{`config.yml:8: policy "trial": min-started-duration: "5" is not a positive duration`},
		},
		{
			name: "bad count",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    max-scale-down: -1\n",
			want: []string{`config.yml:8: policy "trial": max-scale-down: "-1" is not a number of machines`},
		},
		{
			name: "bad initial state",
			yaml: policyHead + "  - name: trial\n    apps: [trial-*]\n    initial-machine-state: suspended\n",
			want: []string{`config.yml:8: policy "trial": initial-machine-state: "suspended" is not a machine state`},
		},
		{
			name: "invalid app name",
			yaml: policyHead + "  - name: trial\n    apps: [Trial]\n",
			want: []string{`config.yml:7: policy "trial": apps: invalid app name "Trial"`},
		},
		{
			name: "a metric named like a time variable",
			yaml: "org: my-org\napi-token: tok\napp-name: '*'\nstarted-machine-count: hour\nmetric-collectors:\n  - {type: prometheus, metric-name: hour, address: 'http://127.0.0.1:9', query: up}\n",
			want: []string{`metric name "hour" is taken by a fleet or time variable`},
		},
		{
			name: "unknown time zone in the file",
			yaml: "org: my-org\napi-token: tok\napp-name: '*'\nstarted-machine-count: 1\ntimezone: Mars/Olympus\n",
			want: []string{`config.yml:5: timezone: `, `"Mars/Olympus" is not a time zone: use an IANA name`},
		},
		{
			name: "unknown time zone flag",
			yaml: "org: my-org\napi-token: tok\napp-name: '*'\nstarted-machine-count: 1\n",
			args: []string{"--timezone", "Europe/Berln"},
			want: []string{`--timezone (FAS_TIMEZONE): "Europe/Berln" is not a time zone`},
		},
		{
			name: "unknown time zone variable",
			yaml: "org: my-org\napi-token: tok\napp-name: '*'\nstarted-machine-count: 1\n",
			env:  map[string]string{"FAS_TIMEZONE": "CEST"},
			want: []string{`--timezone (FAS_TIMEZONE): "CEST" is not a time zone`},
		},
		{
			name: "the machine's zone",
			yaml: "org: my-org\napi-token: tok\napp-name: '*'\nstarted-machine-count: 1\ntimezone: Local\n",
			want: []string{`"Local" is not a time zone`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The redaction takes PWD for a password: the working
			// directory's name must not blank words of the message.
			setenv(t, "PWD", "")
			setenv(t, "OLDPWD", "")
			calls := tripwire(t)
			for k, v := range tt.env {
				setenv(t, k, v)
			}
			path := writeFile(t, "config.yml", tt.yaml)
			code, out, stderr := runCLI(t, append([]string{"run", "--config", path}, tt.args...)...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, ExitUsage, stderr)
			}
			// The file's path is in a temporary directory: compare from
			// its base name on.
			msg := strings.ReplaceAll(stderr, path, "config.yml")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls before the error", n)
			}
		})
	}
}

// policyConfigFile writes a config file with the three tiers of docs/configuration.md's
// example and returns its path.
func policyConfigFile(t *testing.T, extra string) string {
	t.Helper()
	return writeFile(t, "config.yml", `org: my-org
app-name: "*"
started-machine-count: ceil(queue_depth / 20)
min-created-machine-count: 1
max-created-machine-count: 5
timezone: Europe/Berlin
metric-collectors:
  - type: prometheus
    metric-name: queue_depth
    address: http://127.0.0.1:9
    query: sum by (app) (queue_depth)
policies:
  - name: paying
    apps: [paying-*]
    started-machine-count: max(2, ceil(queue_depth / 10))
  - name: trial
    apps: [trial-*]
    max-started-machine-count: ceil(queue_depth / 10)
    scale-down: suspend
  - name: batch
    apps: [batch-*, trial-batch-*]
    started-machine-count: "hour >= 22 || hour < 6 ? ceil(queue_depth / 10) : 0"
    regions: [ams]
`+extra)
}

func TestPolicyInheritance(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "tok")
	path := policyConfigFile(t, `  - name: eu
    apps: ['*-eu']
    regions: [fra]
  - name: careful
    apps: ['careful-*']
    max-scale-up: 0
    max-machines: 20
    min-started-duration: 5m
`)
	rc, err := loadConfig(t, "--config", path, "--max-scale-up", "3")
	if err != nil {
		t.Fatal(err)
	}
	cfg := rc.scale
	if len(cfg.Policies) != 5 || cfg.Location.String() != "Europe/Berlin" {
		t.Fatalf("%d policies, zone %v; want 5, Europe/Berlin", len(cfg.Policies), cfg.Location)
	}
	policy := func(app string) scale.AppPolicy { return cfg.PolicyFor(app) }

	// A policy that sets only regions keeps the default's targets.
	eu := policy("acme-eu")
	if eu.Name != "eu" || eu.Expressions != cfg.Expressions || strings.Join(eu.Policy.Regions, ",") != "fra" {
		t.Errorf("eu: %q, %s, regions %q; want the default's targets and fra", eu.Name, exprString(eu.Expressions), eu.Policy.Regions)
	}
	// min/max forms do not take the default's started-machine-count.
	trial := policy("trial-bob")
	if trial.Expressions.MinStarted != nil || trial.Expressions.MaxStarted.String() != "ceil(queue_depth / 10)" {
		t.Errorf("trial: %s; want started ..ceil(queue_depth / 10) with no minimum", exprString(trial.Expressions))
	}
	if trial.Expressions.MinCreated != cfg.Expressions.MinCreated || trial.Expressions.MaxCreated != cfg.Expressions.MaxCreated {
		t.Errorf("trial: %s; want the default's created counts", exprString(trial.Expressions))
	}
	if trial.Policy.ScaleDown != scale.ActionSuspend || cfg.Policy.ScaleDown != scale.ActionStop {
		t.Errorf("scale-down: trial %s, default %s", trial.Policy.ScaleDown, cfg.Policy.ScaleDown)
	}
	// A flag changes the default, which policies inherit unless they set
	// the setting themselves (0 included).
	deref := func(n *int) string {
		if n == nil {
			return "none"
		}
		return fmt.Sprint(*n)
	}
	if d, tr := deref(cfg.Policy.MaxScaleUp), deref(trial.Policy.MaxScaleUp); d != "3" || tr != "3" {
		t.Errorf("max-scale-up: default %s, trial %s; want 3 from the flag", d, tr)
	}
	careful := policy("careful-1")
	if deref(careful.Policy.MaxScaleUp) != "0" || careful.Policy.MaxMachines != 20 || careful.Policy.MinStartedDuration != 5*time.Minute {
		t.Errorf("careful: %+v", careful.Policy)
	}
	if trial.Policy.MaxMachines != scale.DefaultMaxMachines {
		t.Errorf("trial: max-machines %d, want the default's", trial.Policy.MaxMachines)
	}
	// First match wins: trial-batch-1 matches trial and batch.
	if p := policy("trial-batch-1"); p.Name != "trial" {
		t.Errorf("trial-batch-1 takes %q, want the first match, trial", p.Name)
	}
	if p := policy("paying-acme-eu"); p.Name != "paying" {
		t.Errorf("paying-acme-eu takes %q, want the first match, paying", p.Name)
	}
	if p := policy("other-1"); p.Name != scale.DefaultPolicyName || p.Expressions != cfg.Expressions {
		t.Errorf("other-1 takes %q, want the default", p.Name)
	}
}

func exprString(x scale.Expressions) string {
	s := func(e *scale.Expr) string {
		if e == nil {
			return "-"
		}
		return e.String()
	}
	return "started " + s(x.MinStarted) + ".." + s(x.MaxStarted) + ", created " + s(x.MinCreated) + ".." + s(x.MaxCreated)
}

func TestPolicyMatchingNoSelectedAppWarns(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "tok")
	path := policyConfigFile(t, "")
	// batch's apps include trial-batch-*, which trial-* selects.
	rc, err := loadConfig(t, "--config", path, "--apps", "paying-*,trial-*")
	if err != nil || len(rc.warnings) != 0 {
		t.Fatalf("%v, warnings %q; want none", err, rc.warnings)
	}
	rc, err = loadConfig(t, "--config", path, "--apps", "paying-*")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(rc.warnings, "\n")
	if !strings.Contains(w, `policy "batch": apps matches no app that the run selects`) ||
		!strings.Contains(w, `policy "trial": apps matches no app`) || strings.Contains(w, `"paying"`) {
		t.Errorf("warnings %q, want one about trial and one about batch", w)
	}
	// Plain names narrow a run on purpose: no warning.
	if rc, err = loadConfig(t, "--config", path, "--apps", "paying-acme"); err != nil || len(rc.warnings) != 0 {
		t.Errorf("plain names: %v, warnings %q", err, rc.warnings)
	}
}

// Tiers of the 60-app org of TestPoliciesE2E: the app's 1-based position k
// in the org decides its queue.
var tiers = []struct {
	prefix string
	count  int
	policy string
}{
	{"paying", 20, "paying"},
	{"trial", 20, "trial"},
	{"batch", 10, "batch"},
	{"other", 10, scale.DefaultPolicyName},
}

// tierQueue is app k's queue depth: 0 to 45, five of the 60 apps at 0.
func tierQueue(k int) float64 { return float64((k*7)%11) * 4.5 }

// TestPoliciesE2E runs three policies and the default over a 60-app org
// in one run: each app reaches its policy's targets, with one listing of
// the org and one fleet-wide query, and the report names each app's
// policy.
func TestPoliciesE2E(t *testing.T) {
	onRealPrometheus(t)
	skipShort(t)
	var specs []flytest.AppSpec
	series := map[string]float64{}
	type tenant struct {
		policy string
		queue  float64
	}
	apps := map[string]tenant{}
	k := 0
	for _, tier := range tiers {
		specs = append(specs, flytest.AppSpec{Name: tier.prefix + "-%03d", Count: tier.count,
			Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 4}}})
		for i := 1; i <= tier.count; i++ {
			k++
			name := fmt.Sprintf("%s-%03d", tier.prefix, i)
			apps[name] = tenant{tier.policy, tierQueue(k)}
			series[name] = tierQueue(k)
		}
	}
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: specs}, flytest.Options{Token: testToken})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	prom := promtest.Start(t, series)
	setenv(t, "FAS_PROMETHEUS_ADDRESS", "") // the file's collector only
	path := policyConfigFile(t, "")
	gw := promtest.StartPushgateway(t)

	load := func(at time.Time, args ...string) *runConfig {
		t.Helper()
		rc, err := loadConfig(t, append([]string{"--config", path, "--pushgateway", gw.URL()}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		pc := rc.metrics[0].cfg.(prometheus.Config)
		pc.Address = prom.URL()
		rc.metrics[0].cfg = pc
		rc.scale.Now = func() time.Time { return at }
		return rc
	}
	ceil10 := func(q float64) int { return int(math.Ceil(q / 10)) }
	// want is the started count each policy aims at for a queue, at night
	// in Berlin.
	want := func(a tenant) int {
		switch a.policy {
		case "paying":
			return max(2, ceil10(a.queue))
		case "trial":
			return min(1, ceil10(a.queue)) // at most: one started stays, an idle one sleeps
		case "batch":
			return ceil10(a.queue)
		}
		return int(math.Ceil(a.queue / 20))
	}

	// Friday 23:30 UTC is Saturday 00:30 in Berlin: night for batch.
	night := time.Date(2026, 1, 16, 23, 30, 0, 0, time.UTC)
	s, out, errOut := BufferStreams()
	prom.ResetQueries()
	if err := runOnce(context.Background(), s, load(night, "--output", "json")); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut)
	}
	rep := decodeReport(t, out.String())
	if len(rep.Apps) != 60 {
		t.Fatalf("%d apps reported, want 60", len(rep.Apps))
	}
	for _, a := range rep.Apps {
		tn := apps[a.App]
		if a.Policy != tn.policy {
			t.Errorf("%s: policy %q, want %q", a.App, a.Policy, tn.policy)
		}
		if a.Status == "failed" {
			t.Errorf("%s: failed: %s", a.App, a.Reason)
		}
		started, suspended := 0, 0
		for _, m := range srv.Machines(a.App) {
			switch m.State {
			case "started":
				started++
			case "suspended":
				suspended++
			}
		}
		if w := want(tn); started != w || a.Target == nil || a.Target.Started != w {
			t.Errorf("%s (%s, queue %g): %d started, report target %v; want %d", a.App, tn.policy, tn.queue, started, a.Target, w)
		}
		// trial's scale-down: suspend is its own: the machine it took
		// down is suspended, nobody else's.
		if wantSuspended := tn.policy == "trial" && want(tn) == 0; (suspended == 1) != wantSuspended || suspended > 1 {
			t.Errorf("%s: %d suspended machines, want %v", a.App, suspended, wantSuspended)
		}
	}
	calls := map[string]int{}
	for _, c := range srv.Calls() {
		calls[c.Op]++
	}
	if calls[flytest.OpGraphQLOrg] != 1 || calls[flytest.OpGraphQLApps] != 1 {
		t.Errorf("org looked up %d times, app pages read %d times; want one listing (1 and 1)", calls[flytest.OpGraphQLOrg], calls[flytest.OpGraphQLApps])
	}
	if n := prom.Queries(); n != 1 {
		t.Errorf("%d Prometheus queries, want the one fleet-wide query: %+v", n, prom.QueryLog())
	}
	// The Pushgateway's per-app series carry the policy.
	m := gw.Metrics(t)
	for _, app := range []string{"paying-001", "trial-001", "batch-001", "other-001"} {
		v, ok := pushed(m, "fly_autoscaler_app_target_started_machines", map[string]string{"job": pushJob},
			map[string]string{"app": app, "policy": apps[app].policy})
		if !ok || int(v) != want(apps[app]) {
			t.Errorf("pushed target of %s with policy %q: %v, %v; want %d", app, apps[app].policy, v, ok, want(apps[app]))
		}
	}

	// By day batch scales to nothing: the table names each app's policy.
	day := time.Date(2026, 1, 16, 11, 0, 0, 0, time.UTC)
	s, out, errOut = BufferStreams()
	if err := runOnce(context.Background(), s, load(day, "--dry-run")); err != nil {
		t.Fatalf("day run: %v\n%s", err, errOut)
	}
	lines := strings.Split(out.String(), "\n")
	if h := strings.Fields(lines[0]); len(h) < 2 || h[0] != "APP" || h[1] != "POLICY" {
		t.Fatalf("header %q, want APP POLICY ...", lines[0])
	}
	rows := 0
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		tn, ok := apps[f[0]]
		if !ok {
			continue
		}
		rows++
		if f[1] != tn.policy {
			t.Errorf("row %q: policy %q, want %q", line, f[1], tn.policy)
		}
		if tn.policy == "batch" && ceil10(tn.queue) > 0 && f[2] != fmt.Sprintf("%d→0", ceil10(tn.queue)) && !strings.Contains(line, fmt.Sprintf("%d → 0", ceil10(tn.queue))) {
			t.Errorf("batch row %q: want its started machines planned down to 0 by day", line)
		}
	}
	if rows != 60 {
		t.Errorf("%d rows, want 60:\n%s", rows, out)
	}

	// eval names the policy and its targets too.
	rc := load(night, "--output", "json")
	deps, err := buildDeps(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	deps.Machines = nil
	ev := scale.Eval(context.Background(), rc.scale, deps)
	var buf strings.Builder
	if err := renderEval(&buf, ev, FormatJSON, false); err != nil {
		t.Fatal(err)
	}
	var evj jsonEval
	if err := json.Unmarshal([]byte(buf.String()), &evj); err != nil {
		t.Fatal(err)
	}
	for _, a := range evj.Apps {
		tn := apps[a.App]
		if a.Policy != tn.policy {
			t.Errorf("eval %s: policy %q, want %q", a.App, a.Policy, tn.policy)
		}
		if tn.policy == "batch" && (a.Targets.MaxStarted == nil || *a.Targets.MaxStarted != ceil10(tn.queue)) {
			t.Errorf("eval %s: targets %s, want started %d at night", a.App, jsonString(a.Targets), ceil10(tn.queue))
		}
	}
}

// TestTimeVariablesThroughTheConfig evaluates docs/configuration.md's business-hours
// floor with eval's code, --timezone and an injected clock: the run's
// start decides the time variables.
func TestTimeVariablesThroughTheConfig(t *testing.T) {
	onRealPrometheus(t)
	setenv(t, "FAS_API_TOKEN", "tok")
	calls := tripwire(t) // eval of a named app calls no Fly API
	prom := promtest.Start(t, map[string]float64{"web": 0, "busy": 35})
	setenv(t, "PROM_URL", prom.URL())
	const floor = "max(weekday >= 1 && weekday <= 5 && hour >= 8 && hour < 18 ? 2 : 0, ceil(queue_depth / 10))"
	path := writeFile(t, "config.yml", "org: my-org\napp-name: web,busy\ntimezone: Europe/Berlin\nstarted-machine-count: '"+floor+"'\n"+
		"metric-collectors:\n  - {type: prometheus, metric-name: queue_depth, address: '${PROM_URL}', query: 'sum by (app) (queue_depth)'}\n")
	for _, tc := range []struct {
		name string
		at   string
		want int
	}{
		{"Friday 17:59 in Berlin", "2026-01-16T16:59:00Z", 2},
		{"Friday 18:00 in Berlin", "2026-01-16T17:00:00Z", 0},
		{"Saturday 17:59 in Berlin", "2026-01-17T16:59:00Z", 0},
		{"Friday 17:30 CET, before the clocks change", "2026-03-27T16:30:00Z", 2},
		{"the same UTC time on Monday is 18:30 CEST", "2026-03-30T16:30:00Z", 0},
		{"Monday 08:00 CEST", "2026-03-30T06:00:00Z", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if n := calls.Load(); n != 0 {
					t.Errorf("%d Fly API calls", n)
				}
			}()
			rc, err := loadConfig(t, "--config", path)
			if err != nil {
				t.Fatal(err)
			}
			at, _ := time.Parse(time.RFC3339, tc.at)
			rc.scale.Now = func() time.Time { return at }
			deps, err := buildDeps(context.Background(), rc)
			if err != nil {
				t.Fatal(err)
			}
			ev := scale.Eval(context.Background(), rc.scale, deps)
			if ev.Failed() || len(ev.Apps) != 2 {
				t.Fatalf("eval: %v, %+v", ev.Err, ev.Apps)
			}
			for _, a := range ev.Apps {
				want := tc.want
				if a.App == "busy" {
					want = 4 // the queue is above any floor
				}
				if got := a.Targets.Started; *got.Min != want || *got.Max != want {
					t.Errorf("%s: started %d..%d at %s, want %d", a.App, *got.Min, *got.Max, tc.at, want)
				}
			}
		})
	}
}

// TestTimeZoneDataIsBuiltIn: the container image has no zone database, so
// the binary carries one.
func TestTimeZoneDataIsBuiltIn(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", filepath.Join("..")).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), "\ntime/tzdata\n") {
		t.Error("the fly-autoscaler binary does not import time/tzdata")
	}
}

// policyReport is fixtureReport with policies configured.
func policyReport() *scale.Report {
	r := fixtureReport()
	r.HasPolicies = true
	for i := range r.Apps {
		switch r.Apps[i].App {
		case "api", "worker":
			r.Apps[i].Policy = "paying"
		case "batch", "cron":
			r.Apps[i].Policy = "batch"
		default:
			r.Apps[i].Policy = scale.DefaultPolicyName
		}
	}
	return r
}

func TestRenderPolicies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    RenderOptions
	}{
		{"table", RenderOptions{Format: FormatTable}},
		{"markdown", RenderOptions{Format: FormatMarkdown}},
		{"narrow", RenderOptions{Format: FormatTable, Width: 90}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, policyReport(), tc.o)
			assertGolden(t, got)
			if !strings.Contains(string(got), "POLICY") {
				t.Errorf("no POLICY column:\n%s", got)
			}
		})
	}
	// Without policies, no column: the report is as before.
	if got := render(t, fixtureReport(), RenderOptions{Format: FormatMarkdown}); strings.Contains(string(got), "POLICY") {
		t.Errorf("a POLICY column without policies:\n%s", got)
	}
	var doc jsonReport
	if err := json.Unmarshal(render(t, policyReport(), RenderOptions{Format: FormatJSON}), &doc); err != nil {
		t.Fatal(err)
	}
	for _, a := range doc.Apps {
		if want := map[string]string{"api": "paying", "worker": "paying", "batch": "batch", "cron": "batch"}[a.App]; a.Policy != want && (want != "" || a.Policy != "default") {
			t.Errorf("%s: JSON policy %q", a.App, a.Policy)
		}
	}
}

func TestRenderEvalPolicies(t *testing.T) {
	t.Parallel()
	n := 2
	ev := &scale.EvalReport{Org: "acme", Matched: 2, HasPolicies: true, Apps: []scale.EvalResult{
		{App: "trial-bob", Policy: "trial", Metrics: map[string]float64{"queue_depth": 3}, Targets: scale.Targets{Started: scale.Range{Max: &n}}},
		{App: "paying-acme", Policy: "paying", Metrics: map[string]float64{"queue_depth": 3}, Targets: scale.Targets{Started: scale.Range{Min: &n, Max: &n}}},
	}}
	for _, format := range []string{FormatTable, FormatMarkdown} {
		var buf strings.Builder
		if err := renderEval(&buf, ev, format, false); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(buf.String(), "\n")
		var header, paying string
		for _, l := range lines {
			switch {
			case strings.Contains(l, "APP"):
				header = l
			case strings.Contains(l, "paying-acme"):
				paying = l
			}
		}
		if !strings.Contains(header, "POLICY") || !strings.Contains(paying, "paying") || !strings.Contains(buf.String(), "≤ 2") {
			t.Errorf("%s: eval without the policy or its targets:\n%s", format, buf.String())
		}
	}
}

// TestReadmePolicyExample loads docs/configuration.md's three-tier example and checks the
// walk-through: which app takes which policy, and the targets it gets.
func TestReadmePolicyExample(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "tok")
	setenv(t, "FAS_PROMETHEUS_TOKEN", "prom-token")
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A fleet of per-tenant apps in three tiers")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	example, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/configuration.md has no three-tier example")
	}
	rc, err := loadConfig(t, "--config", writeFile(t, "policies.yml", example))
	if err != nil {
		t.Fatal(err)
	}
	night := scale.MomentOf(time.Date(2026, 1, 16, 23, 30, 0, 0, time.UTC), rc.scale.Location) // 00:30 in Berlin
	day := scale.MomentOf(time.Date(2026, 1, 16, 11, 0, 0, 0, time.UTC), rc.scale.Location)
	for _, tc := range []struct {
		app, policy string
		queue       float64
		at          scale.Moment
		started     string // min..max started, "-" unset
	}{
		{"paying-acme", "paying", 35, day, "4..4"},
		{"paying-acme", "paying", 0, night, "2..2"},
		{"paying-acme-staging", "trial", 0, day, "-..0"},
		{"trial-bob", "trial", 0, day, "-..0"},
		{"trial-bob", "trial", 12, day, "-..2"},
		{"batch-etl", "batch", 35, night, "4..4"},
		{"batch-etl", "batch", 35, day, "0..0"},
		{"docs", "default", 35, day, "2..2"},
	} {
		p := rc.scale.PolicyFor(tc.app)
		if p.Name != tc.policy {
			t.Errorf("%s takes %q, want %q", tc.app, p.Name, tc.policy)
			continue
		}
		tg, err := p.Expressions.Evaluate(map[string]float64{"queue_depth": tc.queue}, scale.Fleet{}, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		bound := func(n *int) string {
			if n == nil {
				return "-"
			}
			return fmt.Sprint(*n)
		}
		if got := bound(tg.Started.Min) + ".." + bound(tg.Started.Max); got != tc.started {
			t.Errorf("%s (queue %g, %+v): started %s, want %s", tc.app, tc.queue, tc.at, got, tc.started)
		}
		if want := strings.Split(tc.started, "..")[0] + "..5"; tc.policy == "paying" && bound(tg.Created.Min)+".."+bound(tg.Created.Max) != want {
			t.Errorf("%s: created %s..%s, want %s", tc.app, bound(tg.Created.Min), bound(tg.Created.Max), want)
		}
	}
	// "A queue of 35 gives 4": a dry run of the example plans 4 started
	// machines for paying-acme, which has one, creating the three missing.
	prom := httptest.NewServer(&promfake.Handler{Values: map[string]float64{"paying-acme": 35}})
	t.Cleanup(prom.Close)
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "paying-acme", ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Region: "ord"}}}}}, flytest.Options{Token: "tok"})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	code, out, stderr := runCLI(t, "run", "--config", writeFile(t, "policies-run.yml", strings.Replace(example, "https://api.fly.io/prometheus/my-org", prom.URL, 1)),
		"--apps", "paying-acme", "--dry-run", "--output", "json")
	if code != ExitOK {
		t.Fatalf("dry run of the example: exit %d: %s", code, stderr)
	}
	if a := decodeReport(t, out).Apps[0]; a.Target.Started != 4 || a.Target.Created != 4 || a.Current.Created != 1 {
		t.Errorf("paying-acme with one machine and a queue of 35: %+v → %+v, want 4 started of 4", a.Current, a.Target)
	}
	if r := rc.scale.PolicyFor("batch-etl").Policy.Regions; len(r) != 1 || r[0] != "ams" {
		t.Errorf("batch regions %q", r)
	}
	if sd := rc.scale.PolicyFor("trial-bob").Policy.ScaleDown; sd != scale.ActionSuspend {
		t.Errorf("trial scale-down %s", sd)
	}
}

func TestVerboseLogNamesThePolicy(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	logReport(newLogger(&buf, LogText, true), policyReport())
	if !strings.Contains(buf.String(), "app=api status=scaled") || !strings.Contains(buf.String(), "policy=paying") {
		t.Errorf("debug log without the policy:\n%s", buf.String())
	}
	buf.Reset()
	logReport(newLogger(&buf, LogText, true), fixtureReport())
	if strings.Contains(buf.String(), "policy=") {
		t.Errorf("a policy logged without policies:\n%s", buf.String())
	}
}
