package cmd

// The cells of a report's row, which the table and Markdown share.

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/superfly/fly-autoscaler/scale"
)

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
