package cmd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// TestHugeCreatedTarget: a created target of 1e9 fails the app (above
// --max-machines) with a report of a few lines, in every format; a target
// at a raised ceiling is planned with a report that grows with the plan.
func TestHugeCreatedTarget(t *testing.T) {
	t.Parallel()
	for _, format := range Formats {
		srv := fleetEnv(t, "small.json")
		code, out, stderr := runCLI(t, "run", "--apps", "web", "--created-machine-count", "1e9", "--dry-run", "--output", format)
		if code != ExitFailed || !strings.Contains(out, "created target 1000000000 is above --max-machines 500") {
			t.Errorf("%s: exit %d, stdout:\n%s\nstderr: %s", format, code, out, stderr)
		}
		if len(out) > 4096 {
			t.Errorf("%s: %d bytes of report for one failed app", format, len(out))
		}
		if n := len(srv.Mutations()); n != 0 {
			t.Errorf("%s: %d changes", format, n)
		}
	}

	fleetEnv(t, "small.json")
	code, out, _ := runCLI(t, "run", "--apps", "web", "--created-machine-count", "2000", "--max-machines", "2000", "--dry-run", "--output", "json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	a := decodeReport(t, out).Apps[0]
	if a.Target.Created != 2000 || len(a.Actions) != 2000-7 {
		t.Errorf("target %+v, %d actions; want 2000 created, 1993 creates", a.Target, len(a.Actions))
	}
	_, table, _ := runCLI(t, "run", "--apps", "web", "--created-machine-count", "2000", "--max-machines", "2000", "--dry-run")
	if lines := strings.Count(table, "\n"); lines > 10 {
		t.Errorf("table of %d lines for one app:\n%s", lines, table)
	}

	expectUsageError(t, tripwire(t), []string{"--max-machines (FAS_MAX_MACHINES)", "at least 1"},
		"run", "--apps", "web", "--created-machine-count", "2", "--max-machines", "0")
}

// TestRepeatedOutcomesAreGrouped: actions that ended the same way are one
// note, with their count; JSON keeps every action.
func TestRepeatedOutcomesAreGrouped(t *testing.T) {
	t.Parallel()
	a := scale.AppResult{App: "web", Status: scale.StatusFailed, Observed: true}
	for i := range 97 {
		a.Actions = append(a.Actions, scale.ActionResult{Action: scale.Action{Kind: scale.ActionCreate, Region: "ord"},
			Outcome: scale.OutcomeAborted, Error: "deadline exceeded"})
		if i < 2 {
			a.Actions = append(a.Actions, scale.ActionResult{Action: scale.Action{Kind: scale.ActionStart, MachineID: fmt.Sprint("m", i)},
				Outcome: scale.OutcomeFailed, Error: "500: boom"})
		}
	}
	a.Actions = append(a.Actions, scale.ActionResult{Action: scale.Action{Kind: scale.ActionCreate, Region: "iad"},
		Outcome: scale.OutcomeFailed, Error: "422: no capacity"})
	rep := &scale.Report{Apps: []scale.AppResult{a}}
	for _, format := range []string{FormatTable, FormatMarkdown} {
		out := string(render(t, rep, RenderOptions{Format: format}))
		for _, want := range []string{"97 creates (aborted): deadline exceeded", "2 starts (failed): 500: boom", "create iad (failed): 422: no capacity"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %q in\n%s", format, want, out)
			}
		}
		if n := strings.Count(out, "deadline exceeded"); n != 1 {
			t.Errorf("%s: the error is listed %d times", format, n)
		}
	}
	if got := decodeReport(t, string(render(t, rep, RenderOptions{Format: FormatJSON}))).Apps[0].Actions; len(got) != 100 {
		t.Errorf("JSON has %d actions, want 100", len(got))
	}
}

