package cmd

import (
	"fmt"
	"io"
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
