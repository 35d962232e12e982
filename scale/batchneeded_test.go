package scale

import (
	"testing"

	fly "github.com/superfly/fly-go"
)

// TestBatchNeeded: how many starts, stops or suspends a fresh count still
// calls for, with the plan's creates and destroys to come or done.
func TestBatchNeeded(t *testing.T) {
	// a started, b and c stopped, d started (to be destroyed).
	fresh := NewFleet("web", "app", []*fly.Machine{dm("a", "started"), dm("b", "stopped"), dm("c", "stopped"), dm("d", "started")})
	destroyD := Action{Kind: ActionDestroy, MachineID: "d"}
	startedCreate := Action{Kind: ActionCreate, Started: true}
	for _, tc := range []struct {
		name    string
		target  Counts
		actions []Action
		kind    ActionKind
		pending bool
		want    int
	}{
		{"starts to the target", Counts{Started: 4, Created: 4}, nil, ActionStart, false, 2},
		{"stops to the target", Counts{Started: 1, Created: 4}, nil, ActionStop, false, 1},
		{"at the target", Counts{Started: 2, Created: 4}, nil, ActionStart, false, 0},
		{"a started machine to destroy counts as gone while pending", Counts{Started: 2, Created: 3}, []Action{destroyD}, ActionStart, true, 1},
		{"and as there once destroys are done", Counts{Started: 2, Created: 3}, []Action{destroyD}, ActionStart, false, 0},
		{"started creates still needed count as started", Counts{Started: 4, Created: 5}, []Action{startedCreate}, ActionStart, true, 1},
		{"creates the fresh count no longer needs do not", Counts{Started: 4, Created: 4}, []Action{startedCreate}, ActionStart, true, 2},
		{"a stop is needed less once started creates count", Counts{Started: 2, Created: 5}, []Action{startedCreate}, ActionStop, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Plan{App: "web", Target: tc.target, Actions: tc.actions}
			if got := BatchNeeded(fresh, p, tc.kind, tc.pending); got != tc.want {
				t.Errorf("BatchNeeded = %d, want %d", got, tc.want)
			}
		})
	}
}
