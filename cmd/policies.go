package cmd

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	// The container image has no zone database: --timezone must work
	// without one.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale"
)

// policyConfig is one entry of the config file's policies: the apps it
// applies to and the per-app settings it sets. A key left out is the
// top level's (see scale.NewAppPolicy for the target expressions).
type policyConfig struct {
	Name                   string     `yaml:"name"`
	Apps                   stringList `yaml:"apps"`
	Exclude                stringList `yaml:"exclude"`
	ProcessGroup           string     `yaml:"process-group"`
	Regions                stringList `yaml:"regions"`
	StartedMachineCount    string     `yaml:"started-machine-count"`
	MinStartedMachineCount string     `yaml:"min-started-machine-count"`
	MaxStartedMachineCount string     `yaml:"max-started-machine-count"`
	CreatedMachineCount    string     `yaml:"created-machine-count"`
	MinCreatedMachineCount string     `yaml:"min-created-machine-count"`
	MaxCreatedMachineCount string     `yaml:"max-created-machine-count"`
	InitialMachineState    string     `yaml:"initial-machine-state"`
	ScaleDown              string     `yaml:"scale-down"`
	MaxScaleUp             string     `yaml:"max-scale-up"`
	MaxScaleDown           string     `yaml:"max-scale-down"`
	MaxMachines            string     `yaml:"max-machines"`
	MinStartedDuration     string     `yaml:"min-started-duration"`
	FallbackStarted        string     `yaml:"fallback-started"`
	Priority               string     `yaml:"priority"`

	// line is the line of the entry, lines the line of each of its keys:
	// every error about a policy names one.
	line  int
	lines map[string]int
}

var policyType = reflect.TypeOf(policyConfig{})

// UnmarshalYAML decodes a policy and records its lines. Unknown keys are
// checked here: the decoder's KnownFields does not reach into a type that
// decodes itself.
func (p *policyConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		kind := nodeKind(n)
		if n.Kind == yaml.ScalarNode {
			kind = yamlKindName(strings.TrimPrefix(n.Tag, "!!"))
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a policy (a mapping of keys to values), not %s", n.Line, kind)}}
	}
	known := yamlTags(policyType)
	var unknown []string
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			unknown = append(unknown, fmt.Sprintf("line %d: field %s not found in type cmd.policyConfig", k.Line, k.Value))
		}
		lines[k.Value] = k.Line
	}
	if len(unknown) > 0 {
		return &yaml.TypeError{Errors: unknown}
	}
	type plain policyConfig // without this method
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.line, p.lines = n.Line, lines
	return nil
}

// expand replaces environment references in every value, as loadFile does
// for the top level's.
func (p *policyConfig) expand(env Env) {
	for _, v := range []*string{&p.Name, &p.ProcessGroup, &p.StartedMachineCount, &p.MinStartedMachineCount,
		&p.MaxStartedMachineCount, &p.CreatedMachineCount, &p.MinCreatedMachineCount, &p.MaxCreatedMachineCount,
		&p.InitialMachineState, &p.ScaleDown, &p.MaxScaleUp, &p.MaxScaleDown, &p.MaxMachines, &p.MinStartedDuration,
		&p.FallbackStarted, &p.Priority} {
		*v = strings.TrimSpace(env.expand(*v))
	}
	for _, l := range []stringList{p.Apps, p.Exclude, p.Regions} {
		for i := range l {
			l[i] = env.expand(l[i])
		}
	}
}

// at names a key of the policy for an error: "config.yml:14: policy
// "trial": min-started-machine-count".
func (p *policyConfig) at(path, key string) string {
	line := p.line
	if l, ok := p.lines[key]; ok {
		line = l
	}
	who := fmt.Sprintf("policy %q", p.Name)
	if p.Name == "" {
		who = "policy"
	}
	if key == "" {
		return fmt.Sprintf("%s:%d: %s", path, line, who)
	}
	return fmt.Sprintf("%s:%d: %s: %s", path, line, who, key)
}

