package scale

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unsafe"

	fly "github.com/superfly/fly-go"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// mach describes a machine for planner tests.
type mach struct {
	id, state, region string
	release           int
	group             string
	host              fly.HostStatus
	startedAgo        time.Duration
	created           string
}

func (m mach) fly() *fly.Machine {
	group := m.group
	if group == "" {
		group = "app"
	}
	region := m.region
	if region == "" {
		region = "ord"
	}
	fm := &fly.Machine{ID: m.id, State: m.state, Region: region, HostStatus: m.host, CreatedAt: m.created}
	cfg := &fly.MachineConfig{Image: "registry.fly.io/app:v1", Metadata: map[string]string{"fly_process_group": group}}
	if m.release > 0 {
		cfg.Metadata["fly_release_version"] = strconv.Itoa(m.release)
	}
	if m.host != "" && m.host != fly.HostStatusOk {
		fm.IncompleteConfig = cfg
	} else {
		fm.Config = cfg
	}
	if m.startedAgo > 0 {
		fm.Events = []*fly.MachineEvent{{Type: "start", Status: "started", Timestamp: now.Add(-m.startedAgo).UnixMilli()}}
	}
	return fm
}

func fleet(ms ...mach) Fleet {
	var list []*fly.Machine
	for _, m := range ms {
		list = append(list, m.fly())
	}
	return NewFleet("my-app", "app", list)
}

func n(i int) *int { return &i }

