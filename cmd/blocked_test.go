package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
)

// blockedReport has one app of each success status; "b" could not reach
// its target because a deploy holds a machine.
func blockedReport() *scale.Report {
	busy := scale.ActionResult{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m2"}, Outcome: scale.OutcomeBusy, Error: "409: lease held"}
	return &scale.Report{Org: "acme", Matched: 3, StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Apps: []scale.AppResult{
		{App: "a", Status: scale.StatusUnchanged, Observed: true, Current: scale.Counts{Started: 1, Created: 2}, Target: scale.Counts{Started: 1, Created: 2}},
		{App: "b", Status: scale.StatusBlocked, Reason: "busy, leased by someone else (the next run catches up): m2", Observed: true,
			Current: scale.Counts{Started: 1, Created: 2}, Target: scale.Counts{Started: 2, Created: 2}, Actions: []scale.ActionResult{busy}},
		{App: "c", Status: scale.StatusScaled, Observed: true, Current: scale.Counts{Started: 1, Created: 2}, Target: scale.Counts{Started: 2, Created: 2},
			Actions: []scale.ActionResult{{Action: scale.Action{Kind: scale.ActionStart, MachineID: "m3"}, Outcome: scale.OutcomeDone}}},
	}}
}

func TestBlockedIsDistinctInEveryOutput(t *testing.T) {
	t.Parallel()
	rep := blockedReport()
	for _, format := range []string{FormatTable, FormatMarkdown} {
		out := string(render(t, rep, RenderOptions{Format: format}))
		if !strings.Contains(out, "blocked: busy, leased by someone else") {
			t.Errorf("%s: no blocked result for app b:\n%s", format, out)
		}
		if !strings.Contains(out, "1 scaled, 1 unchanged, 1 blocked, 0 skipped, 0 failed") {
			t.Errorf("%s: the summary does not count the blocked app apart:\n%s", format, out)
		}
	}

	var doc outputDoc
	if err := json.Unmarshal(render(t, rep, RenderOptions{Format: FormatJSON}), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Blocked != 1 || doc.Summary.Unchanged != 1 || doc.Summary.Scaled != 1 {
		t.Errorf("JSON summary %+v, want 1 blocked, 1 unchanged, 1 scaled", doc.Summary)
	}
	if a := doc.Apps[1]; a.App != "b" || a.Status != "blocked" || !strings.HasPrefix(a.Reason, "busy") {
		t.Errorf("JSON app %s: %s %q, want b blocked: busy", a.App, a.Status, a.Reason)
	}

	families, err := runRegistry(rep).Gather()
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != metricApps {
			continue
		}
		for _, m := range mf.GetMetric() {
			results[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if results["blocked"] != 1 || results["unchanged"] != 1 || results["scaled"] != 1 {
		t.Errorf("pushed %s by result %v, want blocked, unchanged and scaled 1 each", metricApps, results)
	}

	if outcome(rep) != nil {
		t.Errorf("a blocked app fails the run: %v", outcome(rep))
	}
}