// TestCarelessInput: input a careless or hostile user gives is refused with
// exit 2, one line, and no API call.
func TestCarelessInput(t *testing.T) {
	t.Parallel()
	big := writeFile(t, "big.yml", "app-name: web\nstarted-machine-count: 1\n# "+strings.Repeat("x", maxConfigSize)+"\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "config over 1 MiB", args: []string{"run", "--config", big}, want: []string{"--config", "larger than 1 MiB"}},
		{name: "config /dev/zero", args: []string{"run", "--config", "/dev/zero"}, want: []string{"--config /dev/zero: not a regular file (a character device)"}},
		{name: "unclosed brace", args: []string{"run", "--org", "o", "--apps", "{a1", "--started-machine-count", "1"},
			want: []string{"--apps (FAS_APP_NAME)", "unclosed {"}},
		{name: "unclosed brace in a list", args: []string{"run", "--org", "o", "--apps", "web,{a,b", "--started-machine-count", "1"},
			want: []string{"unclosed {"}},
		{name: "stray closing brace in exclude", args: []string{"run", "--org", "o", "--apps", "a*", "--exclude", "b}", "--started-machine-count", "1"},
			want: []string{"--exclude (FAS_EXCLUDE)", "unexpected }"}},
		{name: "blank flag over a variable", env: map[string]string{"FAS_ORG": "my-org"}, args: []string{"run", "--org", "  ", "--apps", "a*", "--started-machine-count", "1"},
			want: []string{"--org (FAS_ORG)", "only whitespace"}},
		{name: "blank slice flag", args: []string{"run", "--apps", " ", "--started-machine-count", "1"}, want: []string{"--apps (FAS_APP_NAME)", "only whitespace"}},
		{name: "FLY_API_BASE_URL without a scheme", env: map[string]string{"FLY_API_BASE_URL": "api.fly.io"},
			args: []string{"run", "--apps", "web", "--started-machine-count", "1"}, want: []string{"FLY_API_BASE_URL", "not an http(s) base URL"}},
		{name: "FLY_FLAPS_BASE_URL not http", env: map[string]string{"FLY_FLAPS_BASE_URL": "ftp://u:pw-secret-1@host"},
			args: []string{"run", "--apps", "web", "--started-machine-count", "1"}, want: []string{"FLY_FLAPS_BASE_URL", `"ftp://host"`}},
		{name: "demo --foo", args: []string{"demo", "--foo"}, want: []string{"flag provided but not defined: --foo"}},
		{name: "version --foo", args: []string{"version", "--foo"}, want: []string{"flag provided but not defined: --foo"}},
		{name: "version extra", args: []string{"version", "extra"}, want: []string{"version takes no arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_careless")
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			code, out, stderr := runCLI(t, tc.args...)
			if code != ExitUsage || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("exit %d, stdout %d bytes, stderr:\n%s", code, len(out), stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", strings.TrimSpace(stderr), w)
				}
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls", n)
			}
		})
	}
}

// TestNoSignalLoggedWithoutOne: main cancels the context once Main
// returns; nothing may log a signal then. Real processes, as the race is
// between main's exit path and the run's signal watcher.
func TestNoSignalLoggedWithoutOne(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_nosignal")
	// An API that refuses the token at once: the run fails in a moment.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	// One P: the watcher made runnable as the run ends runs only after
	// main's goroutine yields, by which time the context is cancelled.
	setenv(t, "GOMAXPROCS", "1")
	runs := 20
	if testing.Short() {
		runs = 10
	}
	for i := range runs {
		code, out := runProcess(t, "run", "--org", "o", "--apps", "a*", "--started-machine-count", "1")
		if code != ExitFailed || strings.Contains(out, "signal") || !strings.Contains(out, "401 unauthorized") {
			t.Fatalf("run %d: exit %d, output: %s", i, code, out)
		}
	}
}