func exact(i int) Range { return Range{Min: n(i), Max: n(i)} }

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name    string
		fleet   Fleet
		targets Targets
		policy  Policy
		want    Plan
	}{
		{
			name:    "within range is unchanged",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}),
			targets: Targets{Started: Range{Min: n(1), Max: n(2)}},
			want:    Plan{Current: Counts{1, 2}, Target: Counts{1, 2}},
		},
		{
			name: "started below min starts suspended before stopped before created, in ID order",
			fleet: fleet(
				mach{id: "e", state: "created"},
				mach{id: "d", state: "stopped"},
				mach{id: "c", state: "stopped"},
				mach{id: "b", state: "suspended"},
				mach{id: "a", state: "started"},
			),
			targets: Targets{Started: exact(4)},
			want: Plan{Spares: map[ActionKind][]string{ActionStart: {"e"}}, Current: Counts{1, 5}, Target: Counts{4, 5}, Actions: []Action{
				{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (suspended)"},
				{Kind: ActionStart, MachineID: "c", Region: "ord", Reason: "started below target (stopped)"},
				{Kind: ActionStart, MachineID: "d", Region: "ord", Reason: "started below target (stopped)"},
			}},
		},
		{
			name:    "machines of the newest release are started first",
			fleet:   fleet(mach{id: "a", state: "stopped", release: 1}, mach{id: "b", state: "stopped", release: 2}),
			targets: Targets{Started: exact(1)},
			want: Plan{Spares: map[ActionKind][]string{ActionStart: {"a"}}, Current: Counts{0, 2}, Target: Counts{1, 2}, Actions: []Action{
				{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (stopped)"},
			}},
		},
		{
			name:    "started above max stops machines of the oldest release first",
			fleet:   fleet(mach{id: "a", state: "started", release: 2}, mach{id: "b", state: "started", release: 1}, mach{id: "c", state: "started", release: 2}),
			targets: Targets{Started: Range{Max: n(1)}},
			want: Plan{Spares: map[ActionKind][]string{ActionStop: {"c"}}, Current: Counts{3, 3}, Target: Counts{1, 3}, Actions: []Action{
				{Kind: ActionStop, MachineID: "b", Region: "ord", Reason: "started above target"},
				{Kind: ActionStop, MachineID: "a", Region: "ord", Reason: "started above target"},
			}},
		},
		{
			name:    "scale down by suspend",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "started"}),
			targets: Targets{Started: exact(1)},
			policy:  Policy{ScaleDown: ActionSuspend},
			want: Plan{Spares: map[ActionKind][]string{ActionSuspend: {"b"}}, Current: Counts{2, 2}, Target: Counts{1, 2}, Actions: []Action{
				{Kind: ActionSuspend, MachineID: "a", Region: "ord", Reason: "started above target"},
			}},
		},
		{
			name:    "started target above the machines available starts all and warns",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}),
			targets: Targets{Started: exact(6)},
			want: Plan{Current: Counts{1, 2}, Target: Counts{2, 2},
				Actions:  []Action{{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (stopped)"}},
				Warnings: []string{"target 6 started, only 2 machines: set a created count"}},
		},
		{
			name:    "created below min clones the newest release and the new machines count as started",
			fleet:   fleet(mach{id: "a", state: "started", release: 3, region: "iad"}, mach{id: "b", state: "started", release: 2, created: "2026-11-27T11:00:00Z"}),
			targets: Targets{Started: exact(4), Created: exact(4)},
			want: Plan{Anchor: "a", Current: Counts{2, 2}, Target: Counts{4, 4}, Actions: []Action{
				{Kind: ActionCreate, Source: "a", Region: "iad", Started: true, Reason: "created below target (clone of a, started)"},
				{Kind: ActionCreate, Source: "a", Region: "iad", Started: true, Reason: "created below target (clone of a, started)"},
			}},
		},
		{
			name:    "create then start converges in one plan: existing machines start first",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}),
			targets: Targets{Started: exact(3), Created: exact(4)},
			policy:  Policy{Regions: []string{"ord", "ams"}},
			want: Plan{Anchor: "a", Current: Counts{1, 2}, Target: Counts{3, 4}, Actions: []Action{
				{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (stopped)"},
				{Kind: ActionCreate, Source: "a", Region: "ord", Started: true, Reason: "created below target (clone of a, started)"},
				{Kind: ActionCreate, Source: "a", Region: "ams", Started: false, Reason: "created below target (clone of a, stopped)"},
			}},
		},
		{
			name:    "without a started target new machines follow the initial state",
			fleet:   fleet(mach{id: "a", state: "started"}),
			targets: Targets{Created: exact(2)},
			policy:  Policy{InitialState: "stopped"},
			want: Plan{Anchor: "a", Current: Counts{1, 1}, Target: Counts{1, 2}, Actions: []Action{
				{Kind: ActionCreate, Source: "a", Region: "ord", Started: false, Reason: "created below target (clone of a, stopped)"},
			}},
		},
		{
			name:    "created newest machine is the clone source when no release metadata",
			fleet:   fleet(mach{id: "a", state: "started", created: "2026-01-01T00:00:00Z"}, mach{id: "b", state: "stopped", region: "ams", created: "2026-06-01T00:00:00Z"}),
			targets: Targets{Created: exact(3)},
			want: Plan{Anchor: "a", Current: Counts{1, 2}, Target: Counts{2, 3}, Actions: []Action{
				{Kind: ActionCreate, Source: "b", Region: "ams", Started: true, Reason: "created below target (clone of b, started)"},
			}},
		},
		{
			name: "created above max destroys stopped, then suspended, then never-started, then started, never the anchor",
			fleet: fleet(
				mach{id: "a", state: "started"}, mach{id: "b", state: "created"}, mach{id: "c", state: "suspended"},
				mach{id: "d", state: "stopped"}, mach{id: "e", state: "started"},
			),
			targets: Targets{Created: exact(1)},
			want: Plan{Anchor: "a", Current: Counts{2, 5}, Target: Counts{1, 1}, Actions: []Action{
				{Kind: ActionDestroy, MachineID: "d", Region: "ord", Reason: "created above target (stopped)"},
				{Kind: ActionDestroy, MachineID: "c", Region: "ord", Reason: "created above target (suspended)"},
				{Kind: ActionDestroy, MachineID: "b", Region: "ord", Reason: "created above target (created)"},
				{Kind: ActionDestroy, MachineID: "e", Region: "ord", Reason: "created above target (started)"},
			}},
		},
		{
			name:    "the last machine is never destroyed",
			fleet:   fleet(mach{id: "a", state: "stopped"}, mach{id: "b", state: "stopped"}),
			targets: Targets{Created: exact(0), Started: exact(0)},
			want: Plan{Anchor: "a", Current: Counts{0, 2}, Target: Counts{0, 1}, Actions: []Action{
				{Kind: ActionDestroy, MachineID: "b", Region: "ord", Reason: "created above target (stopped)"},
			}},
		},
		{
			name:    "destroying started machines lowers the started count, a started target restores it",
			fleet:   fleet(mach{id: "a", state: "started", release: 1}, mach{id: "b", state: "started", release: 2}, mach{id: "c", state: "started", release: 2}),
			targets: Targets{Created: exact(2), Started: exact(2)},
			want: Plan{Anchor: "b", Current: Counts{3, 3}, Target: Counts{2, 2}, Actions: []Action{
				{Kind: ActionDestroy, MachineID: "a", Region: "ord", Reason: "created above target (started)"},
			}},
		},
		{
			name: "machines on unreachable hosts and of other groups do not count",
			fleet: fleet(
				mach{id: "a", state: "started"}, mach{id: "b", state: "stopped", host: fly.HostStatusUnreachable},
				mach{id: "c", state: "stopped", group: "worker"}, mach{id: "d", state: "stopped", host: fly.HostStatusUnknown},
			),
			targets: Targets{Started: exact(2)},
			want: Plan{Current: Counts{1, 1}, Target: Counts{1, 1},
				Warnings: []string{"target 2 started, only 1 machine: set a created count"}},
		},
		{
			name:    "suspended machines are started",
			fleet:   fleet(mach{id: "a", state: "suspended"}),
			targets: Targets{Started: exact(1)},
			want: Plan{Current: Counts{0, 1}, Target: Counts{1, 1}, Actions: []Action{
				{Kind: ActionStart, MachineID: "a", Region: "ord", Reason: "started below target (suspended)"},
			}},
		},
		{
			name:    "transitional machines count conservatively and are not acted on",
			fleet:   fleet(mach{id: "a", state: "starting"}, mach{id: "b", state: "stopping"}, mach{id: "c", state: "stopped"}, mach{id: "d", state: "replacing"}),
			targets: Targets{Started: exact(2)},
			want:    Plan{Current: Counts{2, 4}, Target: Counts{2, 4}},
		},
		{
			name:    "a machine started less than the minimum duration ago is not stopped",
			fleet:   fleet(mach{id: "a", state: "started", startedAgo: time.Minute}, mach{id: "b", state: "started", startedAgo: time.Hour}),
			targets: Targets{Started: exact(0)},
			policy:  Policy{MinStartedDuration: 10 * time.Minute},
			want: Plan{Current: Counts{2, 2}, Target: Counts{1, 2},
				Actions:  []Action{{Kind: ActionStop, MachineID: "b", Region: "ord", Reason: "started above target"}},
				Warnings: []string{"1 machine above the started target could not be taken down now (1 started less than 10m0s ago)"}},
		},
		{
			name:    "max scale up caps the started target",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}, mach{id: "c", state: "stopped"}, mach{id: "d", state: "stopped"}),
			targets: Targets{Started: exact(4)},
			policy:  Policy{MaxScaleUp: n(1)},
			want: Plan{Spares: map[ActionKind][]string{ActionStart: {"c", "d"}}, Current: Counts{1, 4}, Target: Counts{2, 4},
				Actions:  []Action{{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (stopped)"}},
				Warnings: []string{"started capped 4 → 2 by the scale-up limit"}},
		},
		{
			name:    "max scale down caps the started target",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "started"}, mach{id: "c", state: "started"}),
			targets: Targets{Started: exact(0)},
			policy:  Policy{MaxScaleDown: n(1)},
			want: Plan{Spares: map[ActionKind][]string{ActionStop: {"b", "c"}}, Current: Counts{3, 3}, Target: Counts{2, 3},
				Actions:  []Action{{Kind: ActionStop, MachineID: "a", Region: "ord", Reason: "started above target"}},
				Warnings: []string{"started capped 0 → 2 by the scale-down limit"}},
		},
		{
			name:    "min above max uses max",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}, mach{id: "c", state: "stopped"}),
			targets: Targets{Started: Range{Min: n(5), Max: n(2)}},
			want: Plan{Spares: map[ActionKind][]string{ActionStart: {"c"}}, Current: Counts{1, 3}, Target: Counts{2, 3},
				Actions:  []Action{{Kind: ActionStart, MachineID: "b", Region: "ord", Reason: "started below target (stopped)"}},
				Warnings: []string{"min started 5 is above max 2: using 2"}},
		},
		{
			name:    "an app without machines cannot grow",
			fleet:   fleet(),
			targets: Targets{Started: exact(1), Created: exact(1)},
			want: Plan{Current: Counts{0, 0}, Target: Counts{0, 0},
				Warnings:    []string{`target 1 created, no machine of group "app" to clone: deploy the app first`, "target 1 started, only 0 machines"},
				Unreachable: `no machine of group "app" to clone: deploy the app first`},
		},
		{
			name: "the anchor stays the oldest machine of the newest release when younger clones exist",
			fleet: fleet(
				mach{id: "0clone", state: "started", release: 2, created: "2026-11-27T11:00:00Z"},
				mach{id: "b", state: "started", release: 2, created: "2026-01-01T00:00:00Z"},
				mach{id: "c", state: "stopped", release: 1, created: "2025-01-01T00:00:00Z"},
			),
			targets: Targets{Created: exact(4)},
			want: Plan{Anchor: "b", Current: Counts{2, 3}, Target: Counts{3, 4}, Actions: []Action{
				{Kind: ActionCreate, Source: "b", Region: "ord", Started: true, Reason: "created below target (clone of b, started)"},
			}},
		},
		{
			name:    "destroy spares are neither the anchor nor started machines",
			fleet:   fleet(mach{id: "a", state: "stopped"}, mach{id: "b", state: "stopped"}, mach{id: "c", state: "stopped"}, mach{id: "d", state: "started"}),
			targets: Targets{Created: exact(3)},
			want: Plan{Anchor: "a", Spares: map[ActionKind][]string{ActionDestroy: {"c"}}, Current: Counts{1, 4}, Target: Counts{1, 3}, Actions: []Action{
				{Kind: ActionDestroy, MachineID: "b", Region: "ord", Reason: "created above target (stopped)"},
			}},
		},
		{
			name: "a machine the plan starts is never a destroy spare",
			fleet: fleet(mach{id: "a1", state: "started"}, mach{id: "b2", state: "stopped"},
				mach{id: "c3", state: "stopped"}, mach{id: "d4", state: "stopped"}),
			targets: Targets{Created: exact(3), Started: exact(2)},
			want: Plan{Anchor: "a1", Spares: map[ActionKind][]string{ActionStart: {"d4"}}, Current: Counts{1, 4}, Target: Counts{2, 3}, Actions: []Action{
				{Kind: ActionStart, MachineID: "c3", Region: "ord", Reason: "started below target (stopped)"},
				{Kind: ActionDestroy, MachineID: "b2", Region: "ord", Reason: "created above target (stopped)"},
			}},
		},
		{
			name:    "no targets means no change",
			fleet:   fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}),
			targets: Targets{},
			want:    Plan{Current: Counts{1, 2}, Target: Counts{1, 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.App = "my-app"
			got := NewPlan(tt.fleet, tt.targets, tt.policy, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan mismatch\n got: %s\nwant: %s", dump(got), dump(tt.want))
			}
			// Same input, same plan.
			if again := NewPlan(tt.fleet, tt.targets, tt.policy, now); !reflect.DeepEqual(got, again) {
				t.Errorf("plan is not deterministic")
			}
		})
	}
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestRecountRules(t *testing.T) {
	three := fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "stopped"}, mach{id: "c", state: "stopped"})
	for _, tt := range []struct {
		name      string
		target    int
		planned   int
		wantMore  int
		wantFewer int
	}{
		{"still needed", 5, 2, 2, 0},
		{"another run created one", 4, 2, 1, 0},
		{"another run created all", 3, 2, 0, 0},
		{"still above", 1, 2, 0, 2},
		{"another run destroyed one", 2, 2, 0, 1},
		{"never more than planned", 0, 1, 0, 1},
	} {
		p := Plan{Target: Counts{Created: tt.target}}
		if got := CreatesNeeded(three, p, tt.planned); got != tt.wantMore {
			t.Errorf("%s: CreatesNeeded = %d, want %d", tt.name, got, tt.wantMore)
		}
		if got := DestroysNeeded(three, p, tt.planned); got != tt.wantFewer {
			t.Errorf("%s: DestroysNeeded = %d, want %d", tt.name, got, tt.wantFewer)
		}
	}
}

