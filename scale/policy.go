package scale

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultPolicyName names the default policy: the run's own settings, which
// the apps that match no policy take.
const DefaultPolicyName = "default"

// AppPolicy is a named set of per-app settings and the apps it applies to.
// A run has a list of them, in order, and a default: every app takes the
// first policy whose Apps match its name, else the default.
type AppPolicy struct {
	Name string
	// Apps picks the policy's apps; nil for the default, which takes any.
	Apps        *Selector
	Group       string
	Expressions Expressions
	Policy      Policy
}

// Overrides are the settings a policy sets for its apps. A nil field is
// left out: the policy takes the default's.
type Overrides struct {
	Group *string
	// Expressions are inherited by kind, see NewAppPolicy.
	Expressions  Expressions
	InitialState *string
	// Regions, when nil (or empty), are the default's.
	Regions   []string
	ScaleDown *ActionKind
	// MaxScaleUp and MaxScaleDown, when set, cap the policy's steps (0
	// freezes); a policy cannot lift a cap of the default's.
	MaxScaleUp         *int
	MaxScaleDown       *int
	MaxMachines        *int
	MinStartedDuration *time.Duration
	FallbackStarted    *int
	Priority           *int
}

// NewAppPolicy returns the policy called name that applies o to apps, every
// setting o leaves out taken from def.
//
// Target expressions are inherited by kind, not one by one: a policy that
// sets any started-count expression (min or max) takes none of def's
// started-count expressions, and the same holds for the created counts.
// Otherwise a default started-machine-count (which sets both bounds) and a
// policy's min- and max- forms would be combined into a range that nobody
// wrote.
func NewAppPolicy(name string, apps *Selector, o Overrides, def AppPolicy) AppPolicy {
	p := def
	p.Name, p.Apps = name, apps
	if o.Group != nil {
		p.Group = *o.Group
	}
	x := o.Expressions
	if x.MinStarted != nil || x.MaxStarted != nil {
		p.Expressions.MinStarted, p.Expressions.MaxStarted = x.MinStarted, x.MaxStarted
	}
	if x.MinCreated != nil || x.MaxCreated != nil {
		p.Expressions.MinCreated, p.Expressions.MaxCreated = x.MinCreated, x.MaxCreated
	}
	if o.InitialState != nil {
		p.Policy.InitialState = *o.InitialState
	}
	if len(o.Regions) > 0 {
		p.Policy.Regions = o.Regions
	}
	if o.ScaleDown != nil {
		p.Policy.ScaleDown = *o.ScaleDown
	}
	if o.MaxScaleUp != nil {
		p.Policy.MaxScaleUp = o.MaxScaleUp
	}
	if o.MaxScaleDown != nil {
		p.Policy.MaxScaleDown = o.MaxScaleDown
	}
	if o.MaxMachines != nil {
		p.Policy.MaxMachines = *o.MaxMachines
	}
	if o.MinStartedDuration != nil {
		p.Policy.MinStartedDuration = *o.MinStartedDuration
	}
	if o.FallbackStarted != nil {
		p.Policy.FallbackStarted = *o.FallbackStarted
	}
	if o.Priority != nil {
		p.Policy.Priority = *o.Priority
	}
	return p
}

// defaultPolicy is the run's own settings as a policy.
func (cfg Config) defaultPolicy() AppPolicy {
	return AppPolicy{Name: DefaultPolicyName, Group: cfg.Group, Expressions: cfg.Expressions, Policy: cfg.Policy}
}

// PolicyFor returns the policy app takes: the first of cfg.Policies whose
// apps match its name, else the default.
func (cfg Config) PolicyFor(app string) AppPolicy {
	if i := cfg.policyIndex(app); i >= 0 {
		return cfg.Policies[i]
	}
	return cfg.defaultPolicy()
}

// policyIndex returns the index in cfg.Policies of the policy app takes,
// -1 for the default.
func (cfg Config) policyIndex(app string) int {
	for i, p := range cfg.Policies {
		if p.Apps != nil && p.Apps.Match(app) {
			return i
		}
	}
	return -1
}

// policies returns, for each app name, the policy it takes: one copy of
// each policy, shared by its apps, where a copy per app would hold the
// policy (about 200 bytes) as many times as the fleet has apps.
func (cfg Config) policies() func(app string) *AppPolicy {
	shared := make([]*AppPolicy, len(cfg.Policies)+1) // the default last
	index := cfg.policyIndex
	if len(cfg.Policies) > indexPolicies {
		index = newPolicyMatcher(cfg.Policies).index
	}
	return func(app string) *AppPolicy {
		i := index(app)
		if i < 0 {
			i = len(cfg.Policies)
		}
		if shared[i] == nil {
			p := cfg.PolicyFor(app)
			shared[i] = &p
		}
		return shared[i]
	}
}

