package scale

import (
	"fmt"
	"sort"
	"time"

	fly "github.com/superfly/fly-go"
)

// NewPlan decides the actions that bring fleet f within targets t under policy
// p at time now. It is a pure function: same input, same plan.
//
// The created count is settled first (destroy or create), then the started
// count (start, stop or suspend), with new machines counting toward the
// started target so that one run converges.
func NewPlan(f Fleet, t Targets, p Policy, now time.Time) Plan {
	pl := planner{f: f, p: p, now: now, plan: Plan{App: f.App, Current: f.Counts()}}
	return pl.run(t)
}

type planner struct {
	f    Fleet
	p    Policy
	now  time.Time
	plan Plan
	// removed marks machines already chosen for destruction.
	removed       map[string]bool
	destroys      []Action
	destroySpares []string
	// anchor is the machine whose lease serialises creates and destroys;
	// the plan never destroys it.
	anchor *Machine
}

// anchorOf returns the oldest machine (by creation time, then ID) of the
// group's newest release, nil for an empty group. The machines a run
// creates are younger clones, a deploy updates machines in place, and the
// plan never destroys the anchor, so overlapping runs agree on it.
func anchorOf(ms []Machine) *Machine {
	var best *Machine
	for i := range ms {
		m := &ms[i]
		switch {
		case best == nil, m.ReleaseVersion > best.ReleaseVersion:
			best = m
		case m.ReleaseVersion < best.ReleaseVersion:
		case m.CreatedAt.Before(best.CreatedAt), m.CreatedAt.Equal(best.CreatedAt) && m.ID < best.ID:
			best = m
		}
	}
	return best
}

func (pl *planner) warn(format string, args ...any) {
	pl.plan.Warnings = append(pl.plan.Warnings, fmt.Sprintf(format, args...))
}

func (pl *planner) run(t Targets) Plan {
	pl.anchor = anchorOf(pl.f.Machines)
	cur := pl.plan.Current
	createdTarget := pl.target("created", cur.Created, t.Created)
	if limit := max(pl.p.maxMachines(), cur.Created); createdTarget > limit {
		pl.warn("created capped %d → %d by %s", createdTarget, limit, pl.p.Names.or(pl.p.Names.MaxMachines, "the machine limit"))
		createdTarget = limit
	}
	if createdTarget < 1 && cur.Created >= 1 {
		// The last machine is the clone source for any later scale-up.
		createdTarget = 1
	}
	startedTarget := pl.target("started", cur.Started, t.Started)

	// Settle the created count.
	destroyedStarted := 0
	if n := cur.Created - createdTarget; n > 0 {
		destroyedStarted = pl.destroy(n)
	}
	creates := 0
	var source *Machine
	if n := createdTarget - cur.Created; n > 0 {
		source = pl.cloneSource()
		if source == nil {
			pl.plan.Unreachable = fmt.Sprintf("no machine of group %q to clone: deploy the app first", pl.f.Group)
			pl.warn("target %d created, %s", createdTarget, pl.plan.Unreachable)
		} else {
			creates = n
		}
	}
	machines := cur.Created - len(pl.removed) + creates
	if startedTarget > machines && t.Started.Set() {
		hint := ""
		if !t.Created.Set() {
			hint = ": set a created count"
		}
		pl.warn("target %d started, only %s%s", startedTarget, nMachines(machines), hint)
		startedTarget = machines
	}

	// Settle the started count; new machines count toward it.
	started := cur.Started - destroyedStarted
	var starts []Action
	newStarted := 0
	if need := startedTarget - started; need > 0 && t.Started.Set() {
		starts = pl.starts(need)
		need -= len(starts)
		newStarted = min(need, creates)
		if need -= newStarted; need > 0 {
			pl.warn("target %d started, %s can be started now", startedTarget, nMachines(startedTarget-need))
		}
	}
	pl.plan.Actions = append(pl.plan.Actions, starts...)
	for i := 0; i < creates; i++ {
		launch := i < newStarted
		if !t.Started.Set() {
			launch = pl.p.InitialState != "stopped"
		}
		pl.plan.Actions = append(pl.plan.Actions, pl.create(source, i, launch))
	}
	if excess := started - startedTarget; excess > 0 && t.Started.Set() {
		pl.plan.Actions = append(pl.plan.Actions, pl.stops(excess)...)
	}
	// Destroys go last: capacity is added before it is taken away.
	pl.plan.Actions = append(pl.plan.Actions, pl.destroys...)
	// A machine the plan starts, or may start in place of another, must
	// not stand in for a destroy.
	starting := map[string]bool{}
	for _, a := range starts {
		starting[a.MachineID] = true
	}
	for _, id := range pl.plan.Spares[ActionStart] {
		starting[id] = true
	}
	for _, id := range pl.destroySpares {
		if !starting[id] {
			pl.spare(ActionDestroy, id)
		}
	}
	if creates > 0 || len(pl.destroys) > 0 {
		pl.plan.Anchor = pl.anchor.ID
	}

	pl.plan.Target = Counts{Created: cur.Created - len(pl.removed) + creates}
	pl.plan.Target.Started = started + len(starts) + countStartedCreates(pl.plan.Actions) - countKind(pl.plan.Actions, ActionStop, ActionSuspend)
	return pl.plan
}

