package cmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/superfly/fly-autoscaler/scale"
)

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

// ---------------------------------------------------------------------------
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

// sortedApps returns the apps sorted by name, leaving the report untouched.
func sortedApps(r *scale.Report) []scale.AppResult {
	apps := slices.Clone(r.Apps)
	slices.SortStableFunc(apps, func(a, b scale.AppResult) int { return strings.Compare(a.App, b.App) })
	return apps
}

// visibleApps applies Quiet.
func visibleApps(r *scale.Report, o RenderOptions) []scale.AppResult {
	apps := sortedApps(r)
	if o.Quiet {
		apps = slices.DeleteFunc(apps, func(a scale.AppResult) bool { return a.Status != scale.StatusFailed })
	}
	return apps
}

func row(r *scale.Report, a scale.AppResult) []string {
	return withPolicy(r.HasPolicies, []string{
		oneLine(a.App),
		countCell(a, a.Current.Started, a.Target.Started),
		countCell(a, a.Current.Created, a.Target.Created),
		actionsCell(a.Actions, r.DryRun),
		metricsCell(a.Metrics),
		resultCell(a),
	}, oneLine(a.Policy))
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

var actionOrder = []scale.ActionKind{
	scale.ActionStart, scale.ActionStop, scale.ActionSuspend, scale.ActionCreate, scale.ActionDestroy,
}

// actionsCell summarises actions per kind: "start 2 (1 failed), create 2
// (ord, iad)". Kinds come in a fixed order; unknown kinds follow, by name.
func actionsCell(actions []scale.ActionResult, dryRun bool) string {
	kinds := slices.Clone(actionOrder)
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
		for _, oc := range []struct {
			outcome scale.Outcome
			label   string
		}{
			{scale.OutcomeFailed, "failed"},
			{scale.OutcomeBusy, "busy"},
			{scale.OutcomeAborted, "aborted"},
			{scale.OutcomeUnneeded, "unneeded"},
		} {
			if c := outcomes[oc.outcome]; c > 0 {
				notes = append(notes, fmt.Sprintf("%d %s", c, oc.label))
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
func metricsCell(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = oneLine(name) + "=" + compactNumber(m[name])
	}
	return strings.Join(parts, " ")
}

// compactNumber formats v with at most three significant digits and a k, M,
// G or T suffix from a thousand up: 0.756 → 0.756, 42 → 42, 1500 → 1.5k,
// 12345678 → 12.3M.
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

// resultCell is the status, with the reason when there is one.
func resultCell(a scale.AppResult) string {
	s := string(a.Status)
	if s == "" {
		s = "unknown"
	}
	if a.Reason != "" {
		s += ": " + a.Reason
	}
	return oneLine(s)
}

// note is one line listed under the table: a warning or an action's error.
type note struct{ app, text string }

// notes returns the warnings and the errors of the actions that did not
// succeed, of the given apps.
func notes(apps []scale.AppResult) (warnings, errs []note) {
	for _, a := range apps {
		for _, w := range a.Warnings {
			warnings = append(warnings, note{oneLine(a.App), oneLine(w)})
		}
		for _, ac := range a.Actions {
			if ac.Error == "" {
				continue
			}
			target := ac.MachineID
			if target == "" {
				target = ac.Region
			}
			text := string(ac.Kind)
			if target != "" {
				text += " " + target
			}
			text += " (" + string(ac.Outcome) + "): " + ac.Error
			errs = append(errs, note{oneLine(a.App), oneLine(text)})
		}
	}
	return warnings, errs
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
	noun := "apps"
	if matched == 1 {
		noun = "app"
	}
	change := scale.StatusScaled
	if r.DryRun {
		change = scale.StatusPlanned
	}
	var parts []string
	for _, st := range []scale.Status{scale.StatusScaled, scale.StatusPlanned, scale.StatusUnchanged, scale.StatusBlocked, scale.StatusSkipped, scale.StatusFailed} {
		if st == change || st == scale.StatusUnchanged || st == scale.StatusSkipped || st == scale.StatusFailed || count[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[st], st))
		}
	}
	if n := matched - len(r.Apps); n > 0 {
		parts = append(parts, fmt.Sprintf("%d not processed", n))
	}
	if r.Shard != "" {
		noun += " of shard " + r.Shard
	}
	s := fmt.Sprintf("%d %s: %s in %s", matched, noun, strings.Join(parts, ", "), formatElapsed(r.Elapsed))
	if r.DryRun {
		s += " (dry run)"
	}
	return s
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

// ---------------------------------------------------------------------------
// Table.

// Row colours: the basic ANSI palette, so the user's terminal theme applies.
var (
	colorUp     = lipgloss.Color("2") // green
	colorDown   = lipgloss.Color("3") // yellow
	colorFailed = lipgloss.Color("1") // red
	colorBlock  = lipgloss.Color("5") // magenta
)

// rowStyle colours a row by what happened to the app.
func rowStyle(re *lipgloss.Renderer, a scale.AppResult) lipgloss.Style {
	s := re.NewStyle()
	switch {
	case a.Status == scale.StatusFailed:
		return s.Foreground(colorFailed)
	case a.Status == scale.StatusSkipped:
		return s.Faint(true)
	case a.Status == scale.StatusBlocked:
		return s.Foreground(colorBlock)
	case a.Target.Started > a.Current.Started || a.Target.Created > a.Current.Created:
		return s.Foreground(colorUp)
	case a.Target.Started < a.Current.Started || a.Target.Created < a.Current.Created:
		return s.Foreground(colorDown)
	}
	return s
}

// renderTable writes the report as an aligned, borderless table followed by
// the warnings, the action errors and the summary.
func renderTable(w io.Writer, r *scale.Report, o RenderOptions, re *lipgloss.Renderer) error {
	bw := bufio.NewWriter(w)
	apps := visibleApps(r, o)

	if len(apps) > 0 {
		styles := make([]lipgloss.Style, len(apps))
		rows := make([][]string, len(apps))
		for i, a := range apps {
			styles[i] = rowStyle(re, a)
			rows[i] = row(r, a)
		}
		headers := withPolicy(r.HasPolicies, columns, policyColumn)
		if o.Width > 0 {
			fitWidth(headers, rows, o.Width)
		}
		writeTable(bw, re, headers, rows, func(i int) lipgloss.Style { return styles[i] })
	}

	warnings, errs := notes(apps)
	writeNotes := func(title string, ns []note) {
		if len(ns) == 0 {
			return
		}
		fmt.Fprintf(bw, "\n%s\n", re.NewStyle().Bold(true).Render(title+":"))
		for _, n := range ns {
			line := "  " + n.app + ": " + n.text
			if o.Width > 0 {
				line = truncate(line, o.Width)
			}
			bw.WriteString(line + "\n")
		}
	}
	writeNotes("Warnings", warnings)
	writeNotes("Action errors", errs)

	if len(apps) > 0 || len(warnings) > 0 || len(errs) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString(summary(r) + "\n")
	if e := runError(r); e != "" {
		bw.WriteString(re.NewStyle().Foreground(colorFailed).Render(e) + "\n")
	}
	return bw.Flush()
}

// writeTable writes an aligned, borderless table: a bold header, then the
// rows, each in the style rowStyle gives it.
func writeTable(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style) {
	header := re.NewStyle().Bold(true)
	last := len(headers) - 1
	out := table.New().
		Border(lipgloss.HiddenBorder()).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderHeader(false).BorderColumn(false).
		Headers(headers...).
		Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			s := header
			if row != table.HeaderRow {
				s = rowStyle(row)
			}
			if col != last {
				s = s.PaddingRight(columnGap)
			}
			return s
		}).
		String()
	for line := range strings.Lines(out) {
		bw.WriteString(trimLineEnd(line))
		bw.WriteByte('\n')
	}
}