// indexPolicies is the number of policies above which a run finds each
// app's policy through a policyMatcher: below, matching them in turn
// costs less than looking up the name's prefixes.
const indexPolicies = 16

// policyMatcher finds the policy an app takes without matching it against
// every policy, which costs a run the number of apps times the number of
// policies: a glob matches only names that begin with its literal prefix
// (globLiteral), so the candidates for a name are the policies with a
// glob whose prefix is one of the name's prefixes, the empty one
// included. They are matched in the policies' order, the first that
// matches wins, as in policyIndex.
type policyMatcher struct {
	policies []AppPolicy
	byPrefix map[string][]int // policy indexes, ascending
	lengths  []int            // of the prefixes, ascending
}

func newPolicyMatcher(ps []AppPolicy) *policyMatcher {
	m := &policyMatcher{policies: ps, byPrefix: map[string][]int{}}
	for i, p := range ps {
		if p.Apps == nil {
			continue
		}
		for _, pat := range p.Apps.include {
			prefix := globLiteral(pat.src).prefix
			l, seen := m.byPrefix[prefix]
			if !seen {
				m.lengths = append(m.lengths, len(prefix))
			}
			if len(l) == 0 || l[len(l)-1] != i {
				m.byPrefix[prefix] = append(l, i)
			}
		}
	}
	slices.Sort(m.lengths)
	m.lengths = slices.Compact(m.lengths)
	return m
}

// index returns the index of the policy app takes, -1 for the default.
func (m *policyMatcher) index(app string) int {
	var cand []int
	for _, k := range m.lengths {
		if k > len(app) {
			break
		}
		cand = append(cand, m.byPrefix[app[:k]]...)
	}
	slices.Sort(cand)
	for j, i := range cand {
		if j > 0 && cand[j-1] == i {
			continue
		}
		if m.policies[i].Apps.Match(app) {
			return i
		}
	}
	return -1
}

// UnreachableError is a policy that no app can take: every app name its
// apps match is matched by an earlier policy, or it matches none.
type UnreachableError struct {
	// Index is the policy's position in the list.
	Index int
	Name  string
	// Covering names the earlier policies that take the names it matches;
	// empty when it matches no app name at all.
	Covering []string
}

func (e *UnreachableError) Error() string {
	if len(e.Covering) == 0 {
		return fmt.Sprintf("policy %q can never apply: its apps match no possible app name (lowercase letters, digits and dashes), or its exclude removes them all", e.Name)
	}
	noun := "policy"
	if len(e.Covering) > 1 {
		noun = "policies"
	}
	return fmt.Sprintf("policy %q can never apply: every app it matches takes the earlier %s %s first",
		e.Name, noun, quoteList(e.Covering))
}

// quoteList quotes the first five names, and counts the others.
func quoteList(names []string) string {
	var q []string
	for i, n := range names {
		if i == 5 {
			q = append(q, fmt.Sprintf("and %d more", len(names)-i))
			break
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return strings.Join(q, ", ")
}

// CheckReachable returns an *UnreachableError for the first policy of ps
// that no app can take (see cover.go for how that is decided, and how
// sure the answer is), nil when each can apply to some app name.
func CheckReachable(ps []AppPolicy) error {
	_, err := CheckReachableBounded(ps)
	return err
}

// CheckReachableBounded is CheckReachable, and also returns the indexes
// of the policies it could not decide within its bound (cover.go), which
// it lets through. The check's time and memory are bounded whatever the
// number and the shape of the globs; near-linear in the number of policies
// when their globs begin or end with distinct text (reach.go).
func CheckReachableBounded(ps []AppPolicy) (undecided []int, err error) {
	return checkReachable(ps)
}

// SelectedBy reports, for each policy of ps, whether some app that sel
// selects can match its apps. It may say true wrongly (within its bound,
// as CheckReachableBounded), never false: a false is certain.
func SelectedBy(ps []AppPolicy, sel *Selector) ([]bool, error) {
	return selectedBy(ps, sel)
}

// Selects reports whether some app that sel selects can match p's apps. It
// may say true wrongly, never false (see cover.go): a false is certain.
func (p AppPolicy) Selects(sel *Selector) (bool, error) {
	ok, err := selectedBy([]AppPolicy{p}, sel)
	if err != nil {
		return false, err
	}
	return ok[0], nil
}
