package scale

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"
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
		{"a spare made up for a failure", []ActionResult{r("a", OutcomeFailed), r("c", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, "spares or retries stood in for failed actions: start a: 500: boom"},
		{"a failure without a spare", []ActionResult{r("a", OutcomeFailed), r("b", OutcomeDone)}, StatusFailed, ""},
		{"busy without a spare blocks", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeDone)}, StatusBlocked, ""},
		{"nothing done, all busy", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeBusy)}, StatusBlocked, ""},
		{"a spare made up for a busy machine", []ActionResult{r("a", OutcomeBusy), r("c", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, "busy, leased by someone else, spares stood in: a"},
		{"busy, but a recount found the app at its target", []ActionResult{r("a", OutcomeUnneeded), r("b", OutcomeDone)}, StatusScaled, ""},
		{"aborted by the deadline", []ActionResult{r("a", OutcomeDone), r("b", OutcomeAborted)}, StatusFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statusFrom(AppResult{App: "x", Actions: tt.results}, plan)
			if got.Status != tt.status {
				t.Errorf("status %s (%s), want %s", got.Status, got.Reason, tt.status)
			}
			if w := strings.Join(got.Warnings, "|"); !strings.Contains(w, tt.warning) || (tt.warning == "" && w != "") {
				t.Errorf("warnings %q, want %q", w, tt.warning)
			}
			if tt.status == StatusFailed && !strings.Contains(got.Reason, "actions failed") {
				t.Errorf("reason %q", got.Reason)
			}
			if tt.status == StatusBlocked && !strings.HasPrefix(got.Reason, "busy, leased by someone else (the next run catches up): a") {
				t.Errorf("reason %q, want the busy machines named", got.Reason)
			}
		})
	}
}

// hangingMetrics is a metrics source whose fleet-wide query never answers.
type hangingMetrics struct{}

func (hangingMetrics) Prefetch(ctx context.Context, _ []string) { <-ctx.Done() }

func (hangingMetrics) Collect(ctx context.Context, app string) (map[string]float64, error) {
	return nil, errors.New("fleet-wide query: " + context.DeadlineExceeded.Error())
}

// noApps lists nothing: the run selects apps by name.
type noApps struct{ Apps }

func (noApps) GetAppCurrentReleaseMachines(context.Context, string) (*fly.Release, error) {
	return &fly.Release{Status: "complete"}, nil
}

type noMachines struct{ Machines }

func (noMachines) List(context.Context, string, string) ([]*fly.Machine, error) { return nil, nil }

func TestRunBoundsAHangingFleetWideQuery(t *testing.T) {
	sel, _ := NewSelector([]string{"app-a"}, nil)
	one, _ := CompileExpr("1", nil)
	cfg := Config{Selector: sel, Timeout: 200 * time.Millisecond, Expressions: Expressions{MinStarted: one, MaxStarted: one}}
	start := time.Now()
	rep := Run(context.Background(), cfg, Deps{Apps: noApps{}, Machines: noMachines{}, Metrics: hangingMetrics{}})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("run took %v with a 200ms timeout", d)
	}
	if len(rep.Apps) != 1 || rep.Apps[0].Status != StatusFailed {
		t.Errorf("apps %+v, want app-a failed", rep.Apps)
	}
}

func TestSettleNamesWokenAndBusyMachines(t *testing.T) {
	plan := Plan{Anchor: "a1", Actions: []Action{{Kind: ActionDestroy, MachineID: "b2"}, {Kind: ActionStart, MachineID: "c3"}}}
	got := statusFrom(AppResult{Actions: []ActionResult{
		{Action: Action{Kind: ActionDestroy, MachineID: "b2"}, Outcome: OutcomeBusy, Cause: CauseStartedSincePlan, Error: errStartedSincePlan.Error()},
		{Action: Action{Kind: ActionStart, MachineID: "c3"}, Outcome: OutcomeBusy, Error: "409: lease held"},
	}}, plan)
	w := strings.Join(got.Warnings, "|")
	if !strings.Contains(w, "started since the plan (the next run decides again): b2") {
		t.Errorf("warnings %q", w)
	}
	if got.Status != StatusBlocked || got.Reason != "busy, leased by someone else (the next run catches up): c3" {
		t.Errorf("status %s (%s), want blocked by c3", got.Status, got.Reason)
	}
}

func TestChangedCountsABlockedAppThatChangedSomething(t *testing.T) {
	start := ActionResult{Action: Action{Kind: ActionStart, MachineID: "a"}, Outcome: OutcomeDone}
	busy := ActionResult{Action: Action{Kind: ActionStart, MachineID: "b"}, Outcome: OutcomeBusy}
	if (&Report{Apps: []AppResult{{Status: StatusBlocked, Actions: []ActionResult{busy}}}}).Changed() {
		t.Error("a blocked app that changed nothing counts as changed")
	}
	if !(&Report{Apps: []AppResult{{Status: StatusBlocked, Actions: []ActionResult{start, busy}}}}).Changed() {
		t.Error("a blocked app that started a machine does not count as changed")
	}
}

func TestMetricsOf(t *testing.T) {
	m := map[string]float64{"rps": 1520, "cpu": 0.756, "bytes_in": 1}
	got := MetricsOf(m)
	want := MetricValues{{"bytes_in", 1}, {"cpu", 0.756}, {"rps", 1520}}
	if !slices.Equal(got, want) {
		t.Errorf("MetricsOf = %v, want %v sorted by name", got, want)
	}
	if back := got.Map(); !maps.Equal(back, m) {
		t.Errorf("Map = %v, want %v", back, m)
	}
	if MetricsOf(nil) != nil || MetricsOf(map[string]float64{}) != nil {
		t.Errorf("no metrics are not nil")
	}
}
