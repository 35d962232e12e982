package cmd

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/superfly/fly-autoscaler/scale"
)

// This file holds what every format shares: the options, the dispatch to
// one renderer per format (render_table.go, render_markdown.go,
// render_json.go), for the run's report and the evaluation alike, and the
// cells and summaries that table and Markdown both show.

// Output formats accepted by --output.
const (
	FormatTable    = "table"
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
)

// Formats lists the output formats, the default first.
var Formats = []string{FormatTable, FormatJSON, FormatMarkdown}

// JSONSchemaVersion is the schema_version of the JSON output. It changes only
// when a field is removed or changes meaning (see docs/output.md).
const JSONSchemaVersion = 1

// RenderOptions control how a report is rendered.
type RenderOptions struct {
	// Format is one of Formats; empty means table.
	Format string
	// Color enables colour in the table format. Even when set, the lipgloss
	// renderer bound to the writer decides how many colours it can use.
	Color bool
	// Quiet keeps only the failed apps' rows (and their notes) and the
	// summary. It applies to table and markdown; JSON is always complete.
	Quiet bool
	// Width truncates the table to this many columns; 0 means no truncation.
	Width int
	// Stamp starts the summary line with the run's start time (UTC,
	// RFC 3339), for a log of quiet passes (--every -q).
	Stamp bool
}

// formatAlias returns the format name stands for: "md" is markdown.
func formatAlias(name string) string {
	if strings.EqualFold(strings.TrimSpace(name), "md") {
		return FormatMarkdown
	}
	return name
}

// tableWidth is the width the table fits: COLUMNS's when set (columns),
// else the terminal's (terminal, 0 when stdout is no terminal); 0, no
// limit, with --wide.
func tableWidth(terminal, columns int, wide bool) int {
	switch {
	case wide:
		return 0
	case columns > 0:
		return columns
	}
	return terminal
}

