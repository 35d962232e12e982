package scale

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Budget caps the total started and the total created machines of the
// apps a run selects (their process groups). A nil cap is no cap. The
// budget only limits growth: see Allocate.
type Budget struct {
	MaxStarted, MaxCreated *int
	// Names are the caps in the caller's words (cmd names its flags);
	// unset, "the fleet's started cap" and "the fleet's created cap":
	// scale names no flag.
	Names BudgetNames
}

// BudgetNames name a Budget's caps.
type BudgetNames struct {
	MaxStarted, MaxCreated string
}

// Set reports whether b caps anything.
func (b Budget) Set() bool { return b.MaxStarted != nil || b.MaxCreated != nil }

// Share returns the part of b that shard s enforces: of N shards, each
// gets ⌊cap/N⌋, and the first cap mod N one more. The zero Shard (the
// whole fleet) gets all of it.
func (b Budget) Share(s Shard) Budget {
	if s.N <= 1 {
		return b
	}
	share := func(c *int) *int {
		if c == nil {
			return nil
		}
		n := *c / s.N
		if s.K-1 < *c%s.N {
			n++
		}
		return &n
	}
	b.MaxStarted, b.MaxCreated = share(b.MaxStarted), share(b.MaxCreated)
	return b
}

// BudgetClaim is one app's part in an allocation.
type BudgetClaim struct {
	App      string
	Priority int
	// Current are the machines the app has (zero when they could not be
	// read), Want the counts its plan reaches without a budget, Floor its
	// own minimums, granted before any priority even past the caps.
	Current, Want, Floor Counts
}

// Allocate grants each claim its counts under b. It is a pure function.
//
// For each count (created first, then started, which cannot pass the
// created count granted): every app keeps what its own target keeps, the
// least of its current count and its want (scale-downs free budget), and
// its minimum (Floor, up to its want) even past the cap; what is left of
// the cap is then granted to the apps that want more, by priority, higher
// first, and within one priority one machine at a time in app-name order,
// until the cap is used up. An app is never granted more than it wants.
//
// The warnings name the caps whose minimums passed them and the apps held
// back, with by how much.
func Allocate(b Budget, claims []BudgetClaim) ([]Counts, []string) {
	out := make([]Counts, len(claims))
	for i, c := range claims {
		out[i] = c.Want
	}
	if !b.Set() {
		return out, nil
	}
	var warnings []string
	created := make([]int, len(claims))
	want := func(i int) int { return claims[i].Want.Created }
	warnings = append(warnings, allocate(b.MaxCreated, b.Names.or(b.Names.MaxCreated, "the fleet's created cap"), "created", claims,
		func(i int) int { return claims[i].Current.Created }, want,
		func(i int) int { return claims[i].Floor.Created }, created)...)
	started := make([]int, len(claims))
	wantStarted := func(i int) int { return min(claims[i].Want.Started, created[i]) }
	warnings = append(warnings, allocate(b.MaxStarted, b.Names.or(b.Names.MaxStarted, "the fleet's started cap"), "started", claims,
		func(i int) int { return claims[i].Current.Started }, wantStarted,
		func(i int) int { return min(claims[i].Floor.Started, created[i]) }, started)...)
	for i := range out {
		out[i] = Counts{Started: started[i], Created: created[i]}
	}
	return out, warnings
}

func (n BudgetNames) or(name, def string) string {
	if name == "" {
		return def
	}
	return name
}