// buildPolicies validates the config file's policies and completes each
// from def, the top level's settings. metrics are the names of every
// collector's metrics. The error names the policy and its line; the
// warnings are about policies that no app of the selection can take.
//
// A problem is recorded in p; with p.all, the other policies are still
// checked, and the reachability of the ones without a problem.
func buildPolicies(path string, env Env, file *fileConfig, def scale.AppPolicy, metrics []string, sel *scale.Selector, p *problems) ([]scale.AppPolicy, []string, error) {
	var (
		out      []scale.AppPolicy
		warnings []string
		names    = map[string]int{}
		index    []int // of each policy of out in file.Policies
	)
	// The braces of all policies together: each glob has at most
	// scale.MaxAlternatives, but a file of such globs would still take
	// minutes to compile.
	alternatives := 0
	for i := range file.Policies {
		pc := &file.Policies[i]
		pc.expand(env)
		for _, g := range append(splitList(pc.Apps...), splitList(pc.Exclude...)...) {
			alternatives += scale.Alternatives(g)
		}
	}
	if alternatives > maxPolicyAlternatives {
		// Always the last problem: compiling such globs would take minutes.
		p.add(usagef("policies in %s: %d alternatives in braces in all, at most %d: list names as plain items, or use fewer, wider globs", path, alternatives, maxPolicyAlternatives))
		return nil, nil, p.err()
	}
	for i := range file.Policies {
		pc := &file.Policies[i]
		var err error
		switch prev, dup := names[pc.Name]; {
		case pc.Name == "":
			err = usagef("%s:%d: policies[%d]: name: missing: every policy needs a name, shown in the report", path, pc.line, i)
		case pc.Name == scale.DefaultPolicyName:
			err = usagef("%s: %q names the top level's settings, which the apps that match no policy take: choose another name", pc.at(path, "name"), pc.Name)
		case strings.ContainsFunc(pc.Name, unsafeInName):
			err = usagef("%s:%d: policies[%d]: name: holds a control or bidirectional formatting character: use a name of one line, of printable characters", path, pc.line, i)
		case dup:
			err = usagef("%s: the name is already used by the policy at line %d: give each policy its own name", pc.at(path, "name"), prev)
		}
		if err != nil {
			if p.add(err) {
				return nil, nil, err
			}
			continue
		}
		names[pc.Name] = pc.line

		ap, err := buildPolicy(path, pc, def, metrics, p)
		if err != nil {
			if !p.all {
				return nil, nil, err
			}
			continue
		}
		out = append(out, ap)
		index = append(index, i)
	}
	// Each policy that can never apply is a problem; with p.all, the
	// check goes on without it, to find the next.
	var undecided []int
	for len(out) > 0 {
		und, err := scale.CheckReachableBounded(out)
		if err == nil {
			undecided = und
			break
		}
		var ue *scale.UnreachableError
		if !errors.As(err, &ue) {
			err := usagef("policies in %s: %v", path, err)
			p.add(err)
			return nil, nil, err
		}
		pc := &file.Policies[index[ue.Index]]
		if len(ue.Covering) == 0 {
			err = usagef("%s: can never apply: its apps match no possible app name (lowercase letters, digits and dashes), or its exclude removes them all: fix its apps", pc.at(path, "apps"))
		} else {
			var earlier []string
			for _, name := range ue.Covering {
				if len(earlier) == maxNamed {
					earlier = append(earlier, fmt.Sprintf("and %d more", len(ue.Covering)-maxNamed))
					break
				}
				earlier = append(earlier, fmt.Sprintf("%q (line %d)", name, names[name]))
			}
			err = usagef("%s: can never apply: every app its apps match takes an earlier policy first, %s; an app takes the first policy that matches it: move this policy up, or narrow the earlier one", pc.at(path, ""), strings.Join(earlier, ", "))
		}
		if p.add(err) {
			return nil, nil, err
		}
		out, index = slices.Delete(out, ue.Index, ue.Index+1), slices.Delete(index, ue.Index, ue.Index+1)
	}
	if len(undecided) > 0 {
		var at []string
		for _, i := range undecided {
			if len(at) == maxNamed {
				at = append(at, fmt.Sprintf("and %d more", len(undecided)-maxNamed))
				break
			}
			at = append(at, fmt.Sprintf("line %d", file.Policies[index[i]].line))
		}
		warnings = append(warnings, fmt.Sprintf("policies in %s at %s: not checked for reachability: with the earlier policies their globs are too many or too tangled to decide within the check's bound; they are let through",
			path, strings.Join(at, ", ")))
	}
	// A policy that no app of the selection can take is dead in this
	// run, not wrong: the same file may serve runs that select other
	// apps. Plain names are such a narrowed run; they are not warned of.
	if _, plain := sel.Names(); !plain {
		if selected, err := scale.SelectedBy(out, sel); err == nil {
			for i, ok := range selected {
				if !ok {
					warnings = append(warnings, fmt.Sprintf("%s matches no app that the run selects", file.Policies[index[i]].at(path, "apps")))
				}
			}
		}
	}
	return out, warnings, nil
}