// trimLineEnd drops the newline and the padding of the last cell. Trailing
// spaces inside a styled cell sit before its reset sequence; they are left
// alone, being invisible.
func trimLineEnd(line string) string {
	return strings.TrimRight(line, " \n")
}

// columnGap is the number of spaces between two columns.
const columnGap = 2

// fitWidth truncates the cells of rows so that the table fits in width
// columns. Only the free-text columns (ACTIONS, METRICS, RESULT, then APP
// and POLICY) shrink, the widest first, never below their header; the
// counts never do. When even that is not enough the table stays wider
// than width.
func fitWidth(columns []string, rows [][]string, width int) {
	widths := make([]int, len(columns))
	for c, h := range columns {
		widths[c] = lipgloss.Width(h)
		for _, r := range rows {
			widths[c] = max(widths[c], lipgloss.Width(r[c]))
		}
	}
	total := columnGap * (len(columns) - 1)
	for _, w := range widths {
		total += w
	}
	shrinkable := func(names ...string) {
		var cols []int
		for _, n := range names {
			if c := slices.Index(columns, n); c >= 0 {
				cols = append(cols, c)
			}
		}
		for total > width {
			widest := -1
			for _, c := range cols {
				if widths[c] > len(columns[c]) && (widest < 0 || widths[c] > widths[widest]) {
					widest = c
				}
			}
			if widest < 0 {
				return
			}
			widths[widest]--
			total--
		}
	}
	shrinkable("ACTIONS", "METRICS", "RESULT")
	shrinkable("APP", policyColumn)
	for _, r := range rows {
		for c := range r {
			r[c] = truncate(r[c], widths[c])
		}
	}
}