// DemandOf returns what targets t ask of counts current before any limit
// (the step limits, max-machines, the machines there are, a fleet
// budget): each count clamped into its range, a min above the max taken
// as the max.
func DemandOf(current Counts, t Targets) Counts {
	return Counts{Started: demand(current.Started, t.Started), Created: demand(current.Created, t.Created)}
}

func demand(current int, r Range) int {
	lo, hi := 0, int(^uint(0)>>1)
	if r.Min != nil {
		lo = *r.Min
	}
	if r.Max != nil {
		hi = *r.Max
	}
	return min(max(current, min(lo, hi)), hi)
}

// target clamps current into r and applies the step limits, noting why.
func (pl *planner) target(what string, current int, r Range) int {
	lo, hi := 0, int(^uint(0)>>1)
	if r.Min != nil {
		lo = *r.Min
	}
	if r.Max != nil {
		hi = *r.Max
	}
	if lo > hi {
		pl.warn("min %s %d is above max %d: using %d", what, lo, hi, hi)
		lo = hi
	}
	want := min(max(current, lo), hi)
	if up := pl.p.MaxScaleUp; up != nil && want > current+*up {
		pl.warn("%s capped %d → %d by %s", what, want, current+*up, pl.p.Names.or(pl.p.Names.MaxScaleUp, "the scale-up limit"))
		want = current + *up
	}
	if down := pl.p.MaxScaleDown; down != nil && want < current-*down {
		pl.warn("%s capped %d → %d by %s", what, want, current-*down, pl.p.Names.or(pl.p.Names.MaxScaleDown, "the scale-down limit"))
		want = current - *down
	}
	return want
}

// tooYoung reports whether m started too recently to be taken down.
func (pl *planner) tooYoung(m Machine) bool {
	d := pl.p.MinStartedDuration
	return d > 0 && m.State == "started" && !m.StartedAt.IsZero() && pl.now.Sub(m.StartedAt) < d
}

