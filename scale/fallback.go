package scale

// fallbackTargets are the targets of an app whose metrics could not be
// read: its started count raised to the policy's FallbackStarted, never
// lowered; its created count raised only as far as that needs, within
// its max created count (when that evaluates without metrics) and
// max-machines, never lowered either.
func fallbackTargets(p *AppPolicy, f Fleet, at Moment, cur Counts) Targets {
	n := max(p.Policy.FallbackStarted, cur.Started)
	created := cur.Created
	if x := p.Expressions; x.MaxCreated != nil {
		ct, err := Expressions{MaxCreated: x.MaxCreated}.Evaluate(nil, f, at)
		if err == nil && ct.Created.Max != nil {
			created = max(cur.Created, min(n, *ct.Created.Max, p.Policy.maxMachines()))
		}
	}
	return Targets{Started: Range{Min: &n}, Created: Range{Min: &created, Max: &created}}
}