// truncate cuts s to width columns, marking the cut with an ellipsis.
func truncate(s string, width int) string {
	return ansi.Truncate(s, width, "…")
}

// ---------------------------------------------------------------------------
// Markdown.

// renderMarkdown writes the summary in bold, then a GitHub-flavoured table
// and the notes as lists: fit for a CI job summary or a pull request comment.
func renderMarkdown(w io.Writer, r *scale.Report, o RenderOptions) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "**%s**\n", mdEscape(summary(r)))
	if e := runError(r); e != "" {
		fmt.Fprintf(bw, "\n**%s**\n", mdEscape(e))
	}

	apps := visibleApps(r, o)
	if len(apps) > 0 {
		headers := withPolicy(r.HasPolicies, columns, policyColumn)
		bw.WriteString("\n| " + strings.Join(headers, " | ") + " |\n|")
		for range headers {
			bw.WriteString(" --- |")
		}
		bw.WriteByte('\n')
		for _, a := range apps {
			cells := row(r, a)
			for i, c := range cells {
				cells[i] = mdEscape(c)
			}
			bw.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}

	warnings, errs := notes(apps)
	for _, sec := range []struct {
		title string
		ns    []note
	}{{"Warnings", warnings}, {"Action errors", errs}} {
		if len(sec.ns) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n**%s**\n\n", sec.title)
		for _, n := range sec.ns {
			fmt.Fprintf(bw, "- %s: %s\n", mdEscape(n.app), mdEscape(n.text))
		}
	}
	return bw.Flush()
}

