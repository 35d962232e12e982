package cmd

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/charmbracelet/x/ansi"

	"github.com/superfly/fly-autoscaler/scale"
)

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
// the warnings, the action errors and the summary. The apps that need
// attention (failed, skipped) come last, next to the summary. With a width,
// every line fits it (see fitWidth); a reason that has no room in its row
// is written on lines of its own below it.
func renderTable(w io.Writer, r *scale.Report, o RenderOptions, re *lipgloss.Renderer) error {
	bw := bufio.NewWriter(w)
	apps := attentionLast(visibleApps(r, o))

	if len(apps) > 0 {
		rows := make([][]string, len(apps))
		statuses := make([]string, len(apps))
		for i, a := range apps {
			rows[i] = row(r, a)
			statuses[i] = statusWord(a)
		}
		headers := withPolicy(r.HasPolicies, columns, policyColumn)
		var below []string
		if o.Width > 0 {
			headers, rows, below = fitWidth(headers, rows, statuses, o.Width)
		}
		style := func(i int) lipgloss.Style { return rowStyle(re, apps[i]) }
		writeTableAfter(bw, re, headers, rows, style, func(i int) {
			if below == nil || below[i] == "" {
				return
			}
			for _, line := range wrap(below[i], o.Width-reasonIndent) {
				bw.WriteString(strings.Repeat(" ", reasonIndent) + style(i).Render(line) + "\n")
			}
		})
	}

	warnings, errs := notes(apps)
	writeNotes(bw, re, "Warnings", warnings, o.Width)
	writeNotes(bw, re, "Action errors", errs, o.Width)

	if len(apps) > 0 || len(warnings) > 0 || len(errs) > 0 {
		bw.WriteByte('\n')
	}
	for _, line := range wrapIndented(stampedSummary(r, o), o.Width, 2) {
		bw.WriteString(line + "\n")
	}
	if e := runError(r); e != "" {
		for _, line := range wrapIndented(e, o.Width, 2) {
			bw.WriteString(re.NewStyle().Foreground(colorFailed).Render(line) + "\n")
		}
	}
	return bw.Flush()
}

// reasonIndent is the indent of a reason written below its row.
const reasonIndent = 4

// attention reports whether an app's row belongs at the end of the table,
// next to the summary: it failed or was skipped.
func attention(a scale.AppResult) bool {
	return a.Status == scale.StatusFailed || a.Status == scale.StatusSkipped
}

// attentionLast returns apps with the ones that need attention moved to the
// end: the others, then the skipped, then the failed, each in name order.
// apps itself is not modified.
func attentionLast(apps []scale.AppResult) []scale.AppResult {
	rank := func(a scale.AppResult) int {
		switch a.Status {
		case scale.StatusSkipped:
			return 1
		case scale.StatusFailed:
			return 2
		}
		return 0
	}
	if slices.IsSortedFunc(apps, func(a, b scale.AppResult) int { return rank(a) - rank(b) }) {
		return apps
	}
	out := slices.Clone(apps)
	slices.SortStableFunc(out, func(a, b scale.AppResult) int { return rank(a) - rank(b) })
	return out
}

// writeNotes writes the notes under a bold title, one "  app: text" line
// each, wrapped to width columns when width is not 0; nothing when there
// are none.
func writeNotes(bw *bufio.Writer, re *lipgloss.Renderer, title string, ns []note, width int) {
	if len(ns) == 0 {
		return
	}
	fmt.Fprintf(bw, "\n%s\n", re.NewStyle().Bold(true).Render(title+":"))
	for _, n := range ns {
		for _, line := range wrapIndented("  "+n.app+": "+n.text, width, 4) {
			bw.WriteString(line + "\n")
		}
	}
}

// wrapIndented wraps text to width columns (0: no limit), the lines after
// the first indented by indent spaces.
func wrapIndented(text string, width, indent int) []string {
	if width <= 0 || lipgloss.Width(text) <= width {
		return []string{text}
	}
	lead := len(text) - len(strings.TrimLeft(text, " "))
	first := wrap(strings.TrimLeft(text, " "), width-lead)
	out := []string{strings.Repeat(" ", lead) + first[0]}
	if len(first) > 1 {
		rest := strings.Join(first[1:], " ")
		for _, line := range wrap(rest, width-indent) {
			out = append(out, strings.Repeat(" ", indent)+line)
		}
	}
	return out
}

