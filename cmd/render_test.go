package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	promsource "github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// update rewrites golden files instead of comparing with them:
//
//	go test ./cmd -run Render -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// assertGolden compares got with testdata/render/<test name>.golden, or
// rewrites the file under -update.
func assertGolden(t *testing.T, got []byte) {
	t.Helper()
	name := strings.ReplaceAll(t.Name(), "/", "_") + ".golden"
	path := filepath.Join("..", "testdata", "render", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// fixtureReport holds every kind of result, in no particular order.
func fixtureReport() *scale.Report {
	return &scale.Report{
		Org:       "acme",
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC),
		Elapsed:   2345 * time.Millisecond,
		Matched:   7,
		Apps: []scale.AppResult{
			{
				App:      "worker",
				Status:   scale.StatusScaled,
				Code:     scale.ReasonScaled,
				Metrics:  scale.MetricsOf(map[string]float64{"queue_depth": 0}),
				Observed: true,
				Current:  scale.Counts{Started: 3, Created: 4},
				Target:   scale.Counts{Started: 1, Created: 3},
				Actions: []scale.ActionResult{
					{Action: scale.Action{Kind: scale.ActionStop, MachineID: "m-w1", Reason: "started 3 > target 1"}, Outcome: scale.OutcomeDone},
					{Action: scale.Action{Kind: scale.ActionSuspend, MachineID: "m-w2", Reason: "started 3 > target 1"}, Outcome: scale.OutcomeDone},
					{Action: scale.Action{Kind: scale.ActionDestroy, MachineID: "m-w4", Reason: "created 4 > target 3"}, Outcome: scale.OutcomeDone},
				},
				Elapsed: 310 * time.Millisecond,
			},
			{
				App:      "api",
				Status:   scale.StatusScaled,
				Code:     scale.ReasonScaled,
				Metrics:  scale.MetricsOf(map[string]float64{"rps": 1520, "cpu": 0.756, "bytes_in": 12345678}),
				Observed: true,
				Current:  scale.Counts{Started: 1, Created: 2},
				Target:   scale.Counts{Started: 5, Created: 4},
				Actions: []scale.ActionResult{
					{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m-a2", Reason: "started 1 < target 5"}, Outcome: scale.OutcomeDone},
					{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m-a3", Reason: "started 1 < target 5"}, Outcome: scale.OutcomeFailed, Error: "412 precondition failed:\nmachine not in a startable state"},
					{Action: scale.Action{Kind: scale.ActionCreate, MachineID: "m-new1", Source: "m-a1", Region: "ord", Started: true, Reason: "created 2 < target 4"}, Outcome: scale.OutcomeDone},
					{Action: scale.Action{Kind: scale.ActionCreate, Source: "m-a1", Region: "iad", Started: true, Reason: "created 2 < target 4"}, Outcome: scale.OutcomeBusy, Error: "lease held by deploy"},
				},
				Elapsed: 1850 * time.Millisecond,
			},
			{
				App:      "batch",
				Status:   scale.StatusPlanned,
				Code:     scale.ReasonPlanned,
				Metrics:  scale.MetricsOf(map[string]float64{"pending_jobs": 7}),
				Observed: true,
				Current:  scale.Counts{Started: 0, Created: 2},
				Target:   scale.Counts{Started: 2, Created: 2},
				Actions: []scale.ActionResult{
					{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m-b1", Reason: "started 0 < target 2"}, Outcome: scale.OutcomePlanned},
					{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m-b2", Reason: "started 0 < target 2"}, Outcome: scale.OutcomePlanned},
				},
				Elapsed: 25 * time.Millisecond,
			},
			{
				App:      "cron",
				Status:   scale.StatusUnchanged,
				Code:     scale.ReasonAtTarget,
				Metrics:  scale.MetricsOf(map[string]float64{"lag_seconds": math.NaN()}),
				Observed: true,
				Current:  scale.Counts{Started: 2, Created: 2},
				Target:   scale.Counts{Started: 2, Created: 2},
				Warnings: []string{"max-started-machine-count 9 capped to created count 2", "metric lag_seconds is NaN; kept the current count"},
				Elapsed:  12 * time.Millisecond,
			},
			{
				App:      "deploying",
				Status:   scale.StatusSkipped,
				Code:     scale.ReasonReleaseInProgress,
				Reason:   "release in progress",
				Observed: true,
				Current:  scale.Counts{Started: 1, Created: 1},
				Target:   scale.Counts{Started: 1, Created: 1},
				Elapsed:  8 * time.Millisecond,
			},
			{
				App:     "broken",
				Status:  scale.StatusFailed,
				Code:    scale.ReasonMachinesUnreadable,
				Reason:  "list machines: 429 too many requests\nretry | later",
				Elapsed: 1200 * time.Millisecond,
			},
		},
	}
}

func render(t *testing.T, r *scale.Report, o RenderOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, r, o); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return buf.Bytes()
}

func TestRenderTable(t *testing.T) {
	t.Parallel()
	got := render(t, fixtureReport(), RenderOptions{Format: FormatTable})
	assertGolden(t, got)
	if i := bytes.IndexByte(got, 0x1b); i >= 0 {
		t.Errorf("plain table has an escape code at byte %d", i)
	}
	// Rows are sorted by name, the skipped and then the failed last.
	var order []string
	for _, line := range strings.Split(string(got), "\n")[1:7] {
		order = append(order, strings.Fields(line)[0])
	}
	if want := []string{"api", "batch", "cron", "worker", "deploying", "broken"}; !slices.Equal(order, want) {
		t.Errorf("row order = %v, want %v", order, want)
	}
}

func TestRenderTableDefaultFormat(t *testing.T) {
	t.Parallel()
	table := render(t, fixtureReport(), RenderOptions{Format: FormatTable})
	if got := render(t, fixtureReport(), RenderOptions{}); !bytes.Equal(got, table) {
		t.Errorf("empty format differs from table:\n%s", got)
	}
}

func TestRenderTableColor(t *testing.T) {
	t.Parallel()
	// A buffer is no terminal, so the renderer would pick Ascii: force ANSI.
	var buf bytes.Buffer
	re := lipgloss.NewRenderer(&buf)
	re.SetColorProfile(termenv.ANSI)
	if err := renderTable(&buf, fixtureReport(), RenderOptions{Color: true}, re); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	assertGolden(t, []byte(got))

	lineOf := func(app string) string {
		for _, line := range strings.Split(got, "\n") {
			if f := strings.Fields(stripANSI(line)); len(f) > 0 && f[0] == app {
				return line
			}
		}
		t.Fatalf("no row for %s", app)
		return ""
	}
	for app, sgr := range map[string]string{
		"api":       "\x1b[32m", // scale up: green
		"batch":     "\x1b[32m",
		"worker":    "\x1b[33m", // scale down: yellow
		"broken":    "\x1b[31m", // failed: red
		"deploying": "\x1b[2m",  // skipped: faint
	} {
		if line := lineOf(app); !strings.Contains(line, sgr) {
			t.Errorf("row %s has no %q: %q", app, sgr, line)
		}
	}
	if line := lineOf("cron"); strings.Contains(line, "\x1b[3") {
		t.Errorf("unchanged row is coloured: %q", line)
	}
	// Colour changes nothing but the escape codes.
	plain := render(t, fixtureReport(), RenderOptions{})
	if stripped := stripANSI(got); stripped != trimTrailingSpaces(string(plain)) {
		t.Errorf("coloured table without escapes differs from plain:\n%s\n---\n%s", stripped, plain)
	}
}

func TestRenderTableColorNotTerminal(t *testing.T) {
	t.Parallel()
	// Color asks for colour, but the renderer bound to a non-terminal
	// writer detects that it has none.
	got := render(t, fixtureReport(), RenderOptions{Color: true})
	if bytes.IndexByte(got, 0x1b) >= 0 && os.Getenv("CLICOLOR_FORCE") == "" {
		t.Errorf("escape codes written to a non-terminal:\n%q", got)
	}
}

var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

func stripANSI(s string) string { return trimTrailingSpaces(ansiRE.ReplaceAllString(s, "")) }

func trimTrailingSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}

func TestRenderTableQuiet(t *testing.T) {
	t.Parallel()
	got := render(t, fixtureReport(), RenderOptions{Quiet: true})
	assertGolden(t, got)
	for _, app := range []string{"api", "batch", "cron", "deploying", "worker"} {
		if bytes.Contains(got, []byte(app)) {
			t.Errorf("quiet output mentions %s:\n%s", app, got)
		}
	}
	if !bytes.Contains(got, []byte("broken")) {
		t.Errorf("quiet output lacks the failed app:\n%s", got)
	}
}

func TestRenderTableQuietNothingFailed(t *testing.T) {
	t.Parallel()
	r := fixtureReport()
	r.Apps = slices.DeleteFunc(r.Apps, func(a scale.AppResult) bool {
		return a.Status == scale.StatusFailed || len(a.Warnings) > 0 || a.App == "api"
	})
	got := string(render(t, r, RenderOptions{Quiet: true}))
	want := "7 apps: 1 scaled, 1 planned, 0 unchanged, 1 skipped, 0 failed, 4 not processed in 2.3s\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderTableWidth(t *testing.T) {
	t.Parallel()
	const width = 60
	got := render(t, fixtureReport(), RenderOptions{Width: width})
	assertGolden(t, got)
	for line := range strings.Lines(string(got)) {
		if w := lipgloss.Width(strings.TrimRight(line, "\n")); w > width {
			t.Errorf("line is %d columns wide, want ≤ %d: %q", w, width, line)
		}
	}
	// A width above the table's own leaves it as it is.
	if wide, plain := render(t, fixtureReport(), RenderOptions{Width: 1000}), render(t, fixtureReport(), RenderOptions{}); !bytes.Equal(wide, plain) {
		t.Errorf("a large width changed the table:\n%s", wide)
	}
}

// fleetReport is a run over 50 apps of 40-character names: most unchanged
// or scaled, some failed with a long reason, some skipped with the warnings
// that say why, one of a status the renderer has no special case for.
func fleetReport() *scale.Report {
	r := &scale.Report{Org: "acme", Elapsed: 4200 * time.Millisecond, Matched: 50}
	for i := range 50 {
		name := fmt.Sprintf("tenant-%02d-enterprise-customers-long-name", i) // 40 characters
		a := scale.AppResult{App: name, Observed: true, Status: scale.StatusUnchanged,
			Metrics: scale.MetricsOf(map[string]float64{"queue_depth": float64(i * 7), "cpu": 0.25}),
			Current: scale.Counts{Started: 2, Created: 3}, Target: scale.Counts{Started: 2, Created: 3}}
		switch {
		case i == 49:
			a.Status, a.Reason = scale.Status("paused"), "paused by ops until 18:00 UTC"
		case i%5 == 0:
			a.Status, a.Observed, a.Metrics = scale.StatusFailed, false, nil
			a.Reason = `metrics: metric "queue_depth": query returned no series ` + promsource.NoSeriesHint
		case i%7 == 0:
			a.Status = scale.StatusSkipped
			a.Reason = `no machine of group "app" to clone: deploy the app first`
			a.Current, a.Target = scale.Counts{}, scale.Counts{Created: 3, Started: 0}
			a.Warnings = []string{"target 3 created, " + a.Reason, "target 2 started, only 0 machines"}
		case i%3 == 0:
			a.Status = scale.StatusScaled
			a.Target.Started = 4
			a.Actions = []scale.ActionResult{
				{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m1"}, Outcome: scale.OutcomeDone},
				{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m2"}, Outcome: scale.OutcomeDone},
			}
		}
		if len(a.App) != 40 {
			panic("fleetReport: a name of other than 40 characters")
		}
		r.Apps = append(r.Apps, a)
	}
	return r
}

// TestRenderTableFits: the table of a 50-app run with long names and
// failures, at 60, 80 and 120 columns and unlimited: every line fits, every
// status word is whole, names are shortened in the middle, each failure's
// whole reason is there to read, the apps that need attention come last,
// and a skipped app is listed once (its warnings are not repeated).
func TestRenderTableFits(t *testing.T) {
	t.Parallel()
	for _, width := range []int{60, 80, 120, 0} {
		t.Run(fmt.Sprintf("width-%d", width), func(t *testing.T) {
			t.Parallel()
			r := fleetReport()
			got := string(render(t, r, RenderOptions{Width: width}))
			assertGolden(t, []byte(got))
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, line := range lines {
				if w := lipgloss.Width(line); width > 0 && w > width {
					t.Errorf("line is %d columns wide, want ≤ %d: %q", w, width, line)
				}
			}
			// The rows: after the header, each line that does not start
			// with a space, up to the first empty line.
			var rows []string
			for _, line := range lines[1:] {
				if line == "" {
					break
				}
				if !strings.HasPrefix(line, " ") {
					rows = append(rows, line)
				}
			}
			apps := attentionLast(sortedApps(r))
			if len(rows) != len(apps) {
				t.Fatalf("%d rows, want %d", len(rows), len(apps))
			}
			attentionSeen := false
			for i, a := range apps {
				row := rows[i]
				if status := string(a.Status); !strings.HasSuffix(row, "  "+status) && !strings.Contains(row, "  "+status+": ") {
					t.Errorf("row %d does not show the status %q whole: %q", i, status, row)
				}
				name := strings.Fields(row)[0]
				if name != a.App && (!strings.Contains(name, "…") || !strings.HasPrefix(a.App, strings.Split(name, "…")[0]) || !strings.HasSuffix(a.App, strings.Split(name, "…")[1])) {
					t.Errorf("row %d: name %q is not %q shortened in the middle", i, name, a.App)
				}
				if width == 0 && name != a.App {
					t.Errorf("unlimited width cut the name %q to %q", a.App, name)
				}
				if attention(a) {
					attentionSeen = true
				} else if attentionSeen {
					t.Errorf("row %d (%s) comes after an app that needs attention", i, a.Status)
				}
			}
			// Every reason can be read whole, in its row or below it.
			flat := strings.Join(strings.Fields(got), " ")
			for _, a := range apps {
				if a.Reason != "" && !strings.Contains(flat, a.Reason) {
					t.Errorf("reason of %s cannot be read whole: %q", a.App, a.Reason)
				}
			}
			if strings.Contains(got, "target 3 created") || strings.Contains(got, "only 0 machines") {
				t.Errorf("a skipped app's warnings are listed beside its row:\n%s", got)
			}
			if !strings.HasPrefix(lines[len(lines)-1], "50 apps:") && !strings.HasPrefix(lines[len(lines)-2], "50 apps:") {
				t.Errorf("the table does not end with the summary: %q", lines[len(lines)-2:])
			}
		})
	}
}

func TestRenderMarkdown(t *testing.T) {
	t.Parallel()
	got := render(t, fixtureReport(), RenderOptions{Format: FormatMarkdown})
	assertGolden(t, got)
	// Every table line has exactly 7 unescaped pipes: the cells did not
	// leak any, and nothing spans lines.
	unescaped := regexp.MustCompile(`(^|[^\\])\|`)
	for line := range strings.Lines(string(got)) {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		if n := len(unescaped.FindAllString(strings.ReplaceAll(line, "||", "| |"), -1)); n != 7 {
			t.Errorf("table line has %d cell separators, want 7: %q", n, line)
		}
	}
}

func TestRenderMarkdownQuiet(t *testing.T) {
	t.Parallel()
	got := render(t, fixtureReport(), RenderOptions{Format: FormatMarkdown, Quiet: true})
	if bytes.Contains(got, []byte("| api |")) || !bytes.Contains(got, []byte("| broken |")) {
		t.Errorf("quiet markdown should list only the failed app:\n%s", got)
	}
}

func TestRenderJSON(t *testing.T) {
	t.Parallel()
	got := render(t, fixtureReport(), RenderOptions{Format: FormatJSON, Quiet: true, Width: 10})
	assertGolden(t, got)
	if !json.Valid(got) {
		t.Fatalf("invalid JSON:\n%s", got)
	}
}

// outputDoc mirrors the contract in docs/output.md, written independently
// of render.go's structs.
type outputDoc struct {
	SchemaVersion  int     `json:"schema_version"`
	Org            string  `json:"org"`
	DryRun         bool    `json:"dry_run"`
	StartedAt      string  `json:"started_at"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Summary        struct {
		AppsMatched int `json:"apps_matched"`
		Scaled      int `json:"scaled"`
		Planned     int `json:"planned"`
		Unchanged   int `json:"unchanged"`
		Blocked     int `json:"blocked"`
		Skipped     int `json:"skipped"`
		Paused      int `json:"paused"`
		Fallback    int `json:"fallback"`
		Failed      int `json:"failed"`
	} `json:"summary"`
	Error *string `json:"error"`
	Apps  []struct {
		App            string              `json:"app"`
		Policy         string              `json:"policy"`
		Status         string              `json:"status"`
		Reason         string              `json:"reason"`
		ReasonCode     string              `json:"reason_code"`
		ElapsedSeconds float64             `json:"elapsed_seconds"`
		Metrics        map[string]*float64 `json:"metrics"`
		Current        struct {
			Started int `json:"started"`
			Created int `json:"created"`
		} `json:"current"`
		Target struct {
			Started int `json:"started"`
			Created int `json:"created"`
		} `json:"target"`
		Demand struct {
			Started int `json:"started"`
			Created int `json:"created"`
		} `json:"demand"`
		Warnings []string `json:"warnings"`
		Actions  []struct {
			Kind      string  `json:"kind"`
			MachineID string  `json:"machine_id"`
			Source    string  `json:"source"`
			Region    string  `json:"region"`
			Started   bool    `json:"started"`
			Reason    string  `json:"reason"`
			Outcome   string  `json:"outcome"`
			Error     *string `json:"error"`
		} `json:"actions"`
	} `json:"apps"`
}

func TestRenderJSONRoundTrip(t *testing.T) {
	t.Parallel()
	r := fixtureReport()
	r.Err = errors.New("list apps: context deadline exceeded")
	got := render(t, r, RenderOptions{Format: FormatJSON})

	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	var doc outputDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode into the documented struct: %v\n%s", err, got)
	}
	if doc.SchemaVersion != 1 || doc.Org != "acme" || doc.DryRun {
		t.Errorf("header = %d %q %v", doc.SchemaVersion, doc.Org, doc.DryRun)
	}
	if st, err := time.Parse(time.RFC3339, doc.StartedAt); err != nil || !st.Equal(r.StartedAt) {
		t.Errorf("started_at = %q (%v), want %v", doc.StartedAt, err, r.StartedAt)
	}
	if doc.ElapsedSeconds != 2.345 {
		t.Errorf("elapsed_seconds = %v", doc.ElapsedSeconds)
	}
	s := doc.Summary
	if s.AppsMatched != 7 || s.Scaled != 2 || s.Planned != 1 || s.Unchanged != 1 || s.Skipped != 1 || s.Failed != 1 {
		t.Errorf("summary = %+v", s)
	}
	if doc.Error == nil || *doc.Error != "list apps: context deadline exceeded" {
		t.Errorf("error = %v", doc.Error)
	}
	var names []string
	for _, a := range doc.Apps {
		names = append(names, a.App)
		if a.Metrics == nil || a.Warnings == nil || a.Actions == nil {
			t.Errorf("%s: metrics, warnings and actions must be present even when empty", a.App)
		}
	}
	if want := []string{"api", "batch", "broken", "cron", "deploying", "worker"}; !slices.Equal(names, want) {
		t.Errorf("apps = %v, want %v", names, want)
	}
	api := doc.Apps[0]
	if api.Current.Started != 1 || api.Target.Created != 4 || *api.Metrics["rps"] != 1520 || api.ElapsedSeconds != 1.85 {
		t.Errorf("api = %+v", api)
	}
	if len(api.Actions) != 4 {
		t.Fatalf("api actions = %+v", api.Actions)
	}
	if a := api.Actions[1]; a.Kind != "start" || a.Outcome != "failed" || a.Error == nil || !strings.Contains(*a.Error, "412") {
		t.Errorf("failed start = %+v", a)
	}
	if a := api.Actions[2]; a.Kind != "create" || a.Region != "ord" || a.Source != "m-a1" || !a.Started || a.MachineID != "m-new1" || a.Error != nil {
		t.Errorf("create = %+v", a)
	}
	if v, ok := doc.Apps[3].Metrics["lag_seconds"]; !ok || v != nil {
		t.Errorf("NaN metric = %v, %v; want null", v, ok)
	}
	if doc.Apps[2].Reason != "list machines: 429 too many requests\nretry | later" {
		t.Errorf("JSON keeps the reason verbatim, got %q", doc.Apps[2].Reason)
	}
}

// TestRenderJSONDocumented checks that the keys the JSON output has are
// exactly the fields docs/output.md documents.
func TestRenderJSONDocumented(t *testing.T) {
	t.Parallel()
	r := fixtureReport()
	r.Err = errors.New("list apps: context deadline exceeded")
	r.Shard = "2/4"
	started := 40
	r.Budget = scale.Budget{MaxStarted: &started}
	r.Warnings = []string{"--fleet-max-started 40 held back started: api by 2"}
	assertDocumented(t, render(t, r, RenderOptions{Format: FormatJSON}), "### Fields")
}

// TestRenderEvalJSONDocumented checks that the keys of eval's JSON output
// are exactly the fields docs/output.md documents for it.
func TestRenderEvalJSONDocumented(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := evalFixture()
	r.Err = errors.New("list apps: context deadline exceeded")
	if err := renderEval(&buf, r, FormatJSON, false); err != nil {
		t.Fatal(err)
	}
	assertDocumented(t, buf.Bytes(), "### Eval fields")
}

// evalFixture is an evaluation of three apps, in no particular order: one
// whose source warns about its value, one without warnings, and one that
// failed after a source warned about a value it read.
func evalFixture() *scale.EvalReport {
	one, eight := 1, 8
	return &scale.EvalReport{
		Org:       "acme",
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC),
		Elapsed:   120 * time.Millisecond,
		Matched:   3,
		Apps: []scale.EvalResult{
			{
				App:     "worker-2",
				Metrics: map[string]float64{"lag": 0},
				Targets: scale.Targets{Started: scale.Range{Min: &one, Max: &one}, Created: scale.Range{Max: &eight}},
			},
			{
				App:      "worker-1",
				Metrics:  map[string]float64{"lag": 3},
				Targets:  scale.Targets{Started: scale.Range{Min: &one, Max: &one}, Created: scale.Range{Max: &eight}},
				Warnings: []string{"group workers-worker-1 has no committed offsets"},
			},
			{
				App:      "broken",
				Warnings: []string{"group workers_broken has no committed offsets"},
				Err:      errors.New("metrics: metric \"pending\": stream jobs-broken\nnot found"),
			},
		},
	}
}

// TestRenderEval: each format shows an app's warnings as a run's report
// does (the table and Markdown after the table, as "app: text" notes; JSON
// as the app's warnings, [] when none), and only for the app they belong
// to.
func TestRenderEval(t *testing.T) {
	t.Parallel()
	for _, format := range []string{FormatTable, FormatMarkdown, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := renderEval(&buf, evalFixture(), format, false); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, buf.Bytes())
		})
	}
	var buf bytes.Buffer
	if err := renderEval(&buf, evalFixture(), FormatJSON, false); err != nil {
		t.Fatal(err)
	}
	var doc jsonEval
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"broken":   {"group workers_broken has no committed offsets"},
		"worker-1": {"group workers-worker-1 has no committed offsets"},
		"worker-2": {},
	}
	for _, a := range doc.Apps {
		if a.Warnings == nil || !slices.Equal(a.Warnings, want[a.App]) {
			t.Errorf("%s: JSON warnings %q, want %q", a.App, a.Warnings, want[a.App])
		}
	}
	if !strings.Contains(buf.String(), `"warnings": []`) {
		t.Errorf("an app without warnings has no \"warnings\": []:\n%s", buf.String())
	}
}

// assertDocumented checks that the keys of the JSON document doc are
// exactly the fields of the table under heading in docs/output.md.
func assertDocumented(t *testing.T, doc []byte, heading string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if prefix == "apps[].metrics" {
				got[prefix] = true // keys are metric names
				return
			}
			for k, e := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				got[p] = true
				walk(p, e)
			}
		case []any:
			for _, e := range v {
				walk(prefix+"[]", e)
			}
		}
	}
	walk("", v)

	docText, err := os.ReadFile(filepath.Join("..", "docs", "output.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The field table is the one under the heading.
	i := strings.Index(string(docText), "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/output.md has no %q section", heading)
	}
	fields := string(docText)[i+len(heading)+2:]
	if end := strings.Index(fields, "\n#"); end >= 0 {
		fields = fields[:end]
	}
	documented := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `([a-z_\\[\\].]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(fields, -1) {
		documented[m[1]] = true
	}
	if len(documented) == 0 {
		t.Fatal("found no field rows in docs/output.md")
	}
	for _, k := range sortedKeys(got) {
		if !documented[k] {
			t.Errorf("JSON field %s is not documented in docs/output.md under %s", k, heading)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !got[k] {
			t.Errorf("docs/output.md documents %s under %s, which the output lacks", k, heading)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestRenderRunError(t *testing.T) {
	t.Parallel()
	r := &scale.Report{
		Org:       "acme",
		DryRun:    true,
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Elapsed:   420 * time.Millisecond,
		Matched:   3,
		Apps: []scale.AppResult{{
			App: "web", Status: scale.StatusPlanned,
			Observed: true,
			Current:  scale.Counts{Started: 2, Created: 2}, Target: scale.Counts{Started: 1, Created: 2},
			Actions: []scale.ActionResult{{Action: scale.Action{Kind: scale.ActionStop, MachineID: "m1"}, Outcome: scale.OutcomePlanned}},
		}},
		Err: errors.New("app \"api\": list machines:\n\x1b[31mcontext canceled"),
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			got := render(t, r, RenderOptions{Format: format})
			assertGolden(t, got)
			want := map[string]string{
				FormatTable:    `run incomplete: app "api": list machines: [31mcontext canceled`,
				FormatMarkdown: `run incomplete: app "api": list machines: \[31mcontext canceled`,
				FormatJSON:     `"error": "app \"api\": list machines:\n\u001b[31mcontext canceled"`,
			}[format]
			if !bytes.Contains(got, []byte(want)) {
				t.Errorf("run error missing or not on one line:\n%s", got)
			}
			if bytes.IndexByte(got, 0x1b) >= 0 {
				t.Errorf("an escape code from the error text reached the output: %q", got)
			}
		})
	}
}

// TestRenderShard: every format says which shard a sharded run covered;
// an unsharded run's JSON has no shard field.
func TestRenderShard(t *testing.T) {
	t.Parallel()
	r := fixtureReport()
	r.Shard = "2/4"
	for format, want := range map[string]string{
		FormatTable:    "7 apps of shard 2/4: ",
		FormatMarkdown: "**7 apps of shard 2/4: ",
		FormatJSON:     `"shard": "2/4",`,
	} {
		if got := render(t, r, RenderOptions{Format: format}); !bytes.Contains(got, []byte(want)) {
			t.Errorf("%s: no %q in\n%s", format, want, got)
		}
	}
	if got := render(t, fixtureReport(), RenderOptions{Format: FormatJSON}); bytes.Contains(got, []byte(`"shard"`)) {
		t.Errorf("unsharded JSON has a shard field:\n%s", got)
	}
}

func TestRenderEmpty(t *testing.T) {
	t.Parallel()
	for _, format := range Formats {
		for _, r := range []*scale.Report{nil, {}} {
			var buf bytes.Buffer
			if err := Render(&buf, r, RenderOptions{Format: format, Quiet: true, Width: 80}); err != nil {
				t.Errorf("%s: %v", format, err)
			}
			if format == FormatTable && buf.String() != "0 apps: 0 scaled, 0 unchanged, 0 skipped, 0 failed in 0ms\n" {
				t.Errorf("empty table = %q", buf.String())
			}
			if format == FormatJSON && !strings.Contains(buf.String(), `"apps": []`) {
				t.Errorf("empty JSON must have an empty apps array: %s", buf.String())
			}
		}
	}
}

func TestRenderValidateFormat(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "table", "json", "markdown"} {
		if err := ValidateFormat(ok); err != nil {
			t.Errorf("ValidateFormat(%q) = %v", ok, err)
		}
	}
	err := ValidateFormat("yaml")
	if err == nil {
		t.Fatal("ValidateFormat(yaml) = nil")
	}
	for _, want := range []string{"--output", `"yaml"`, "table", "json", "markdown"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := Render(&bytes.Buffer{}, fixtureReport(), RenderOptions{Format: "yaml"}); err == nil {
		t.Error("Render accepted an unknown format")
	}
}

func TestRenderHelpers(t *testing.T) {
	t.Parallel()
	t.Run("compactNumber", func(t *testing.T) {
		for v, want := range map[float64]string{
			0: "0", 42: "42", 999: "999", 0.756: "0.756", 12.345: "12.3", -3.5: "-3.5",
			999.96: "1k", 1000: "1k", 1520: "1.52k", 12345678: "12.3M", 2.5e9: "2.5G",
			0.0001234: "0.000123", math.Inf(1): "+Inf", math.Inf(-1): "-Inf",
			999e12: "999T", 999.9e12: "1e15", 1.5e15: "1.5e15", 1e300: "1e300", -2.25e18: "-2.25e18", math.MaxFloat64: "1.8e308",
		} {
			if got := compactNumber(v); got != want {
				t.Errorf("compactNumber(%v) = %q, want %q", v, got, want)
			}
		}
		if got := compactNumber(math.NaN()); got != "NaN" {
			t.Errorf("compactNumber(NaN) = %q", got)
		}
	})
	t.Run("formatElapsed", func(t *testing.T) {
		for d, want := range map[time.Duration]string{
			0: "0ms", 400 * time.Microsecond: "0ms", 12 * time.Millisecond: "12ms",
			999400 * time.Microsecond: "999ms", 999600 * time.Microsecond: "1s",
			2345 * time.Millisecond: "2.3s", 64470 * time.Millisecond: "1m4.5s",
		} {
			if got := formatElapsed(d); got != want {
				t.Errorf("formatElapsed(%v) = %q, want %q", d, got, want)
			}
		}
	})
	t.Run("countCell", func(t *testing.T) {
		seen := scale.AppResult{Observed: true}
		if got := countCell(seen, 2, 2); got != "2" {
			t.Errorf("equal = %q", got)
		}
		if got := countCell(seen, 1, 3); got != "1 → 3" {
			t.Errorf("up = %q", got)
		}
		if got := countCell(scale.AppResult{}, 0, 0); got != "-" {
			t.Errorf("not read = %q", got)
		}
	})
	t.Run("actionsCell", func(t *testing.T) {
		create := func(region string, oc scale.Outcome) scale.ActionResult {
			return scale.ActionResult{Action: scale.Action{Kind: scale.ActionCreate, Region: region}, Outcome: oc}
		}
		start := func(oc scale.Outcome) scale.ActionResult {
			return scale.ActionResult{Action: scale.Action{Kind: scale.ActionStart}, Outcome: oc}
		}
		for _, tc := range []struct {
			name    string
			actions []scale.ActionResult
			dryRun  bool
			want    string
		}{
			{"none", nil, false, ""},
			{"dry run", []scale.ActionResult{start(scale.OutcomePlanned), start(scale.OutcomePlanned)}, true, "start 2"},
			{"not attempted", []scale.ActionResult{start(scale.OutcomeDone), start(scale.OutcomePlanned)}, false, "start 2 (1 not attempted)"},
			{"outcomes", []scale.ActionResult{start(scale.OutcomeFailed), start(scale.OutcomeBusy), start(scale.OutcomeAborted), start(scale.OutcomeDone)}, false, "start 4 (1 failed, 1 busy, 1 aborted)"},
			{"regions", []scale.ActionResult{create("ord", scale.OutcomeDone), create("iad", scale.OutcomeDone), create("ord", scale.OutcomeFailed)}, false, "create 3 (ord, iad; 1 failed)"},
			{"order", []scale.ActionResult{
				{Action: scale.Action{Kind: scale.ActionDestroy}, Outcome: scale.OutcomeDone},
				create("", scale.OutcomeDone),
				{Action: scale.Action{Kind: scale.ActionSuspend}, Outcome: scale.OutcomeDone},
				{Action: scale.Action{Kind: scale.ActionStop}, Outcome: scale.OutcomeDone},
				start(scale.OutcomeDone),
			}, false, "start 1, stop 1, suspend 1, create 1, destroy 1"},
		} {
			if got := actionsCell(tc.actions, tc.dryRun); got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
			}
		}
	})
	t.Run("oneLine", func(t *testing.T) {
		if got := oneLine("  a\r\nb\tc\x1b[0m  d\n"); got != "a b c [0m d" {
			t.Errorf("oneLine = %q", got)
		}
	})
	t.Run("summary", func(t *testing.T) {
		r := &scale.Report{DryRun: true, Matched: 1, Elapsed: 1500 * time.Millisecond,
			Apps: []scale.AppResult{{App: "a", Status: scale.StatusPlanned}}}
		if got, want := summary(r), "1 app: 1 planned, 0 unchanged, 0 skipped, 0 failed in 1.5s (dry run)"; got != want {
			t.Errorf("summary = %q, want %q", got, want)
		}
	})
}

// TestRenderJSONOneAppAtATime: the JSON report is written in pieces of
// about 32 KiB, each ending on a line end, never the whole document at
// once, and its bytes are those of the whole document encoded in one piece.
func TestRenderJSONOneAppAtATime(t *testing.T) {
	t.Parallel()
	many := fixtureReport()
	for i := range 2_000 {
		a := many.Apps[i%len(many.Apps)]
		a.App = fmt.Sprintf("app-%04d", i)
		many.Apps = append(many.Apps, a)
	}
	withErr := fixtureReport()
	withErr.Err, withErr.Shard = errors.New("list apps: <deadline> & more"), "2/4"
	one := fixtureReport()
	one.Apps = one.Apps[:1]
	for name, r := range map[string]*scale.Report{"fixture": fixtureReport(), "error": withErr, "one app": one, "none": {}, "2006 apps": many} {
		head, apps := toJSON(r)
		for _, a := range apps {
			head.Apps = append(head.Apps, toJSONApp(a))
		}
		var whole bytes.Buffer
		if err := writeJSON(&whole, head); err != nil {
			t.Fatal(err)
		}
		w := &largestWrite{}
		if err := renderJSON(w, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.buf.Bytes(), whole.Bytes()) {
			t.Errorf("%s: streamed\n%s\nwant\n%s", name, w.buf.Bytes(), whole.Bytes())
		}
		if w.max > 40<<10 {
			t.Errorf("%s: a write of %d bytes (document %d bytes), want about 32 KiB at most", name, w.max, whole.Len())
		}
		if w.cut {
			t.Errorf("%s: a write ended within a line", name)
		}
	}
}

type largestWrite struct {
	buf bytes.Buffer
	max int
	cut bool // a write ended without a line end
}

func (w *largestWrite) Write(p []byte) (int, error) {
	w.max = max(w.max, len(p))
	w.cut = w.cut || !bytes.HasSuffix(p, []byte("\n"))
	return w.buf.Write(p)
}

// TestRenderLeavesTheReportUntouched: every format, quiet or not, over a
// report sorted by app (as a run's is) or not, leaves its apps as they were.
func TestRenderLeavesTheReportUntouched(t *testing.T) {
	t.Parallel()
	sorted := fixtureReport()
	slices.SortFunc(sorted.Apps, func(a, b scale.AppResult) int { return strings.Compare(a.App, b.App) })
	for name, r := range map[string]*scale.Report{"sorted": sorted, "unsorted": fixtureReport()} {
		before := fmt.Sprintf("%+v", r.Apps) // NaN metrics: not reflect.DeepEqual
		for _, format := range Formats {
			for _, quiet := range []bool{false, true} {
				render(t, r, RenderOptions{Format: format, Quiet: quiet})
				if fmt.Sprintf("%+v", r.Apps) != before {
					t.Fatalf("%s report, %s, quiet %v: apps changed", name, format, quiet)
				}
			}
		}
	}
}

// TestRenderTableInPieces: a table laid out a piece at a time reads, byte
// for byte, as the table laid out whole, in colour or not, fitted to a
// width or not, and the renderer of a large report lays it out in pieces.
func TestRenderTableInPieces(t *testing.T) {
	t.Parallel()
	r := fixtureReport()
	base := r.Apps
	r.Apps = nil
	for i := range 60 {
		a := base[(i*7)%len(base)]
		a.App = fmt.Sprintf("app-%s%d", strings.Repeat("x", (i*13)%17), i)
		a.Policy = []string{"", "paying", "a-longer-policy-name"}[i%3]
		r.Apps = append(r.Apps, a)
	}
	r.HasPolicies = true
	for _, profile := range []termenv.Profile{termenv.Ascii, termenv.ANSI} {
		for _, width := range []int{0, 90} {
			var rows [][]string
			var statuses []string
			apps := sortedApps(r)
			for _, a := range apps {
				rows = append(rows, row(r, a))
				statuses = append(statuses, statusWord(a))
			}
			headers := withPolicy(r.HasPolicies, columns, policyColumn)
			if width > 0 {
				headers, rows, _ = fitWidth(headers, rows, statuses, width)
			}
			re := lipgloss.NewRenderer(io.Discard)
			re.SetColorProfile(profile)
			style := func(i int) lipgloss.Style { return rowStyle(re, apps[i]) }
			out := func(chunk int) string {
				var buf bytes.Buffer
				bw := bufio.NewWriter(&buf)
				writeTableIn(bw, re, headers, rows, style, chunk, nil)
				bw.Flush()
				return buf.String()
			}
			whole := out(len(rows))
			if n := strings.Count(whole, "\n"); n != len(rows)+1 {
				t.Fatalf("whole table has %d lines, want %d", n, len(rows)+1)
			}
			for _, chunk := range []int{7, 25} {
				if got := out(chunk); got != whole {
					t.Errorf("profile %v, width %d, pieces of %d: differs from the whole table", profile, width, chunk)
				}
			}
		}
	}
}

// TestReasonCodesDocumented: the reason_code row of docs/output.md names
// every reason code scale can give, and no other.
func TestReasonCodesDocumented(t *testing.T) {
	t.Parallel()
	docText, err := os.ReadFile(filepath.Join("..", "docs", "output.md"))
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for line := range strings.SplitSeq(string(docText), "\n") {
		if strings.HasPrefix(line, "| `apps[].reason_code` |") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("docs/output.md has no apps[].reason_code row")
	}
	// The codes are the row's backticked snake_case words after its type
	// and presence columns; flags (--x) and the field's own name are not.
	desc := row[strings.Index(row, "| always |")+len("| always |"):]
	documented := map[string]bool{}
	for i, part := range strings.Split(desc, "`") {
		if i%2 == 1 && !strings.HasPrefix(part, "-") && part != "reason" && part != "failed" && part != "skipped" && part != "blocked" {
			documented[part] = true
		}
	}
	for _, c := range scale.ReasonCodes() {
		if !documented[string(c)] {
			t.Errorf("reason code %q is not documented in docs/output.md", c)
		}
		delete(documented, string(c))
	}
	for c := range documented {
		t.Errorf("docs/output.md documents reason code %q, which scale does not give", c)
	}
}

// TestRenderJSONReasonCode: an app's reason code is in its JSON object,
// beside its reason.
func TestRenderJSONReasonCode(t *testing.T) {
	t.Parallel()
	var doc struct {
		Apps []struct {
			App        string `json:"app"`
			Reason     string `json:"reason"`
			ReasonCode string `json:"reason_code"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(render(t, fixtureReport(), RenderOptions{Format: FormatJSON}), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range doc.Apps {
		got[a.App] = a.ReasonCode
	}
	want := map[string]string{"worker": "scaled", "api": "scaled", "batch": "planned", "cron": "at_target", "deploying": "release_in_progress", "broken": "machines_unreadable"}
	if !maps.Equal(got, want) {
		t.Errorf("reason codes %v, want %v", got, want)
	}
}

// TestRunTableWidth: a run's table fits COLUMNS when it is set, is not cut
// when piped without it, nor with --wide (FAS_WIDE); -o md is markdown.
func TestRunTableWidth(t *testing.T) {
	t.Parallel()
	org := &flytest.Org{Slug: "wide-org"}
	for i := range 6 {
		org.Apps = append(org.Apps, flytest.AppSpec{Name: fmt.Sprintf("tenant-%02d-enterprise-customers-long-name", i),
			Machines: []flytest.MachineSpec{{State: "started"}}})
	}
	inMemoryFly(t, org, flytest.Options{Token: testToken})
	base := []string{"run", "--org", "wide-org", "--apps", "tenant-*", "--started-machine-count", "1", "--dry-run"}
	widest := func(out string) int {
		w := 0
		for line := range strings.Lines(out) {
			w = max(w, lipgloss.Width(strings.TrimRight(line, "\n")))
		}
		return w
	}
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		wantMax   int // 0: no limit, the names are whole
		wantWhole bool
	}{
		{name: "piped", wantWhole: true},
		{name: "columns", env: map[string]string{"COLUMNS": "40"}, wantMax: 40},
		{name: "wide flag", env: map[string]string{"COLUMNS": "40"}, args: []string{"--wide"}, wantWhole: true},
		{name: "wide variable", env: map[string]string{"COLUMNS": "40", "FAS_WIDE": "true"}, wantWhole: true},
		{name: "columns not a number", env: map[string]string{"COLUMNS": "wide"}, wantWhole: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			code, out, stderr := runCLI(t, append(slices.Clone(base), tc.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tc.wantMax > 0 && widest(out) > tc.wantMax {
				t.Errorf("a line is %d columns wide, want ≤ %d:\n%s", widest(out), tc.wantMax, out)
			}
			if whole := strings.Contains(out, "tenant-00-enterprise-customers-long-name"); whole != tc.wantWhole {
				t.Errorf("names whole: %v, want %v:\n%s", whole, tc.wantWhole, out)
			}
		})
	}
	t.Run("md", func(t *testing.T) {
		code, out, stderr := runCLI(t, append(slices.Clone(base), "-o", "md")...)
		if code != ExitOK || !strings.Contains(out, "| APP |") && !strings.Contains(out, "| App |") {
			t.Errorf("-o md: exit %d, not markdown:\n%s%s", code, out, stderr)
		}
	})
}

// TestWrap: lines within the width, words whole when they fit, a word
// longer than a line cut, a character wider than the line on its own.
func TestWrap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text  string
		width int
		want  []string
	}{
		{"a bb ccc dddd", 6, []string{"a bb", "ccc", "dddd"}},
		{"abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"x 漢字", 1, []string{"x", "漢", "字"}},
		{"", 5, []string{""}},
	} {
		if got := wrap(tc.text, tc.width); !slices.Equal(got, tc.want) {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.text, tc.width, got, tc.want)
		}
	}
	if got := truncateMiddle("tenant-38-enterprise-customers-long-name", 29); got != "tenant-38-ente…mers-long-name" {
		t.Errorf("truncateMiddle: %q", got)
	}
}
