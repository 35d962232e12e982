package cmd

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

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

func row(r *scale.Report, a scale.AppResult) []string {
	return withPolicy(r.HasPolicies, []string{
		oneLine(a.App),
		demandCell(a, a.Current.Started, a.Target.Started, demandOf(a).Started),
		demandCell(a, a.Current.Created, a.Target.Created, demandOf(a).Created),
		actionsCell(a.Actions, r.DryRun),
		metricsCell(a.Metrics),
		resultCell(a),
	}, oneLine(a.Policy))
}

// demandOf is the app's demand, its target when nothing was decided.
func demandOf(a scale.AppResult) scale.Counts {
	if a.Demand == nil {
		return a.Target
	}
	return *a.Demand
}

// countCell renders "current → target", or a single number when they are
// equal, or "-" when the app's machines were not read.
func countCell(a scale.AppResult, current, target int) string {
	if !a.Observed {
		return "-"
	}
	if current == target {
		return strconv.Itoa(current)
	}
	return fmt.Sprintf("%d → %d", current, target)
}

// demandCell is countCell followed by "(wants N)" when the app's demand
// is not its target: unmet demand shows.
func demandCell(a scale.AppResult, current, target, demand int) string {
	s := countCell(a, current, target)
	if a.Observed && demand != target && a.Status != scale.StatusFailed && a.Status != scale.StatusSkipped && a.Status != scale.StatusPaused {
		s += fmt.Sprintf(" (wants %d)", demand)
	}
	return s
}

// actionsCell summarises actions per kind: "start 2 (1 failed), create 2
// (ord, iad)". Kinds come in scale's order; unknown kinds follow, by name.
func actionsCell(actions []scale.ActionResult, dryRun bool) string {
	kinds := scale.ActionKinds()
	var extra []scale.ActionKind
	for _, a := range actions {
		if !slices.Contains(kinds, a.Kind) && !slices.Contains(extra, a.Kind) {
			extra = append(extra, a.Kind)
		}
	}
	slices.Sort(extra)
	kinds = append(kinds, extra...)

	var parts []string
	for _, kind := range kinds {
		var n int
		var regions []string
		outcomes := map[scale.Outcome]int{}
		for _, a := range actions {
			if a.Kind != kind {
				continue
			}
			n++
			outcomes[a.Outcome]++
			if kind == scale.ActionCreate && a.Region != "" && !slices.Contains(regions, a.Region) {
				regions = append(regions, a.Region)
			}
		}
		if n == 0 {
			continue
		}
		var notes []string
		for _, oc := range scale.Outcomes() {
			if c := outcomes[oc]; c > 0 && oc != scale.OutcomeDone && oc != scale.OutcomePlanned {
				notes = append(notes, fmt.Sprintf("%d %s", c, oc))
			}
		}
		if c := outcomes[scale.OutcomePlanned]; c > 0 && !dryRun {
			notes = append(notes, fmt.Sprintf("%d not attempted", c))
		}
		var paren []string
		if len(regions) > 0 {
			paren = append(paren, strings.Join(regions, ", "))
		}
		if len(notes) > 0 {
			paren = append(paren, strings.Join(notes, ", "))
		}
		part := fmt.Sprintf("%s %d", oneLine(string(kind)), n)
		if len(paren) > 0 {
			part += " (" + oneLine(strings.Join(paren, "; ")) + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// metricsCell renders "name=value" pairs sorted by name.
func metricsCell(ms scale.MetricValues) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = oneLine(m.Name) + "=" + compactNumber(m.Value)
	}
	return strings.Join(parts, " ")
}

// compactNumber formats v with at most three significant digits and a k, M,
// G or T suffix from a thousand up, in scientific notation from 1e15: 0.756
// → 0.756, 42 → 42, 1500 → 1.5k, 12345678 → 12.3M, 1.5e15 → 1.5e15.
func compactNumber(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	if roundSig(v, 3) >= 1e15 {
		// Past the suffixes: scientific notation, 1.5e15 or 1e300.
		return sign + strings.Replace(strconv.FormatFloat(v, 'g', 3, 64), "e+", "e", 1)
	}
	suffixes := []string{"", "k", "M", "G", "T"}
	i := 0
	for i < len(suffixes)-1 && roundSig(v, 3) >= 1000 {
		v /= 1000
		i++
	}
	if i == 0 && v == math.Trunc(v) && v < 1000 {
		return sign + strconv.FormatFloat(v, 'f', -1, 64)
	}
	v = roundSig(v, 3)
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if v >= 1e3 || (v != 0 && v < 1e-3) {
		s = strconv.FormatFloat(v, 'g', 3, 64)
	}
	return sign + s + suffixes[i]
}

// roundSig rounds v (≥ 0) to n significant digits.
func roundSig(v float64, n int) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(v)))
	return math.Round(v*p) / p
}

// statusWord is the app's status as the report shows it: any status, so
// that a new one needs no change here.
func statusWord(a scale.AppResult) string {
	if a.Status == "" {
		return "unknown"
	}
	return oneLine(string(a.Status))
}

// resultCell is the status, with the reason when there is one.
func resultCell(a scale.AppResult) string {
	s := statusWord(a)
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return oneLine(s)
}