// TestSmallThingsAUserMeets: plain help words, errors that name the option
// as set, FAS_OUTPUT named, counts as numbers in JSON logs.
func TestSmallThingsAUserMeets(t *testing.T) {
	t.Parallel()
	_, help, _ := runCLI(t, "run", "--help")
	if !strings.Contains(help, "--api-token TOKEN  Fly API token (") || strings.Contains(help, "Fly API TOKEN") {
		t.Errorf("run --help placeholders:\n%s", help)
	}
	_, evalHelp, _ := runCLI(t, "eval", "--help")
	desc, _, _ := strings.Cut(evalHelp, "OPTIONS:")
	if !strings.Contains(desc, "DESCRIPTION:\n   Takes the run command's options.") {
		t.Errorf("eval --help has no DESCRIPTION section like run's:\n%s", desc)
	}

	calls := tripwire(t)
	setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_small")
	expectUsageError(t, calls, []string{"--output (FAS_OUTPUT)", `"yaml"`}, "run", "--apps", "web", "--started-machine-count", "1", "--output", "yaml")

	fleetEnv(t, "small.json")
	code, out, _ := runCLI(t, "run", "--apps", "web", "--started-machine-count", "1 / 0 * 0", "--dry-run")
	if code != ExitFailed || !strings.Contains(out, `--started-machine-count "1 / 0 * 0": result is NaN`) {
		t.Errorf("exit %d: the error does not name --started-machine-count: %s", code, out)
	}
	path := writeFile(t, "c.yml", "app-name: web\nmin-started-machine-count: '1 / 0 * 0'\nmax-started-machine-count: 3\n")
	if _, out, _ := runCLI(t, "run", "--config", path, "--dry-run"); !strings.Contains(out, `min-started-machine-count "1 / 0 * 0"`) {
		t.Errorf("the error does not name the key: %s", out)
	}

	_, _, logs := runCLI(t, "run", "--apps", "web", "--started-machine-count", "3", "--dry-run", "--verbose", "--log-format", "json", "--output", "json")
	found := false
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "app" {
			continue
		}
		found = true
		for _, k := range []string{"started", "target_started", "created", "target_created"} {
			if _, ok := rec[k].(float64); !ok {
				t.Errorf("%s is %T (%v) in %s", k, rec[k], rec[k], line)
			}
		}
	}
	if !found {
		t.Errorf("no app record in the logs:\n%s", logs)
	}
}

// TestReadmeYAMLExampleCreates runs the YAML example of docs/configuration.md
// (once README's) as a dry run:
// it must plan creates, spread over its regions.
func TestReadmeYAMLExampleCreates(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The configuration section's example: the block that sets regions.
	var example string
	for _, block := range strings.Split(string(b), "```yaml\n")[1:] {
		if block, _, _ = strings.Cut(block, "```"); strings.Contains(block, "regions: [ord, iad]") {
			example = block
		}
	}
	// A Prometheus API that reads queue_depth 25 for the example's app.
	prom := httptest.NewServer(&promfake.Handler{Values: map[string]float64{"my-app-1": 25}})
	t.Cleanup(prom.Close)
	example = strings.Replace(example, "https://api.fly.io/prometheus/my-org", prom.URL, 1)

	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "my-app-1", ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Region: "ord"}, {State: "stopped", Region: "ord"}}}}}, flytest.Options{Token: testToken})
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	setenv(t, "FAS_PROMETHEUS_TOKEN", "prom-token")
	code, out, stderr := runCLI(t, "run", "--config", writeFile(t, "example.yml", example), "--dry-run", "--output", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	a := decodeReport(t, out).Apps[0]
	var regions []string
	for _, act := range a.Actions {
		if act.Kind == string(scale.ActionCreate) {
			regions = append(regions, act.Region)
		}
	}
	if a.Target.Started != 3 || a.Target.Created != 4 || strings.Join(regions, ",") != "ord,iad" {
		t.Errorf("target %+v, creates in %v; want 3 started of 4, creates in ord and iad", a.Target, regions)
	}
}