// mdEscape puts text on one line and backslash-escapes the characters that
// would end a table cell or start inline markup or HTML.
func mdEscape(s string) string {
	s = oneLine(s)
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\|`*_<>[]#~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// JSON: the contract documented in docs/output.md. These structs, not the
// scale types, define it, so that scale can change without breaking users.

type jsonReport struct {
	SchemaVersion  int         `json:"schema_version"`
	Org            string      `json:"org"`
	Shard          string      `json:"shard,omitempty"`
	DryRun         bool        `json:"dry_run"`
	StartedAt      string      `json:"started_at"`
	ElapsedSeconds float64     `json:"elapsed_seconds"`
	Summary        jsonSummary `json:"summary"`
	Error          string      `json:"error,omitempty"`
	Apps           []jsonApp   `json:"apps"`
}

type jsonSummary struct {
	AppsMatched int `json:"apps_matched"`
	Scaled      int `json:"scaled"`
	Planned     int `json:"planned"`
	Unchanged   int `json:"unchanged"`
	Blocked     int `json:"blocked"`
	Skipped     int `json:"skipped"`
	Failed      int `json:"failed"`
}

type jsonApp struct {
	App            string              `json:"app"`
	Policy         string              `json:"policy"`
	Status         string              `json:"status"`
	Reason         string              `json:"reason"`
	ElapsedSeconds float64             `json:"elapsed_seconds"`
	Metrics        map[string]*float64 `json:"metrics"`
	Current        *jsonCounts         `json:"current"`
	Target         *jsonCounts         `json:"target"`
	Warnings       []string            `json:"warnings"`
	Actions        []jsonAction        `json:"actions"`
}

type jsonCounts struct {
	Started int `json:"started"`
	Created int `json:"created"`
}

type jsonAction struct {
	Kind      string `json:"kind"`
	MachineID string `json:"machine_id"`
	Source    string `json:"source"`
	Region    string `json:"region"`
	Started   bool   `json:"started"`
	Reason    string `json:"reason"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
}

// jsonTimeLayout is RFC 3339 in UTC with milliseconds.
const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

func toJSON(r *scale.Report) jsonReport {
	out := jsonReport{
		SchemaVersion:  JSONSchemaVersion,
		Org:            r.Org,
		Shard:          r.Shard,
		DryRun:         r.DryRun,
		StartedAt:      r.StartedAt.UTC().Format(jsonTimeLayout),
		ElapsedSeconds: seconds(r.Elapsed),
		Summary:        jsonSummary{AppsMatched: max(r.Matched, len(r.Apps))},
		Apps:           []jsonApp{},
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	for _, a := range sortedApps(r) {
		switch a.Status {
		case scale.StatusScaled:
			out.Summary.Scaled++
		case scale.StatusPlanned:
			out.Summary.Planned++
		case scale.StatusUnchanged:
			out.Summary.Unchanged++
		case scale.StatusBlocked:
			out.Summary.Blocked++
		case scale.StatusSkipped:
			out.Summary.Skipped++
		case scale.StatusFailed:
			out.Summary.Failed++
		}
		ja := jsonApp{
			App:            a.App,
			Policy:         policyName(a.Policy),
			Status:         string(a.Status),
			Reason:         a.Reason,
			ElapsedSeconds: seconds(a.Elapsed),
			Metrics:        make(map[string]*float64, len(a.Metrics)),
			Current:        counts(a, a.Current),
			Target:         counts(a, a.Target),
			Warnings:       append([]string{}, a.Warnings...),
			Actions:        make([]jsonAction, 0, len(a.Actions)),
		}
		for name, v := range a.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				ja.Metrics[name] = nil // JSON has no NaN or infinities
				continue
			}
			ja.Metrics[name] = &v
		}
		for _, ac := range a.Actions {
			ja.Actions = append(ja.Actions, jsonAction{
				Kind:      string(ac.Kind),
				MachineID: ac.MachineID,
				Source:    ac.Source,
				Region:    ac.Region,
				Started:   ac.Started,
				Reason:    ac.Reason,
				Outcome:   string(ac.Outcome),
				Error:     ac.Error,
			})
		}
		out.Apps = append(out.Apps, ja)
	}
	return out
}

// policyName is the name of an app's policy, the default's when the app
// took none (a report made without policies).
func policyName(name string) string {
	if name == "" {
		return scale.DefaultPolicyName
	}
	return name
}

// renderJSON writes the report as one indented JSON document.
// counts is a JSON count pair, null when the app's machines were not read.
func counts(a scale.AppResult, c scale.Counts) *jsonCounts {
	if !a.Observed {
		return nil
	}
	return &jsonCounts{Started: c.Started, Created: c.Created}
}

func renderJSON(w io.Writer, r *scale.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // reasons say "started 1 < target 5"
	return enc.Encode(toJSON(r))
}