// allocate grants one count (what) under limit (nil: every want) into
// granted, and returns the warnings.
func allocate(limit *int, name, what string, claims []BudgetClaim, current, want, floor func(int) int, granted []int) []string {
	used := 0
	var floors []string
	for i := range claims {
		w := want(i)
		g := min(current(i), w)
		if f := min(floor(i), w); f > g {
			g = f
			floors = append(floors, fmt.Sprintf("%s min %d", claims[i].App, f))
		}
		granted[i] = g
		used += g
	}
	if limit == nil {
		for i := range claims {
			granted[i] = want(i)
		}
		return nil
	}
	var warnings []string
	if used > *limit && len(floors) > 0 {
		warnings = append(warnings, fmt.Sprintf("the apps' own minimums passed %s %d (%d %s): %s",
			name, *limit, used, what, strings.Join(floors, ", ")))
	}
	left := *limit - used
	// By priority, higher first; within one, by name.
	order := make([]int, len(claims))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(claims[b].Priority, claims[a].Priority); c != 0 {
			return c
		}
		return strings.Compare(claims[a].App, claims[b].App)
	})
	for lo := 0; lo < len(order) && left > 0; {
		hi := lo
		for hi < len(order) && claims[order[hi]].Priority == claims[order[lo]].Priority {
			hi++
		}
		// One machine at a time to each app of this priority that wants
		// more, in name order, until they have all or the cap is used.
		for left > 0 {
			gave := false
			for _, i := range order[lo:hi] {
				if left == 0 {
					break
				}
				if granted[i] < want(i) {
					granted[i]++
					left--
					gave = true
				}
			}
			if !gave {
				break
			}
		}
		lo = hi
	}
	var held []string
	for _, i := range order {
		if d := want(i) - granted[i]; d > 0 {
			held = append(held, fmt.Sprintf("%s by %d", claims[i].App, d))
		}
	}
	if len(held) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s %d held back %s: %s", name, *limit, what, strings.Join(held, ", ")))
	}
	return warnings
}

// floorOf returns the app's own minimums under t: those its min- counts
// set apart from its max- counts (a started-machine-count sets both, and
// is a demand, not a minimum).
func floorOf(x Expressions, t Targets) Counts {
	var c Counts
	if x.MinStarted != nil && x.MinStarted != x.MaxStarted && t.Started.Min != nil {
		c.Started = *t.Started.Min
	}
	if x.MinCreated != nil && x.MinCreated != x.MaxCreated && t.Created.Min != nil {
		c.Created = *t.Created.Min
	}
	return c
}

// allocateBudget allocates b over the prepared apps (see Allocate),
// plans again those held back, and finishes every pending app. It
// returns the budget's warnings.
func allocateBudget(cfg Config, b Budget, work []*appWork, now func() time.Time) []string {
	claims := make([]BudgetClaim, len(work))
	for i, w := range work {
		c := BudgetClaim{App: w.res.App, Priority: w.policy.Policy.Priority}
		if w.res.Observed {
			// An app not planned keeps what it has.
			c.Current, c.Want = w.res.Current, w.res.Current
		}
		if w.pending {
			c.Want, c.Floor = w.plan.Target, w.floor
		}
		claims[i] = c
	}
	granted, warnings := Allocate(b, claims)
	for i, w := range work {
		if !w.pending {
			continue
		}
		fleet, plan := w.full, w.plan
		w.pending, w.full = false, Fleet{}
		w.finish(cfg, fleet, plan, &granted[i], b, now())
	}
	return warnings
}

func exactly(n int) Range { return Range{Min: &n, Max: &n} }

// heldBack is an app's warning of what the budget b held back of want.
func heldBack(b Budget, want, granted Counts) []string {
	var out []string
	if granted.Created < want.Created && b.MaxCreated != nil {
		out = append(out, fmt.Sprintf("held back by %s %d: %d of %d created granted", b.Names.or(b.Names.MaxCreated, "the fleet's created cap"), *b.MaxCreated, granted.Created, want.Created))
	}
	if granted.Started < want.Started && b.MaxStarted != nil {
		out = append(out, fmt.Sprintf("held back by %s %d: %d of %d started granted", b.Names.or(b.Names.MaxStarted, "the fleet's started cap"), *b.MaxStarted, granted.Started, want.Started))
	}
	if len(out) == 0 {
		// Fewer started for lack of created machines granted.
		out = append(out, fmt.Sprintf("held back by the fleet budget: %d of %d started granted", granted.Started, want.Started))
	}
	return out
}