// wrap breaks text into lines of at most width columns, between words when
// it can and inside a word longer than a line. A width below 1 counts as 1.
func wrap(text string, width int) []string {
	width = max(width, 1)
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		for lipgloss.Width(word) > width {
			if line != "" {
				lines, line = append(lines, line), ""
			}
			head := ansi.Truncate(word, width, "")
			if head == "" { // a character wider than the line
				_, size := utf8.DecodeRuneInString(word)
				head = word[:size]
			}
			lines = append(lines, head)
			word = word[len(head):]
		}
		switch {
		case line == "":
			line = word
		case lipgloss.Width(line)+1+lipgloss.Width(word) <= width:
			line += " " + word
		default:
			lines, line = append(lines, line), word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// writeTable writes an aligned, borderless table: a bold header, then the
// rows, each in the style rowStyle gives it.
func writeTable(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style) {
	writeTableIn(bw, re, headers, rows, rowStyle, tableChunk, nil)
}

// writeTableAfter is writeTable calling after(i) once row i is written.
func writeTableAfter(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style, after func(i int)) {
	writeTableIn(bw, re, headers, rows, rowStyle, tableChunk, after)
}

// tableChunk is the most rows writeTable lays out at once. The table of a
// 10,000-app run, laid out whole, held some 40 MiB while it was made (each
// cell rendered and copied several times over); in pieces, it holds a
// piece's worth, and reads the same.
const tableChunk = 256

// writeTableIn writes the table chunk rows at a time. Each piece is laid
// out with the header and a last row of the widest cell of each column,
// so that its columns are as wide as the whole table's; the lines of the
// repeated header and of that row are dropped.
//
// after, when not nil, is called once row i is written, to write lines
// below it.
func writeTableIn(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style, chunk int, after func(i int)) {
	if len(rows) <= chunk {
		writeLines(bw, layOut(re, headers, rows, rowStyle), 0, 0, rowHook(after, 0))
		return
	}
	widest := make([]string, len(headers))
	for c := range widest {
		for _, r := range rows {
			if lipgloss.Width(r[c]) > lipgloss.Width(widest[c]) {
				widest[c] = r[c]
			}
		}
	}
	for start := 0; start < len(rows); start += chunk {
		end := min(start+chunk, len(rows))
		piece := append(rows[start:end:end], widest)
		skip := 1 // the header, written with the first piece only
		if start == 0 {
			skip = 0
		}
		writeLines(bw, layOut(re, headers, piece, func(i int) lipgloss.Style { return rowStyle(start + min(i, end-start-1)) }), skip, 1, rowHook(after, start))
	}
}

// rowHook turns after, called with a row of the table, into the hook of
// writeLines, called with a line of a piece whose first row is row start
// (line 0 is the header).
func rowHook(after func(i int), start int) func(line int) {
	if after == nil {
		return nil
	}
	return func(line int) {
		if line > 0 {
			after(start + line - 1)
		}
	}
}

// layOut lays out a table: a bold header, then the rows, each in the style
// rowStyle gives it, two spaces between columns.
func layOut(re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style) string {
	header := re.NewStyle().Bold(true)
	last := len(headers) - 1
	return table.New().
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
}

// writeLines writes the lines of a laid-out table without their padding,
// leaving out the first skip lines and the last drop, calling hook (when
// not nil) with the index of each line written, once it is.
func writeLines(bw *bufio.Writer, out string, skip, drop int, hook func(line int)) {
	lines := strings.Count(out, "\n") + 1
	if strings.HasSuffix(out, "\n") {
		lines--
	}
	i := 0
	for line := range strings.Lines(out) {
		if i >= skip && i < lines-drop {
			bw.WriteString(trimLineEnd(line))
			bw.WriteByte('\n')
			if hook != nil {
				hook(i)
			}
		}
		i++
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

// appFloor is the width below which APP (and POLICY) shrink only once
// METRICS and ACTIONS are gone.
const appFloor = 20

// fitWidth fits the table in width columns. It returns the columns and the
// rows cut to fit, and the reasons that have no room left in their row
// (below[i] for row i; "" when it stayed in the row), to be written on
// lines of their own. statuses[i] is row i's status word, which RESULT
// begins with and which is never cut; nor are the counts.
//
// The columns give way in this order: ACTIONS, METRICS and RESULT shrink,
// the widest first, ACTIONS and METRICS to the width of their header,
// RESULT to its status words (each reason that no longer fits moves below
// its row); then METRICS and then ACTIONS are left out; then, with both
// back, APP and POLICY shrink to appFloor (names are shortened in the
// middle, where names of one fleet differ least), METRICS and then ACTIONS
// being left out again as needed; and last APP and POLICY shrink further. When even that is not enough the table stays wider than width.
func fitWidth(headers []string, rows [][]string, statuses []string, width int) ([]string, [][]string, []string) {
	natural := make([]int, len(headers))
	for c, h := range headers {
		natural[c] = lipgloss.Width(h)
		for _, r := range rows {
			natural[c] = max(natural[c], lipgloss.Width(r[c]))
		}
	}
	result := slices.Index(headers, "RESULT")
	statusWidth := lipgloss.Width("RESULT")
	for _, st := range statuses {
		statusWidth = max(statusWidth, lipgloss.Width(st))
	}
	// try returns the widths of the columns kept (-1: left out) with
	// the free-text columns shrunk as far as floor allows for APP and
	// POLICY, and whether the table then fits.
	try := func(drop []string, floor int) ([]int, bool) {
		widths := slices.Clone(natural)
		for _, n := range drop {
			if c := slices.Index(headers, n); c >= 0 {
				widths[c] = -1
			}
		}
		total := func() int {
			t, n := 0, 0
			for _, w := range widths {
				if w >= 0 {
					t, n = t+w, n+1
				}
			}
			return t + columnGap*max(n-1, 0)
		}
		shrink := func(least func(c int) int, names ...string) {
			var cols []int
			for _, n := range names {
				if c := slices.Index(headers, n); c >= 0 && widths[c] >= 0 {
					cols = append(cols, c)
				}
			}
			for over := total() - width; over > 0; over-- {
				widest := -1
				for _, c := range cols {
					if widths[c] > least(c) && (widest < 0 || widths[c] > widths[widest]) {
						widest = c
					}
				}
				if widest < 0 {
					return
				}
				widths[widest]--
			}
		}
		header := func(c int) int { return lipgloss.Width(headers[c]) }
		shrink(func(c int) int {
			if c == result {
				return statusWidth
			}
			return header(c)
		}, "ACTIONS", "METRICS", "RESULT")
		shrink(func(c int) int { return max(header(c), min(natural[c], floor)) }, "APP", policyColumn)
		return widths, total() <= width
	}
	// Names whole if leaving out METRICS, then ACTIONS, makes room;
	// else names down to appFloor, with as many of them as fit; else
	// shorter names.
	var widths []int
	fits := false
	for _, floor := range []int{math.MaxInt, appFloor} {
		for _, drop := range [][]string{nil, {"METRICS"}, {"METRICS", "ACTIONS"}} {
			if widths, fits = try(drop, floor); fits {
				break
			}
		}
		if fits {
			break
		}
	}
	if !fits {
		widths, _ = try([]string{"METRICS", "ACTIONS"}, 0)
	}

	below := make([]string, len(rows))
	for i, r := range rows {
		for c := range r {
			switch {
			case widths[c] < 0:
			case c == result && lipgloss.Width(r[c]) > widths[c]:
				if reason := strings.TrimPrefix(strings.TrimPrefix(r[c], statuses[i]), ": "); reason != r[c] {
					below[i] = reason
				}
				r[c] = statuses[i]
			case headers[c] == "APP" || headers[c] == policyColumn:
				r[c] = truncateMiddle(r[c], widths[c])
			default:
				r[c] = truncate(r[c], widths[c])
			}
		}
	}
	keep := func(cells []string) []string {
		var out []string
		for c, cell := range cells {
			if widths[c] >= 0 {
				out = append(out, cell)
			}
		}
		return out
	}
	for i := range rows {
		rows[i] = keep(rows[i])
	}
	return keep(headers), rows, below
}

// fitsIn reports whether columns of widths (-1: left out) fit in width.
func fitsIn(widths []int, width int) bool {
	t, n := 0, 0
	for _, w := range widths {
		if w >= 0 {
			t, n = t+w, n+1
		}
	}
	return t+columnGap*max(n-1, 0) <= width
}

// truncateMiddle cuts s to width columns by taking out its middle, marked
// with an ellipsis: "tenant-38-ent…with-long-name".
func truncateMiddle(s string, width int) string {
	w := lipgloss.Width(s)
	if w <= width {
		return s
	}
	if width < 3 {
		return truncate(s, width)
	}
	head := (width - 1) / 2
	tail := width - 1 - head
	return ansi.Truncate(s, head, "") + "…" + ansi.TruncateLeft(s, w-tail, "")
}

// truncate cuts s to width columns, marking the cut with an ellipsis.
func truncate(s string, width int) string {
	return ansi.Truncate(s, width, "…")
}

// renderEvalTable writes the evaluation as a table followed by the
// warnings, as renderTable writes a run's, and the summary.
func renderEvalTable(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult, re *lipgloss.Renderer) error {
	bw := bufio.NewWriter(w)
	if len(apps) > 0 {
		rows := make([][]string, len(apps))
		for i, a := range apps {
			rows[i] = evalRow(r, a)
		}
		failed := re.NewStyle().Foreground(colorFailed)
		writeTable(bw, re, withPolicy(r.HasPolicies, evalColumns, policyColumn), rows, func(i int) lipgloss.Style {
			if apps[i].Err != nil {
				return failed
			}
			return re.NewStyle()
		})
	}
	warnings := evalWarnings(apps)
	writeNotes(bw, re, "Warnings", warnings, 0)
	if len(apps) > 0 || len(warnings) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString(evalSummary(r) + "\n")
	if r.Err != nil {
		bw.WriteString(re.NewStyle().Foreground(colorFailed).Render("evaluation incomplete: "+oneLine(r.Err.Error())) + "\n")
	}
	return bw.Flush()
}