// candidates returns the machines not yet chosen for destruction whose
// rank(state) is at least 0, ordered by rank, then by less, then by ID.
func (pl *planner) candidates(rank func(string) int, less func(a, b Machine) bool) []Machine {
	var out []Machine
	for _, m := range pl.f.Machines {
		if rank(m.State) >= 0 && !pl.removed[m.ID] {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].State), rank(out[j].State)
		if ri != rj {
			return ri < rj
		}
		if less(out[i], out[j]) {
			return true
		}
		if less(out[j], out[i]) {
			return false
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// olderRelease orders machines of older releases first: they go first.
func olderRelease(a, b Machine) bool { return a.ReleaseVersion < b.ReleaseVersion }

// newerRelease orders machines of newer releases first: they come up first.
func newerRelease(a, b Machine) bool { return a.ReleaseVersion > b.ReleaseVersion }

func (pl *planner) destroy(n int) (startedDestroyed int) {
	if pl.removed == nil {
		pl.removed = map[string]bool{}
	}
	young := 0
	var spares []string
	for _, m := range pl.candidates(destroyRank, olderRelease) {
		if pl.anchor != nil && m.ID == pl.anchor.ID {
			continue
		}
		if pl.tooYoung(m) {
			if n > 0 {
				young++
			}
			continue
		}
		if n == 0 {
			spares = append(spares, m.ID)
			continue
		}
		pl.removed[m.ID] = true
		pl.destroys = append(pl.destroys, Action{Kind: ActionDestroy, MachineID: m.ID, Region: m.Region,
			Reason: fmt.Sprintf("created above target (%s)", m.State)})
		if countsAsStarted(m.State) {
			startedDestroyed++
		}
		n--
	}
	if n > 0 {
		pl.warn("%s above the created target could not be destroyed now%s", nMachines(n), youngNote(young, pl.p.MinStartedDuration))
	}
	// Only machines that are not started may stand in for a destroy: a
	// started spare would lower the started count the rest of the plan
	// relies on. Those the plan starts are dropped later (destroySpares).
	for _, id := range spares {
		if m := pl.f.machine(id); m != nil && !countsAsStarted(m.State) {
			pl.destroySpares = append(pl.destroySpares, id)
		}
	}
	return startedDestroyed
}

func youngNote(young int, d time.Duration) string {
	if young == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d started less than %s ago)", young, d)
}

func (pl *planner) starts(n int) []Action {
	var out []Action
	for _, m := range pl.candidates(startRank, newerRelease) {
		if len(out) == n {
			pl.spare(ActionStart, m.ID)
			continue
		}
		out = append(out, Action{Kind: ActionStart, MachineID: m.ID, Region: m.Region, Reason: startReason(m.State)})
	}
	return out
}

// startReason is the reason of a start from state: one string per state a
// machine is started from, not one per action of a report that may hold
// tens of thousands.
func startReason(state string) string {
	switch state {
	case fly.MachineStateSuspended:
		return "started below target (suspended)"
	case fly.MachineStateStopped:
		return "started below target (stopped)"
	case fly.MachineStateCreated:
		return "started below target (created)"
	}
	return fmt.Sprintf("started below target (%s)", state)
}

// spare records id as a further candidate for kind.
func (pl *planner) spare(kind ActionKind, id string) {
	if pl.plan.Spares == nil {
		pl.plan.Spares = map[ActionKind][]string{}
	}
	pl.plan.Spares[kind] = append(pl.plan.Spares[kind], id)
}

func (pl *planner) stops(n int) []Action {
	kind := pl.p.ScaleDown
	if kind == "" {
		kind = ActionStop
	}
	started := func(s string) int {
		if s == "started" {
			return 0
		}
		return -1
	}
	var out []Action
	young := 0
	for _, m := range pl.candidates(started, olderRelease) {
		if pl.tooYoung(m) {
			if len(out) < n {
				young++
			}
			continue
		}
		if len(out) == n {
			pl.spare(kind, m.ID)
			continue
		}
		out = append(out, Action{Kind: kind, MachineID: m.ID, Region: m.Region, Reason: "started above target"})
	}
	if short := n - len(out); short > 0 {
		pl.warn("%s above the started target could not be taken down now%s", nMachines(short), youngNote(young, pl.p.MinStartedDuration))
	}
	return out
}

// cloneSource picks the machine new ones are cloned from: the anchor, the
// oldest machine of the app's newest release (metadata fly_release_version),
// or without release metadata the newest machine. Only a machine with a full
// config can be cloned.
func (pl *planner) cloneSource() *Machine {
	if a := pl.anchor; a != nil && a.ReleaseVersion > 0 && a.raw != nil && a.raw.Config != nil {
		return a
	}
	var best *Machine
	for i := range pl.f.Machines {
		m := &pl.f.Machines[i]
		if m.raw != nil && m.raw.Config == nil {
			continue
		}
		if pl.removed[m.ID] {
			continue
		}
		if best == nil || m.ReleaseVersion > best.ReleaseVersion ||
			(m.ReleaseVersion == best.ReleaseVersion && m.CreatedAt.After(best.CreatedAt)) {
			best = m
		}
	}
	return best
}

func (pl *planner) create(src *Machine, i int, started bool) Action {
	region := src.Region
	if len(pl.p.Regions) > 0 {
		region = pl.p.Regions[i%len(pl.p.Regions)]
	}
	state := "stopped"
	if started {
		state = "started"
	}
	return Action{Kind: ActionCreate, Source: src.ID, Region: region, Started: started,
		Reason: fmt.Sprintf("created below target (clone of %s, %s)", src.ID, state)}
}

func countKind(actions []Action, kinds ...ActionKind) int {
	n := 0
	for _, a := range actions {
		for _, k := range kinds {
			if a.Kind == k {
				n++
			}
		}
	}
	return n
}

func countStartedCreates(actions []Action) int {
	n := 0
	for _, a := range actions {
		if a.Kind == ActionCreate && a.Started {
			n++
		}
	}
	return n
}

// nMachines is "1 machine" or "n machines".
func nMachines(n int) string {
	if n == 1 {
		return "1 machine"
	}
	return fmt.Sprintf("%d machines", n)
}
