package scale

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"
)

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