// unsafeInName reports whether r may not be part of a name shown in the
// report: a C0 or C1 control character (line breaks, escapes), a line or
// paragraph separator, or a bidirectional formatting character, which
// would reorder the text of the table around it (U+202E turns it
// right-to-left).
func unsafeInName(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return unicode.Is(unicode.Bidi_Control, r)
}

// printable refuses a value shown in the report (a process group, a
// region) that holds a character unsafeInName refuses; where names it.
func printable(where string, vals ...string) error {
	for _, v := range vals {
		if strings.ContainsFunc(v, unsafeInName) {
			return usagef("%s: holds a control or bidirectional formatting character: use plain text", where)
		}
	}
	return nil
}

// maxPolicyAlternatives bounds the brace alternatives of all policies'
// globs together (see buildPolicies).
const maxPolicyAlternatives = 4096

// maxNamed is how many covering policies an error names.
const maxNamed = 5

// buildPolicy validates one policy and completes it from def. Its
// problems are recorded in p (with p.all, each of its keys is checked) and
// the first is returned.
func buildPolicy(path string, pc *policyConfig, def scale.AppPolicy, metrics []string, p *problems) (scale.AppPolicy, error) {
	at := func(key string) string { return pc.at(path, key) }
	var first error
	fail := func(err error) bool {
		if err == nil {
			return false
		}
		first = cmp.Or(first, err)
		return p.add(err)
	}
	include, exclude := splitList(pc.Apps...), splitList(pc.Exclude...)
	apps, err := func() (*scale.Selector, error) {
		if len(include) == 0 {
			return nil, usagef("%s: missing: list the app names or globs the policy applies to, e.g. apps: ['trial-*']", at("apps"))
		}
		if _, err := scale.NewSelector(include, nil); err != nil {
			return nil, usagef("%s: malformed glob %v", at("apps"), err)
		}
		if _, err := scale.NewSelector(nil, exclude); err != nil {
			return nil, usagef("%s: malformed glob %v", at("exclude"), err)
		}
		for _, name := range include {
			if !scale.IsGlob(name) {
				if err := query.ValidAppName(name); err != nil {
					return nil, usagef("%s: %v", at("apps"), err)
				}
			}
		}
		apps, err := scale.NewSelector(include, exclude)
		if err != nil {
			return nil, usagef("%s: malformed glob %v", at("apps"), err)
		}
		return apps, nil
	}()
	if fail(err) {
		return scale.AppPolicy{}, err
	}

	var o scale.Overrides
	if pc.ProcessGroup != "" {
		o.Group = &pc.ProcessGroup
	}
	o.Regions = splitList(pc.Regions...)
	if err := cmp.Or(printable(at("process-group"), pc.ProcessGroup), printable(at("regions"), o.Regions...)); fail(err) {
		return scale.AppPolicy{}, err
	}
	if o.Expressions, err = policyExpressions(pc, at, metrics); fail(err) {
		return scale.AppPolicy{}, err
	}
	// In the order of the keys.
	for _, err := range []error{
		override(&o.InitialState, pc.InitialMachineState, at("initial-machine-state"), parseInitialState),
		override(&o.ScaleDown, pc.ScaleDown, at("scale-down"), parseScaleDown),
		override(&o.MaxScaleUp, pc.MaxScaleUp, at("max-scale-up"), parseCount),
		override(&o.MaxScaleDown, pc.MaxScaleDown, at("max-scale-down"), parseCount),
		override(&o.MaxMachines, pc.MaxMachines, at("max-machines"), parseMaxMachines),
		override(&o.MinStartedDuration, pc.MinStartedDuration, at("min-started-duration"), parseDuration),
		override(&o.FallbackStarted, pc.FallbackStarted, at("fallback-started"), parseFallback),
		override(&o.Priority, pc.Priority, at("priority"), parsePriority),
	} {
		if fail(err) {
			return scale.AppPolicy{}, err
		}
	}
	if first != nil {
		return scale.AppPolicy{}, first
	}
	return scale.NewAppPolicy(pc.Name, apps, o, def), nil
}

