package scale

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeMetrics answers from a map; an app without an entry fails.
type fakeMetrics map[string]float64

func (fakeMetrics) Prefetch(context.Context, []string) {}

func (m fakeMetrics) Collect(_ context.Context, app string) (map[string]float64, error) {
	v, ok := m[app]
	if !ok {
		return nil, errors.New("no data")
	}
	return map[string]float64{"queue_depth": v}, nil
}

func TestEval(t *testing.T) {
	sel, err := NewSelector([]string{"b", "a", "c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, err := CompileExpr("ceil(queue_depth / 10) + started + created", []string{"queue_depth"})
	if err != nil {
		t.Fatal(err)
	}
	maxCreated, err := CompileExpr("8", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Selector: sel, Expressions: Expressions{MinStarted: started, MaxStarted: started, MaxCreated: maxCreated}}
	// Apps and Machines are nil: naming apps lists nothing, and Eval never
	// reads machines.
	rep := Eval(context.Background(), cfg, Deps{Metrics: fakeMetrics{"a": 25, "b": 0.5}})
	if rep.Err != nil || rep.Matched != 3 || len(rep.Apps) != 3 {
		t.Fatalf("report: err %v, matched %d, %d apps", rep.Err, rep.Matched, len(rep.Apps))
	}
	for i, want := range []struct {
		app     string
		started int
		fails   bool
	}{{"a", 3, false}, {"b", 1, false}, {"c", 0, true}} {
		got := rep.Apps[i]
		if got.App != want.app {
			t.Fatalf("app %d is %s, want %s", i, got.App, want.app)
		}
		if want.fails {
			if got.Err == nil || !strings.Contains(got.Err.Error(), "metrics: no data") {
				t.Errorf("%s: err %v, want the metrics error", got.App, got.Err)
			}
			continue
		}
		if got.Err != nil {
			t.Fatalf("%s: %v", got.App, got.Err)
		}
		tg := got.Targets
		if *tg.Started.Min != want.started || *tg.Started.Max != want.started || tg.Created.Min != nil || *tg.Created.Max != 8 {
			t.Errorf("%s: targets %+v, want started %d, created ≤ 8", got.App, tg, want.started)
		}
	}
	if !rep.Failed() {
		t.Error("Failed() is false with a failed app")
	}
}

// warningMetrics is a fakeMetrics whose source has warnings about some
// apps' values, as query.Set has: an app's warnings exist only once its
// Collect ran, as a Kafka group's do once its offsets were read.
type warningMetrics struct {
	fakeMetrics
	warn map[string][]string

	mu        sync.Mutex
	collected map[string]bool
}

func (m *warningMetrics) Collect(ctx context.Context, app string) (map[string]float64, error) {
	m.mu.Lock()
	m.collected[app] = true
	m.mu.Unlock()
	return m.fakeMetrics.Collect(ctx, app)
}

func (m *warningMetrics) Warnings(app string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.collected[app] {
		return nil
	}
	return slices.Clone(m.warn[app])
}

// TestEvalWarnings: Eval gives each app the warnings its metric source has
// about its values, and no other app's; a failed app keeps those about the
// values that were read.
func TestEvalWarnings(t *testing.T) {
	sel, err := NewSelector([]string{"a", "b", "c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, err := CompileExpr("ceil(queue_depth / 10)", []string{"queue_depth"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Selector: sel, Expressions: Expressions{MinStarted: started, MaxStarted: started}}
	m := &warningMetrics{
		fakeMetrics: fakeMetrics{"a": 3, "b": 12},
		warn: map[string][]string{
			"a": {"group workers-a has no committed offsets"},
			"c": {"group workers-c has no committed offsets", "second"},
		},
		collected: map[string]bool{},
	}
	rep := Eval(context.Background(), cfg, Deps{Metrics: m})
	if rep.Err != nil || len(rep.Apps) != 3 {
		t.Fatalf("report: err %v, %d apps", rep.Err, len(rep.Apps))
	}
	want := map[string][]string{
		"a": {"group workers-a has no committed offsets"},
		"b": nil,
		"c": {"group workers-c has no committed offsets", "second"},
	}
	for _, got := range rep.Apps {
		if !slices.Equal(got.Warnings, want[got.App]) {
			t.Errorf("%s: warnings %q, want %q", got.App, got.Warnings, want[got.App])
		}
		if (got.Err != nil) != (got.App == "c") {
			t.Errorf("%s: err %v", got.App, got.Err)
		}
	}
}
