package scale

// Action is one change to one machine, with the reason the planner chose it.
type Action struct {
	Kind ActionKind `json:"kind"`
	// MachineID is the machine acted on. For a create it is empty in the
	// plan and set to the new machine's ID once the create succeeded.
	MachineID string `json:"machine_id,omitempty"`
	// Source is, for a create, the machine whose config is cloned.
	Source string `json:"source,omitempty"`
	Region string `json:"region,omitempty"`
	// Started is, for a create, whether the new machine is launched started
	// (otherwise it is created with skip_launch).
	Started bool   `json:"started,omitempty"`
	Reason  string `json:"reason"`
}

// Plan is the planner's decision for one app: data, not behaviour.
type Plan struct {
	App      string   `json:"app"`
	Current  Counts   `json:"current"`
	Target   Counts   `json:"target"`
	Actions  []Action `json:"actions"`
	Warnings []string `json:"warnings,omitempty"`
	// Unreachable says why the target cannot be reached at all, such as a
	// created target without a machine to clone: an app whose plan has
	// no action and this reason is skipped, not reported at its target.
	Unreachable string `json:"unreachable,omitempty"`
	// Spares are, per action kind, the further machines the planner would
	// act on, in order, should a chosen one be busy (leased by someone
	// else) or fail: the applier moves on to the next spare instead of
	// giving up on the target.
	Spares map[ActionKind][]string `json:"spares,omitempty"`
	// Anchor is, when the plan creates or destroys machines, the machine
	// whose lease serialises those changes across overlapping runs: the
	// oldest machine of the group's newest release (see anchorOf), which
	// the plan never destroys and overlapping runs agree on.
	// Under its lease the applier counts the app again before acting.
	Anchor string `json:"anchor,omitempty"`
}