// override parses v, when set, with parse into *dst; where names the key.
func override[T any](dst **T, v, where string, parse func(string) (T, error)) error {
	if v == "" {
		return nil
	}
	x, err := parse(v)
	if err != nil {
		return usagef("%s: %v", where, err)
	}
	*dst = &x
	return nil
}

// policyExpressions compiles the target expressions a policy sets.
func policyExpressions(pc *policyConfig, at func(key string) string, metrics []string) (scale.Expressions, error) {
	var x scale.Expressions
	for _, kind := range []struct {
		one, lo, hi    string
		vOne, vLo, vHi string
		dstLo, dstHi   **scale.Expr
	}{
		{"started-machine-count", "min-started-machine-count", "max-started-machine-count",
			pc.StartedMachineCount, pc.MinStartedMachineCount, pc.MaxStartedMachineCount, &x.MinStarted, &x.MaxStarted},
		{"created-machine-count", "min-created-machine-count", "max-created-machine-count",
			pc.CreatedMachineCount, pc.MinCreatedMachineCount, pc.MaxCreatedMachineCount, &x.MinCreated, &x.MaxCreated},
	} {
		if kind.vOne != "" && (kind.vLo != "" || kind.vHi != "") {
			return x, usagef("%s: set either it or %s and %s, not both", at(kind.one), kind.lo, kind.hi)
		}
		if kind.vLo != "" && kind.vHi == "" {
			return x, usagef("%s: set together with %s, the upper bound", at(kind.lo), kind.hi)
		}
		compile := func(key, src string) (*scale.Expr, error) {
			if src == "" {
				return nil, nil
			}
			e, err := compileTarget(src, metrics)
			if err != nil {
				return nil, usagef("%s: %v", at(key), err)
			}
			return e, nil
		}
		var err error
		if kind.vOne != "" {
			if *kind.dstLo, err = compile(kind.one, kind.vOne); err != nil {
				return x, err
			}
			*kind.dstHi = *kind.dstLo
			continue
		}
		if *kind.dstLo, err = compile(kind.lo, kind.vLo); err != nil {
			return x, err
		}
		if *kind.dstHi, err = compile(kind.hi, kind.vHi); err != nil {
			return x, err
		}
	}
	return x, nil
}

// compileTarget compiles a target expression; the error lists the
// variables it may use.
func compileTarget(src string, metrics []string) (*scale.Expr, error) {
	e, err := scale.CompileExpr(src, metrics)
	if err != nil {
		return nil, fmt.Errorf("expression %q does not compile: %s (variables: %s)", src,
			firstLine(err.Error()), strings.Join(append(scale.ReservedVars(), metrics...), ", "))
	}
	return e, nil
}