func TestSpareRule(t *testing.T) {
	// Two started machines, one of which the plan is still to destroy, and
	// one stopped: one started machine counts toward the target.
	f := fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "started"}, mach{id: "c", state: "stopped"})
	destroyB := []Action{{Kind: ActionDestroy, MachineID: "b"}}
	for _, tt := range []struct {
		name    string
		kind    ActionKind
		target  int
		actions []Action
		want    bool
	}{
		{"start below the target", ActionStart, 3, nil, true},
		{"start at the target", ActionStart, 2, nil, false},
		{"start counts a destroy still to come", ActionStart, 2, destroyB, true},
		{"stop above the target", ActionStop, 1, nil, true},
		{"stop at the target", ActionStop, 2, nil, false},
		{"stop counts a destroy still to come", ActionStop, 1, destroyB, false},
		{"suspend above the target", ActionSuspend, 0, destroyB, true},
	} {
		p := Plan{Target: Counts{Started: tt.target}, Actions: tt.actions}
		if got := SpareNeeded(f, p, tt.kind); got != tt.want {
			t.Errorf("%s: SpareNeeded = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestStartReasonsAreShared: the reason of a start is the same string for
// every start from the same state, not a copy per action.
func TestStartReasonsAreShared(t *testing.T) {
	for _, state := range []string{"suspended", "stopped", "created"} {
		a, b := startReason(state), startReason(state)
		if a != fmt.Sprintf("started below target (%s)", state) || unsafe.StringData(a) != unsafe.StringData(b) {
			t.Errorf("%s: %q and %q are not one string", state, a, b)
		}
	}
}
