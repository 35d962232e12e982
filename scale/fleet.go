package scale

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	fly "github.com/superfly/fly-go"
)

// DefaultProcessGroup is the process group scaled when none is configured.
const DefaultProcessGroup = "app"

// Machine is the planner's view of one machine: what the rules need and
// nothing that requires I/O to compute.
type Machine struct {
	ID     string
	State  string
	Region string
	// ReleaseVersion is the fly_release_version metadata, 0 when absent.
	ReleaseVersion int
	CreatedAt      time.Time
	// StartedAt is the time of the machine's most recent start event, zero
	// when it has none.
	StartedAt time.Time

	raw *fly.Machine
}

// Raw returns the machine as the Machines API returned it.
func (m Machine) Raw() *fly.Machine { return m.raw }

// Fleet is a snapshot of one app's process group: the machines that count,
// sorted by ID.
type Fleet struct {
	App   string
	Group string
	// Machines are the group's machines on reachable hosts, sorted by ID,
	// without destroyed or destroying ones.
	Machines []Machine
	// Unreachable counts the group's machines left out because their host
	// did not answer (host_status other than ok).
	Unreachable int
	// OtherGroups counts machines of other process groups, left out.
	OtherGroups int
	// Pauses are the pause marks of the group's machines, unreachable
	// ones included (see PausedAt); BadPauses the machines whose mark is
	// not a time, with the value.
	Pauses    []Pause
	BadPauses []string
}

// NewFleet builds the snapshot of app's process group from the Machines API's
// list. Machines on unreachable hosts and of other groups do not count.
func NewFleet(app, group string, list []*fly.Machine) Fleet {
	if group == "" {
		group = DefaultProcessGroup
	}
	f := Fleet{App: app, Group: group}
	for _, fm := range list {
		if fm == nil || gone(fm.State) {
			continue
		}
		if processGroup(fm) != group {
			f.OtherGroups++
			continue
		}
		if p, ok, bad := pauseOf(fm); ok {
			f.Pauses = append(f.Pauses, p)
		} else if bad != "" {
			f.BadPauses = append(f.BadPauses, fmt.Sprintf("%s: %s %q is not an RFC 3339 time, ignored", fm.ID, MetaPausedUntil, bad))
		}
		// A missing host_status is taken as reachable: the field is
		// absent from some answers, and ignoring every machine then would
		// look like an empty app.
		if fm.HostStatus != "" && fm.HostStatus != fly.HostStatusOk {
			f.Unreachable++
			continue
		}
		f.Machines = append(f.Machines, newMachine(fm))
	}
	sort.Slice(f.Machines, func(i, j int) bool { return f.Machines[i].ID < f.Machines[j].ID })
	return f
}

func newMachine(fm *fly.Machine) Machine {
	m := Machine{ID: fm.ID, State: fm.State, Region: fm.Region, raw: fm}
	if v, err := strconv.Atoi(fm.GetMetadataByKey("fly_release_version")); err == nil {
		m.ReleaseVersion = v
	}
	if t, err := time.Parse(time.RFC3339, fm.CreatedAt); err == nil {
		m.CreatedAt = t
	}
	for _, e := range fm.Events {
		if e != nil && e.Type == "start" && e.Status == fly.MachineStateStarted {
			if t := e.Time(); t.After(m.StartedAt) {
				m.StartedAt = t
			}
		}
	}
	return m
}

func processGroup(fm *fly.Machine) string {
	g := fm.GetConfig().ProcessGroup()
	if g == "" {
		// Machines created outside fly deploy carry no group; they belong
		// to the default one, as flyctl treats them.
		return DefaultProcessGroup
	}
	return g
}

// gone reports whether a machine in state s no longer exists for scaling.
func gone(s string) bool {
	switch s {
	case fly.MachineStateDestroyed, fly.MachineStateDestroying, "replaced", "migrated":
		return true
	}
	return false
}

// countsAsStarted reports whether a machine in state s is counted as started.
// Transitional states count conservatively: a machine on its way up is
// started (so it is not started twice), one on its way down is not (so
// another is not stopped in its place).
func countsAsStarted(s string) bool {
	switch s {
	case fly.MachineStateStarted, "starting", "restarting", "updating", "replacing":
		return true
	}
	return false
}

// startRank orders the states a machine can be started from: suspended
// machines resume fastest, then stopped ones, then never-started ones.
// Other states cannot be started (-1).
func startRank(s string) int { return slices.Index(startOrder, s) }

var startOrder = []string{fly.MachineStateSuspended, fly.MachineStateStopped, fly.MachineStateCreated}

// destroyRank orders the states a machine is destroyed from: stopped first,
// then suspended, then never-started, then started. Others are left alone (-1).
func destroyRank(s string) int { return slices.Index(destroyOrder, s) }

var destroyOrder = []string{fly.MachineStateStopped, fly.MachineStateSuspended, fly.MachineStateCreated, fly.MachineStateStarted}

// Counts returns the started and created counts of the fleet.
func (f Fleet) Counts() Counts {
	c := Counts{Created: len(f.Machines)}
	for _, m := range f.Machines {
		if countsAsStarted(m.State) {
			c.Started++
		}
	}
	return c
}

// Vars returns the fleet's counts as expression variables: started, stopped,
// suspended and created (every machine of the group).
func (f Fleet) Vars() map[string]float64 {
	v := map[string]float64{VarStarted: 0, VarStopped: 0, VarSuspended: 0, VarCreated: float64(len(f.Machines))}
	for _, m := range f.Machines {
		switch {
		case countsAsStarted(m.State):
			v[VarStarted]++
		case m.State == fly.MachineStateStopped || m.State == "stopping":
			v[VarStopped]++
		case m.State == fly.MachineStateSuspended || m.State == "suspending":
			v[VarSuspended]++
		}
	}
	return v
}

// Names of the fleet variables every expression can use.
const (
	VarStarted   = "started"
	VarStopped   = "stopped"
	VarSuspended = "suspended"
	VarCreated   = "created"
)

// FleetVars lists the fleet variable names.
var FleetVars = []string{VarStarted, VarStopped, VarSuspended, VarCreated}

// forActions returns the fleet without the Machines API records that p
// and what follows it do not read again, for an app that holds its fleet
// while others are planned (a run that plans every app before acting on
// any) or while its plan waits for the fleet budget: a whole record
// (config, checks, events) is several times the size of what the rules
// read. Two kinds are kept:
//   - p's clone sources', whose config a create copies. The budget never
//     grants an app more than p's counts, so the plan made once it is
//     allocated creates no more than p, and a plan that creates removes no
//     machine, so it clones from the same one;
//   - those without a config (they are small): cloneSource passes over
//     them, and must go on doing so, where a machine without a record is
//     a candidate.
func (f Fleet) forActions(p Plan) Fleet {
	sources := map[string]bool{}
	for _, a := range p.Actions {
		if a.Kind == ActionCreate {
			sources[a.Source] = true
		}
	}
	ms := slices.Clone(f.Machines)
	for i := range ms {
		if ms[i].raw != nil && ms[i].raw.Config != nil && !sources[ms[i].ID] {
			ms[i].raw = nil
		}
	}
	f.Machines = ms
	return f
}

// machine returns the machine with id, or nil.
func (f Fleet) machine(id string) *Machine {
	for i := range f.Machines {
		if f.Machines[i].ID == id {
			return &f.Machines[i]
		}
	}
	return nil
}
