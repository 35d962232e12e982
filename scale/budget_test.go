package scale

import (
	"slices"
	"strings"
	"testing"
)

func intp(n int) *int { return &n }

func TestAllocate(t *testing.T) {
	// Three paying apps (priority 10) and three trial apps (priority 0),
	// each at 1 started of 4 machines and wanting 4 started: +3 each.
	fleet := func() []BudgetClaim {
		var cs []BudgetClaim
		for _, name := range []string{"trial-c", "pay-b", "trial-a", "pay-a", "trial-b", "pay-c"} {
			prio := 0
			if strings.HasPrefix(name, "pay-") {
				prio = 10
			}
			cs = append(cs, BudgetClaim{App: name, Priority: prio, Current: Counts{Started: 1, Created: 4}, Want: Counts{Started: 4, Created: 4}})
		}
		return cs
	}
	started := func(claims []BudgetClaim, got []Counts) map[string]int {
		m := map[string]int{}
		for i, c := range claims {
			m[c.App] = got[i].Started
		}
		return m
	}
	total := func(got []Counts) (n int) {
		for _, c := range got {
			n += c.Started
		}
		return n
	}
	for _, tc := range []struct {
		name string
		cap  int
		want map[string]int
		held string // a substring of the warnings
	}{
		// The current 6 and the paying apps' need, 9: they get all of it.
		{name: "the paying apps' need", cap: 15, want: map[string]int{"pay-a": 4, "pay-b": 4, "pay-c": 4, "trial-a": 1, "trial-b": 1, "trial-c": 1},
			held: "--fleet-max-started 15 held back started: trial-a by 3, trial-b by 3, trial-c by 3"},
		// Three more: one machine to each trial app, not three to the first.
		{name: "three more", cap: 18, want: map[string]int{"pay-a": 4, "pay-b": 4, "pay-c": 4, "trial-a": 2, "trial-b": 2, "trial-c": 2},
			held: "trial-a by 2, trial-b by 2, trial-c by 2"},
		// Within one priority, one machine at a time in name order.
		{name: "part of the paying apps' need", cap: 10, want: map[string]int{"pay-a": 3, "pay-b": 2, "pay-c": 2, "trial-a": 1, "trial-b": 1, "trial-c": 1},
			held: "pay-a by 1, pay-b by 2, pay-c by 2, trial-a by 3"},
		{name: "enough for all", cap: 24, want: map[string]int{"pay-a": 4, "pay-b": 4, "pay-c": 4, "trial-a": 4, "trial-b": 4, "trial-c": 4}},
		// Below what the apps have: nobody grows, nobody shrinks.
		{name: "below the current total", cap: 3, want: map[string]int{"pay-a": 1, "pay-b": 1, "pay-c": 1, "trial-a": 1, "trial-b": 1, "trial-c": 1},
			held: "pay-a by 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := fleet()
			b := Budget{MaxStarted: intp(tc.cap), Names: BudgetNames{MaxStarted: "--fleet-max-started"}}
			got, warnings := Allocate(b, claims)
			if m := started(claims, got); !mapsEqual(m, tc.want) {
				t.Errorf("granted %v, want %v", m, tc.want)
			}
			if n := total(got); n > max(tc.cap, 6) {
				t.Errorf("total %d passes the cap %d", n, tc.cap)
			}
			if tc.held == "" && len(warnings) > 0 {
				t.Errorf("warnings %q, want none", warnings)
			}
			if tc.held != "" && !strings.Contains(strings.Join(warnings, "\n"), tc.held) {
				t.Errorf("warnings %q, want %q", warnings, tc.held)
			}
			for i, c := range got {
				if c.Created != claims[i].Want.Created {
					t.Errorf("%s: created %d, want %d (no created cap)", claims[i].App, c.Created, claims[i].Want.Created)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestAllocateScaleDownsFreeBudget: an app that shrinks frees what it
// gives up for the others in the same allocation.
func TestAllocateScaleDownsFreeBudget(t *testing.T) {
	claims := []BudgetClaim{
		{App: "busy", Priority: 0, Current: Counts{Started: 1, Created: 4}, Want: Counts{Started: 4, Created: 4}},
		{App: "idle", Priority: 0, Current: Counts{Started: 4, Created: 4}, Want: Counts{Started: 1, Created: 4}},
	}
	got, warnings := Allocate(Budget{MaxStarted: intp(5)}, claims)
	if got[0].Started != 4 || got[1].Started != 1 {
		t.Errorf("granted %v: the idle app's 3 should go to the busy one", got)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q", warnings)
	}
}

// TestAllocateMinimums: an app's own minimum is granted before any
// priority, even past the cap, with a warning that names the cap and the
// minimums; what is left goes by priority.
func TestAllocateMinimums(t *testing.T) {
	claims := []BudgetClaim{
		{App: "floor", Priority: 0, Current: Counts{Started: 0, Created: 5}, Want: Counts{Started: 5, Created: 5}, Floor: Counts{Started: 3}},
		{App: "vip", Priority: 10, Current: Counts{Started: 1, Created: 5}, Want: Counts{Started: 5, Created: 5}},
	}
	got, warnings := Allocate(Budget{MaxStarted: intp(3), Names: BudgetNames{MaxStarted: "--fleet-max-started"}}, claims)
	if got[0].Started != 3 || got[1].Started != 1 {
		t.Errorf("granted %v, want floor 3 and vip 1", got)
	}
	w := strings.Join(warnings, "\n")
	for _, want := range []string{"minimums passed --fleet-max-started 3", "floor min 3", "vip by 4"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", warnings, want)
		}
	}
	// Under the cap, the minimum first, then by priority.
	got, _ = Allocate(Budget{MaxStarted: intp(6)}, claims)
	if got[0].Started != 3 || got[1].Started != 3 {
		t.Errorf("granted %v, want floor 3 and vip 3", got)
	}
}

// TestAllocateCreated: the created cap is granted first, and a started
// count never passes the created count granted.
func TestAllocateCreated(t *testing.T) {
	claims := []BudgetClaim{
		{App: "a", Current: Counts{Started: 1, Created: 1}, Want: Counts{Started: 4, Created: 4}},
		{App: "b", Current: Counts{Started: 1, Created: 1}, Want: Counts{Started: 4, Created: 4}},
	}
	got, _ := Allocate(Budget{MaxCreated: intp(4), MaxStarted: intp(100)}, claims)
	if want := []Counts{{Started: 2, Created: 2}, {Started: 2, Created: 2}}; !slices.Equal(got, want) {
		t.Errorf("granted %v, want %v", got, want)
	}
	// No budget: every want.
	got, warnings := Allocate(Budget{}, claims)
	if got[0] != claims[0].Want || got[1] != claims[1].Want || warnings != nil {
		t.Errorf("no budget: %v %q", got, warnings)
	}
}

func TestBudgetShare(t *testing.T) {
	b := Budget{MaxStarted: intp(10), MaxCreated: intp(3)}
	var started, created []int
	for k := 1; k <= 4; k++ {
		s := b.Share(Shard{K: k, N: 4})
		started = append(started, *s.MaxStarted)
		created = append(created, *s.MaxCreated)
	}
	// ⌊10/4⌋ = 2 each, the first 10 mod 4 = 2 shards one more.
	if !slices.Equal(started, []int{3, 3, 2, 2}) || !slices.Equal(created, []int{1, 1, 1, 0}) {
		t.Errorf("shares: started %v, created %v", started, created)
	}
	if s := b.Share(Shard{}); *s.MaxStarted != 10 {
		t.Errorf("whole fleet: %d", *s.MaxStarted)
	}
	if s := (Budget{MaxStarted: intp(5)}).Share(Shard{K: 1, N: 2}); s.MaxCreated != nil {
		t.Errorf("an unset cap stays unset")
	}
}
