package scale

import (
	"strings"
	"testing"
)

func TestSettle(t *testing.T) {
	plan := Plan{Actions: []Action{{Kind: ActionStart, MachineID: "a"}, {Kind: ActionStart, MachineID: "b"}}}
	r := func(id string, o Outcome) ActionResult {
		return ActionResult{Action: Action{Kind: ActionStart, MachineID: id}, Outcome: o, Error: map[bool]string{true: "500: boom"}[o == OutcomeFailed]}
	}
	tests := []struct {
		name    string
		results []ActionResult
		status  Status
		warning string
	}{
		{"all done", []ActionResult{r("a", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, ""},
		{"a spare made up for a failure", []ActionResult{r("a", OutcomeFailed), r("c", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, "spares stood in for failed actions: start a: 500: boom"},
		{"a failure without a spare", []ActionResult{r("a", OutcomeFailed), r("b", OutcomeDone)}, StatusFailed, ""},
		{"busy without a spare is a warning", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeDone)}, StatusScaled, "busy, leased by someone else (the next run catches up): a"},
		{"nothing done, all busy", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeBusy)}, StatusUnchanged, "busy, leased by someone else (the next run catches up): a, b"},
		{"aborted by the deadline", []ActionResult{r("a", OutcomeDone), r("b", OutcomeAborted)}, StatusFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := settle(AppResult{App: "x", Actions: tt.results}, plan)
			if got.Status != tt.status {
				t.Errorf("status %s (%s), want %s", got.Status, got.Reason, tt.status)
			}
			if w := strings.Join(got.Warnings, "|"); !strings.Contains(w, tt.warning) || (tt.warning == "" && w != "") {
				t.Errorf("warnings %q, want %q", w, tt.warning)
			}
			if tt.status == StatusFailed && !strings.Contains(got.Reason, "actions failed") {
				t.Errorf("reason %q", got.Reason)
			}
		})
	}
}
