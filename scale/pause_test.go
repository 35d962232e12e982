package scale

import (
	"testing"
	"time"

	fly "github.com/superfly/fly-go"
)

func pausedMachine(id, group string, md map[string]string) *fly.Machine {
	meta := map[string]string{"fly_process_group": group}
	for k, v := range md {
		meta[k] = v
	}
	return &fly.Machine{ID: id, State: "started", HostStatus: fly.HostStatusOk, Config: &fly.MachineConfig{Metadata: meta}}
}

func TestFleetPausedAt(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	list := []*fly.Machine{
		pausedMachine("m1", "app", nil),
		pausedMachine("m2", "app", map[string]string{MetaPausedUntil: "2026-12-06T14:00:00Z", MetaPausedReason: "migration"}),
		pausedMachine("m3", "app", map[string]string{MetaPausedUntil: "2026-12-06T11:00:00Z", MetaPausedReason: "old"}),
		// Another group's pause is not this group's.
		pausedMachine("w1", "worker", map[string]string{MetaPausedUntil: "2026-12-07T00:00:00Z"}),
		pausedMachine("m4", "app", map[string]string{MetaPausedUntil: "tomorrow"}),
	}
	// An unreachable machine's mark counts: it is read from incomplete_config.
	off := pausedMachine("m5", "app", map[string]string{MetaPausedUntil: "2026-12-06T13:00:00Z"})
	off.HostStatus, off.IncompleteConfig, off.Config = "unreachable", off.Config, nil
	list = append(list, off)

	f := NewFleet("web", "app", list)
	p, ok := f.PausedAt(now)
	if !ok || p.Machine != "m2" || p.String() != "paused until 2026-12-06T14:00Z: migration" {
		t.Errorf("PausedAt = %+v %v, %q", p, ok, p.String())
	}
	if len(f.BadPauses) != 1 {
		t.Errorf("bad pauses %q", f.BadPauses)
	}
	// Once every mark has expired, nothing is paused.
	if p, ok := f.PausedAt(now.Add(2 * time.Hour)); ok {
		t.Errorf("expired pause in force: %+v", p)
	}
	// The unreachable machine's mark alone.
	g := NewFleet("web", "app", []*fly.Machine{off})
	if p, ok := g.PausedAt(now); !ok || p.String() != "paused until 2026-12-06T13:00Z" {
		t.Errorf("unreachable machine's pause: %+v %v", p, ok)
	}
}

func TestStripMarks(t *testing.T) {
	c := &fly.MachineConfig{Metadata: map[string]string{MetaPausedUntil: "x", MetaPausedReason: "y", "fas_other": "z", "fly_process_group": "app"}}
	stripMarks(c)
	if len(c.Metadata) != 1 || c.Metadata["fly_process_group"] != "app" {
		t.Errorf("metadata after strip: %v", c.Metadata)
	}
}

// TestFallbackTargets: the fallback raises the started count, never
// lowers it, and creates only within the max created count (when it
// evaluates without metrics) and max-machines.
func TestFallbackTargets(t *testing.T) {
	compile := func(src string, metrics ...string) *Expr {
		e, err := CompileExpr(src, metrics)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	list := []*fly.Machine{pausedMachine("a", "app", nil), pausedMachine("b", "app", nil)}
	f := NewFleet("web", "app", list)
	at := MomentOf(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	for _, tc := range []struct {
		name          string
		n             int
		maxCreated    *Expr
		maxMachines   int
		cur           Counts
		started, made int
	}{
		{name: "no created count: no creates", n: 5, cur: Counts{Started: 1, Created: 2}, started: 5, made: 2},
		{name: "within the max created count", n: 5, maxCreated: compile("4"), cur: Counts{Started: 1, Created: 2}, started: 5, made: 4},
		{name: "up to n only", n: 3, maxCreated: compile("10"), cur: Counts{Started: 1, Created: 2}, started: 3, made: 3},
		{name: "within max-machines", n: 5, maxCreated: compile("10"), maxMachines: 3, cur: Counts{Started: 1, Created: 2}, started: 5, made: 3},
		{name: "a max that needs metrics creates nothing", n: 5, maxCreated: compile("q * 2", "q"), cur: Counts{Started: 1, Created: 2}, started: 5, made: 2},
		{name: "never lowered", n: 1, maxCreated: compile("0"), cur: Counts{Started: 2, Created: 2}, started: 2, made: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &AppPolicy{Expressions: Expressions{MaxCreated: tc.maxCreated}, Policy: Policy{FallbackStarted: tc.n, MaxMachines: tc.maxMachines}}
			got := fallbackTargets(p, f, at, tc.cur)
			if *got.Started.Min != tc.started || got.Started.Max != nil {
				t.Errorf("started %v..%v, want at least %d", *got.Started.Min, got.Started.Max, tc.started)
			}
			if *got.Created.Min != tc.made || *got.Created.Max != tc.made {
				t.Errorf("created %d..%d, want %d", *got.Created.Min, *got.Created.Max, tc.made)
			}
		})
	}
}