// columnsVar reads COLUMNS: a positive number of columns, else 0 (unset).
func columnsVar(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// ValidateFormat returns an error naming --output and the choices when name
// is not an output format. The empty name is valid and means table.
func ValidateFormat(name string) error {
	if name == "" || slices.Contains(Formats, name) {
		return nil
	}
	return fmt.Errorf("--output %q: unknown format; choose one of %s", name, strings.Join(Formats, ", "))
}

// Render writes the report r to w in the format o.Format.
func Render(w io.Writer, r *scale.Report, o RenderOptions) error {
	if err := ValidateFormat(o.Format); err != nil {
		return err
	}
	if r == nil {
		r = &scale.Report{}
	}
	switch o.Format {
	case FormatJSON:
		return renderJSON(w, r)
	case FormatMarkdown:
		return renderMarkdown(w, r, o)
	default:
		return renderTable(w, r, o, newRenderer(w, o.Color))
	}
}

// renderEval writes the evaluation as a table, Markdown or JSON.
func renderEval(w io.Writer, r *scale.EvalReport, format string, color bool) error {
	apps := sortByApp(r.Apps, func(a scale.EvalResult) string { return a.App })
	switch format {
	case FormatJSON:
		return renderEvalJSON(w, r, apps)
	case FormatMarkdown:
		return renderEvalMarkdown(w, r, apps)
	default:
		return renderEvalTable(w, r, apps, newRenderer(w, color))
	}
}

// newRenderer returns a lipgloss renderer bound to w. Without colour the
// profile is forced to Ascii so that not a single escape code is written.
// The terminal is detected on the file under the redacting writer.
func newRenderer(w io.Writer, color bool) *lipgloss.Renderer {
	re := lipgloss.NewRenderer(underlying(w))
	if !color {
		re.SetColorProfile(termenv.Ascii)
	}
	return re
}

// Shared text helpers: table and markdown show the same cells.

var columns = []string{"APP", "STARTED", "CREATED", "ACTIONS", "METRICS", "RESULT"}

// policyColumn is the column, after APP, that names each app's policy when
// policies are configured.
const policyColumn = "POLICY"

// withPolicy inserts the POLICY column, or its cell, after the first (the
// app) when the report names policies.
func withPolicy(has bool, cells []string, policy string) []string {
	if !has {
		return cells
	}
	return slices.Insert(slices.Clone(cells), 1, policy)
}

// sortByApp returns apps sorted by app name, for the run's results and the
// evaluation's alike: apps itself when it is sorted already (a run's are:
// no copy of a 10,000-app report at its end), else a sorted copy. Callers
// do not modify it.
func sortByApp[T any](apps []T, name func(T) string) []T {
	byName := func(a, b T) int { return strings.Compare(name(a), name(b)) }
	if slices.IsSortedFunc(apps, byName) {
		return apps
	}
	apps = slices.Clone(apps)
	slices.SortStableFunc(apps, byName)
	return apps
}

// sortedApps returns the apps sorted by name, leaving the report untouched.
func sortedApps(r *scale.Report) []scale.AppResult {
	return sortByApp(r.Apps, func(a scale.AppResult) string { return a.App })
}

// appsNoun is "1 app" or "n apps".
func appsNoun(n int) string {
	if n == 1 {
		return "1 app"
	}
	return strconv.Itoa(n) + " apps"
}

// visibleApps applies Quiet.
func visibleApps(r *scale.Report, o RenderOptions) []scale.AppResult {
	apps := sortedApps(r)
	if o.Quiet {
		var failed []scale.AppResult
		for _, a := range apps {
			if a.Status == scale.StatusFailed || a.Status == scale.StatusFallback {
				failed = append(failed, a)
			}
		}
		apps = failed
	}
	return apps
}

// note is one line listed under the table: a warning or an action's error.
type note struct{ app, text string }

// notes returns the warnings and the errors of the actions that did not
// succeed, of the given apps. Actions of one kind that ended the same way
// with the same error are one note, "97 creates (aborted): ...", so that
// the notes grow with the kinds of failure, not with the actions.
func notes(apps []scale.AppResult) (warnings, errs []note) {
	type group struct {
		first scale.ActionResult
		n     int
	}
	for _, a := range apps {
		// A skipped app's reason says what its warnings would: it is
		// listed once, by its row.
		if a.Status != scale.StatusSkipped {
			for _, w := range a.Warnings {
				warnings = append(warnings, note{oneLine(a.App), oneLine(w)})
			}
		}
		var groups []*group
		for _, ac := range a.Actions {
			if ac.Error == "" {
				continue
			}
			i := slices.IndexFunc(groups, func(g *group) bool {
				return g.first.Kind == ac.Kind && g.first.Outcome == ac.Outcome && g.first.Error == ac.Error
			})
			if i < 0 {
				groups = append(groups, &group{first: ac})
				i = len(groups) - 1
			}
			groups[i].n++
		}
		for _, g := range groups {
			ac := g.first
			text := string(ac.Kind)
			if g.n > 1 {
				text = fmt.Sprintf("%d %ss", g.n, ac.Kind)
			} else if target := cmp.Or(ac.MachineID, ac.Region); target != "" {
				text += " " + target
			}
			text += " (" + string(ac.Outcome) + "): " + ac.Error
			errs = append(errs, note{oneLine(a.App), oneLine(text)})
		}
	}
	return warnings, errs
}

// evalWarnings returns the warnings of the evaluated apps, one note each,
// as notes lists a run's: eval shows them the way run does.
func evalWarnings(apps []scale.EvalResult) []note {
	var warnings []note
	for _, a := range apps {
		for _, w := range a.Warnings {
			warnings = append(warnings, note{oneLine(a.App), oneLine(w)})
		}
	}
	return warnings
}

// summary is "6 apps: 1 scaled, 1 unchanged, 1 skipped, 2 failed in 2.3s",
// with planned instead of scaled and a "(dry run)" marker in a dry run, and
// "6 apps of shard 2/4: ..." in a sharded run.
func summary(r *scale.Report) string {
	count := map[scale.Status]int{}
	for _, a := range r.Apps {
		count[a.Status]++
	}
	matched := max(r.Matched, len(r.Apps))
	change := scale.StatusScaled
	if r.DryRun {
		change = scale.StatusPlanned
	}
	var parts []string
	for _, st := range scale.Statuses() {
		if st == change || st == scale.StatusUnchanged || st == scale.StatusSkipped || st == scale.StatusFailed || count[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	// A status scale does not list yet is counted all the same, by name.
	var other []string
	for st := range count {
		if !slices.Contains(scale.Statuses(), st) {
			other = append(other, string(st))
		}
	}
	slices.Sort(other)
	for _, st := range other {
		parts = append(parts, fmt.Sprintf("%d %s", count[scale.Status(st)], oneLine(cmp.Or(st, "unknown"))))
	}
	if n := matched - len(r.Apps); n > 0 {
		parts = append(parts, fmt.Sprintf("%d not processed", n))
	}
	noun := appsNoun(matched)
	if r.Shard != "" {
		noun += " of shard " + r.Shard
	}
	s := fmt.Sprintf("%s: %s in %s", noun, strings.Join(parts, ", "), formatElapsed(r.Elapsed))
	if r.DryRun {
		s += " (dry run)"
	}
	return s
}

// stampedSummary is the summary, after the run's start time with o.Stamp.
func stampedSummary(r *scale.Report, o RenderOptions) string {
	if o.Stamp {
		return r.StartedAt.UTC().Format(time.RFC3339) + " " + summary(r)
	}
	return summary(r)
}

// runError is the line shown when the run could not complete, or "".
func runError(r *scale.Report) string {
	if r.Err == nil {
		return ""
	}
	return "run incomplete: " + oneLine(r.Err.Error())
}

// formatElapsed rounds to the millisecond below a second and to a tenth of
// a second above: 12ms, 2.3s, 1m4.5s.
func formatElapsed(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(100 * time.Millisecond).String()
}

// oneLine makes arbitrary text (error messages from the API, reasons) safe
// for one table cell: line breaks, tabs and other control characters
// become spaces, runs of spaces collapse, and the ends are trimmed.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// evalColumns are the columns of the eval table.
var evalColumns = []string{"APP", "METRICS", "STARTED", "CREATED", "RESULT"}

func evalRow(r *scale.EvalReport, a scale.EvalResult) []string {
	result := "ok"
	if a.Err != nil {
		result = "failed: " + a.Err.Error()
	}
	return withPolicy(r.HasPolicies, []string{
		oneLine(a.App),
		metricsCell(scale.MetricsOf(a.Metrics)),
		rangeCell(a.Targets.Started),
		rangeCell(a.Targets.Created),
		oneLine(result),
	}, oneLine(a.Policy))
}

// rangeCell renders a target range: "3" when min and max agree, "1..8",
// "≥ 1", "≤ 8", or "-" when no expression sets it.
func rangeCell(r scale.Range) string {
	switch {
	case r.Min != nil && r.Max != nil && *r.Min == *r.Max:
		return strconv.Itoa(*r.Min)
	case r.Min != nil && r.Max != nil:
		return fmt.Sprintf("%d..%d", *r.Min, *r.Max)
	case r.Min != nil:
		return fmt.Sprintf("≥ %d", *r.Min)
	case r.Max != nil:
		return fmt.Sprintf("≤ %d", *r.Max)
	}
	return "-"
}

// evalSummary is "3 apps: 2 evaluated, 1 failed in 120ms".
func evalSummary(r *scale.EvalReport) string {
	failed := evalFailed(r)
	return fmt.Sprintf("%s: %d evaluated, %d failed in %s (machines not read: started, stopped, suspended and created are 0)",
		appsNoun(max(r.Matched, len(r.Apps))), len(r.Apps)-failed, failed, formatElapsed(r.Elapsed))
}

// evalFailed counts the apps the evaluation failed.
func evalFailed(r *scale.EvalReport) int {
	failed := 0
	for _, a := range r.Apps {
		if a.Err != nil {
			failed++
		}
	}
	return failed
}
