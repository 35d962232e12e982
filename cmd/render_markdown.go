package cmd

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale"
)

// renderMarkdown writes the summary in bold, then a GitHub-flavoured table
// and the notes as lists: fit for a CI job summary or a pull request comment.
func renderMarkdown(w io.Writer, r *scale.Report, o RenderOptions) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "**%s**\n", mdEscape(stampedSummary(r, o)))
	if e := runError(r); e != "" {
		fmt.Fprintf(bw, "\n**%s**\n", mdEscape(e))
	}

	apps := visibleApps(r, o)
	markdownTable(bw, withPolicy(r.HasPolicies, columns, policyColumn), len(apps), func(i int) []string { return row(r, apps[i]) })

	warnings, errs := notes(apps)
	markdownNotes(bw, "Warnings", warnings)
	markdownNotes(bw, "Action errors", errs)
	return bw.Flush()
}

// markdownNotes writes the notes as a list under a bold title, each
// escaped; nothing when there are none.
func markdownNotes(bw *bufio.Writer, title string, ns []note) {
	if len(ns) == 0 {
		return
	}
	fmt.Fprintf(bw, "\n**%s**\n\n", title)
	for _, n := range ns {
		fmt.Fprintf(bw, "- %s: %s\n", mdEscape(n.app), mdEscape(n.text))
	}
}

// mdEscape puts text on one line and backslash-escapes the characters that
// would end a table cell or start inline markup or HTML.
func mdEscape(s string) string { return redact.MarkdownEscape(oneLine(s)) }

// markdownTable writes a GitHub-flavoured table of n rows after a blank
// line, each cell escaped; nothing when n is 0.
func markdownTable(bw *bufio.Writer, headers []string, n int, row func(i int) []string) {
	if n == 0 {
		return
	}
	bw.WriteString("\n| " + strings.Join(headers, " | ") + " |\n|")
	for range headers {
		bw.WriteString(" --- |")
	}
	bw.WriteByte('\n')
	for i := range n {
		cells := row(i)
		for j, c := range cells {
			cells[j] = mdEscape(c)
		}
		bw.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
}

// renderEvalMarkdown writes the evaluation as renderMarkdown writes a run:
// the summary in bold, the table, then the warnings as a list.
func renderEvalMarkdown(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "**%s**\n", mdEscape(evalSummary(r)))
	if r.Err != nil {
		fmt.Fprintf(bw, "\n**%s**\n", mdEscape("evaluation incomplete: "+r.Err.Error()))
	}
	markdownTable(bw, withPolicy(r.HasPolicies, evalColumns, policyColumn), len(apps), func(i int) []string { return evalRow(r, apps[i]) })
	markdownNotes(bw, "Warnings", evalWarnings(apps))
	return bw.Flush()
}
