package cmd

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

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
// the warnings, the action errors and the summary.
func renderTable(w io.Writer, r *scale.Report, o RenderOptions, re *lipgloss.Renderer) error {
	bw := bufio.NewWriter(w)
	apps := visibleApps(r, o)

	if len(apps) > 0 {
		rows := make([][]string, len(apps))
		for i, a := range apps {
			rows[i] = row(r, a)
		}
		headers := withPolicy(r.HasPolicies, columns, policyColumn)
		if o.Width > 0 {
			fitWidth(headers, rows, o.Width)
		}
		writeTable(bw, re, headers, rows, func(i int) lipgloss.Style { return rowStyle(re, apps[i]) })
	}

	warnings, errs := notes(apps)
	writeNotes(bw, re, "Warnings", warnings, o.Width)
	writeNotes(bw, re, "Action errors", errs, o.Width)

	if len(apps) > 0 || len(warnings) > 0 || len(errs) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString(summary(r) + "\n")
	if e := runError(r); e != "" {
		bw.WriteString(re.NewStyle().Foreground(colorFailed).Render(e) + "\n")
	}
	return bw.Flush()
}

// writeNotes writes the notes under a bold title, one "  app: text" line
// each, cut to width columns when width is not 0; nothing when there are
// none.
func writeNotes(bw *bufio.Writer, re *lipgloss.Renderer, title string, ns []note, width int) {
	if len(ns) == 0 {
		return
	}
	fmt.Fprintf(bw, "\n%s\n", re.NewStyle().Bold(true).Render(title+":"))
	for _, n := range ns {
		line := "  " + n.app + ": " + n.text
		if width > 0 {
			line = truncate(line, width)
		}
		bw.WriteString(line + "\n")
	}
}

// writeTable writes an aligned, borderless table: a bold header, then the
// rows, each in the style rowStyle gives it.
func writeTable(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style) {
	writeTableIn(bw, re, headers, rows, rowStyle, tableChunk)
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
func writeTableIn(bw *bufio.Writer, re *lipgloss.Renderer, headers []string, rows [][]string, rowStyle func(i int) lipgloss.Style, chunk int) {
	if len(rows) <= chunk {
		writeLines(bw, layOut(re, headers, rows, rowStyle), 0, 0)
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
		writeLines(bw, layOut(re, headers, piece, func(i int) lipgloss.Style { return rowStyle(start + min(i, end-start-1)) }), skip, 1)
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
// leaving out the first skip lines and the last drop.
func writeLines(bw *bufio.Writer, out string, skip, drop int) {
	lines := strings.Count(out, "\n") + 1
	if strings.HasSuffix(out, "\n") {
		lines--
	}
	i := 0
	for line := range strings.Lines(out) {
		if i >= skip && i < lines-drop {
			bw.WriteString(trimLineEnd(line))
			bw.WriteByte('\n')
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
