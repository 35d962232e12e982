// The prose around a report's table: the warnings and errors under it, the
// summary line, the eval report's rows and summary.

package cmd

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/superfly/fly-autoscaler/scale"
)

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
