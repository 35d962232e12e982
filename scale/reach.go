package scale

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gobwas/glob/syntax"
	"github.com/gobwas/glob/syntax/ast"
)

// The reachability check asks, of each policy, whether an app name matches
// it before every earlier policy (cover.go). Asked of every earlier policy
// at once, the questions cost the square of the number of policies or
// worse; but two globs can only match a common name when the text each
// begins with is a prefix of the other's, and likewise for the text they
// end with. An index of the policies' globs by that text finds, for each
// policy, the few earlier ones that may take its names, and only those
// enter its question. A policy of plain names is decided without automata:
// each name is matched against those earlier policies.

// literal is the fixed text a glob's names begin and end with; exact when
// the glob is that text alone, a plain name.
type literal struct {
	prefix, suffix string
	exact          bool
}

// globLiteral reads the literal of a glob that glob.Compile accepts.
func globLiteral(src string) literal {
	tree, err := syntax.Parse(src)
	if err != nil || tree.Kind != ast.KindPattern {
		return literal{}
	}
	text := func(n *ast.Node) (string, bool) {
		if n.Kind == ast.KindText {
			return n.Value.(ast.Text).Text, true
		}
		return "", false
	}
	var l literal
	ch := tree.Children
	i := 0
	for ; i < len(ch); i++ {
		t, ok := text(ch[i])
		if !ok {
			break
		}
		l.prefix += t
	}
	if i == len(ch) {
		return literal{prefix: l.prefix, suffix: l.prefix, exact: true}
	}
	j := len(ch)
	for j > i {
		if _, ok := text(ch[j-1]); !ok {
			break
		}
		j--
	}
	for _, n := range ch[j:] {
		t, _ := text(n)
		l.suffix += t
	}
	return l
}

// compatible reports whether two globs may match a common name, as far as
// their literals tell.
func compatible(a, b literal) bool {
	return (strings.HasPrefix(a.prefix, b.prefix) || strings.HasPrefix(b.prefix, a.prefix)) &&
		(strings.HasSuffix(a.suffix, b.suffix) || strings.HasSuffix(b.suffix, a.suffix))
}

// globIndex finds the globs whose key is a prefix of a given key, or has
// it as a prefix: the key is a glob's literal prefix, or its literal
// suffix reversed.
type globIndex struct {
	keys []string
	refs []int // the policy of each key
}

type globRef struct {
	key    string
	policy int
}

func newGlobIndex(refs []globRef) globIndex {
	slices.SortStableFunc(refs, func(a, b globRef) int { return strings.Compare(a.key, b.key) })
	ix := globIndex{keys: make([]string, len(refs)), refs: make([]int, len(refs))}
	for i, r := range refs {
		ix.keys[i], ix.refs[i] = r.key, r.policy
	}
	return ix
}

// ranges returns the ranges of ix holding the keys that key extends, then
// the keys that extend key.
func (ix globIndex) ranges(key string) [][2]int {
	var out [][2]int
	for k := range len(key) {
		lo := sort.SearchStrings(ix.keys, key[:k])
		hi := sort.Search(len(ix.keys), func(i int) bool { return ix.keys[i] > key[:k] })
		if hi > lo {
			out = append(out, [2]int{lo, hi})
		}
	}
	lo := sort.SearchStrings(ix.keys, key)
	hi := lo + sort.Search(len(ix.keys)-lo, func(i int) bool { return !strings.HasPrefix(ix.keys[lo+i], key) })
	if hi > lo {
		out = append(out, [2]int{lo, hi})
	}
	return out
}

func size(rs [][2]int) int {
	n := 0
	for _, r := range rs {
		n += r[1] - r[0]
	}
	return n
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// policyIndex is the globs of a list of policies, by literal.
type policyIndex struct {
	lits             [][]literal // of each policy's include globs
	byPrefix, bySufx globIndex
	stamp            []int // scratch of related
	round            int
}

func newPolicyIndex(sels []*Selector) *policyIndex {
	ix := &policyIndex{lits: make([][]literal, len(sels)), stamp: make([]int, len(sels))}
	var pre, suf []globRef
	for i, s := range sels {
		for _, p := range s.include {
			l := globLiteral(p.src)
			ix.lits[i] = append(ix.lits[i], l)
			pre = append(pre, globRef{l.prefix, i})
			suf = append(suf, globRef{reverse(l.suffix), i})
		}
	}
	ix.byPrefix, ix.bySufx = newGlobIndex(pre), newGlobIndex(suf)
	return ix
}

// related returns, in order, the policies before the index before whose
// globs may match a name that one of the globs lits matches. b is charged
// for the entries looked at.
func (ix *policyIndex) related(lits []literal, before int, b *budget) []int {
	ix.round++
	var out []int
	for _, l := range lits {
		pre, suf := ix.byPrefix.ranges(l.prefix), ix.bySufx.ranges(reverse(l.suffix))
		rs, refs := pre, ix.byPrefix.refs
		if size(suf) < size(pre) {
			rs, refs = suf, ix.bySufx.refs
		}
		for _, r := range rs {
			b.steps -= int64(r[1] - r[0])
			for _, j := range refs[r[0]:r[1]] {
				if j >= before || ix.stamp[j] == ix.round {
					continue
				}
				if slices.ContainsFunc(ix.lits[j], func(m literal) bool { return compatible(l, m) }) {
					ix.stamp[j] = ix.round
					out = append(out, j)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// matchCost is what matching a name with a Selector is charged, in steps.
const matchCost = 10

// appNameShaped reports whether s is a string of app-name characters, as
// the search considers: cover.go.
func appNameShaped(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(appNameChars, r) })
}

// checkReachable is CheckReachableBounded.
func checkReachable(ps []AppPolicy) (undecided []int, err error) {
	return checkReachableWithin(ps, newBudget())
}

// checkReachableWithin is checkReachable within the budget b.
func checkReachableWithin(ps []AppPolicy, b *budget) (undecided []int, err error) {
	sels := make([]*Selector, len(ps))
	for i, p := range ps {
		sels[i] = p.Apps
	}
	ix := newPolicyIndex(sels)
	compiled := make([]*selection, len(ps))
	compile := func(i int) (selection, error) {
		if compiled[i] == nil {
			s, err := newSelection(ps[i].Apps)
			if err != nil {
				return s, fmt.Errorf("policy %q: %w", ps[i].Name, err)
			}
			compiled[i] = &s
		}
		return *compiled[i], nil
	}
	for i := range ps {
		if b.spent() {
			for k := i; k < len(ps); k++ {
				undecided = append(undecided, k)
			}
			return undecided, nil
		}
		related := ix.related(ix.lits[i], i, b)
		var (
			reachable, decided bool
			covering           []int
		)
		switch {
		case plainNames(ix.lits[i]):
			reachable, covering = namesReachable(ps, i, related, b)
			decided = true
		case len(related) == 0 && len(ps[i].Apps.exclude) == 0:
			// Alone: reachable when one of its globs matches some name.
			si, err := compile(i)
			if err != nil {
				return nil, err
			}
			reachable = slices.ContainsFunc(si.include, (*automaton).nonEmpty)
			decided = true
		default:
			si, err := compile(i)
			if err != nil {
				return nil, err
			}
			out := make([]selection, 0, len(related))
			for _, j := range related {
				sj, err := compile(j)
				if err != nil {
					return nil, err
				}
				out = append(out, sj)
			}
			reachable, decided = true, false
			if _, ok, done := search([]selection{si}, out, b); done {
				reachable, decided = ok, true
			}
			if !reachable {
				for k, j := range related {
					if _, ok, _ := search([]selection{si, out[k]}, nil, b); ok {
						covering = append(covering, j)
					}
				}
			}
		}
		if !decided {
			undecided = append(undecided, i)
			continue
		}
		if !reachable {
			e := &UnreachableError{Index: i, Name: ps[i].Name}
			for _, j := range covering {
				e.Covering = append(e.Covering, ps[j].Name)
			}
			return undecided, e
		}
	}
	return undecided, nil
}

func plainNames(lits []literal) bool {
	return !slices.ContainsFunc(lits, func(l literal) bool { return !l.exact })
}

// namesReachable decides policy i, whose apps are plain names: reachable
// when one of them, an app name its exclude leaves, matches none of the
// related earlier policies. covering, when it is not, are the related
// policies that match one of its names.
func namesReachable(ps []AppPolicy, i int, related []int, b *budget) (reachable bool, covering []int) {
	p := ps[i].Apps
	var names []string
	for _, pat := range p.include {
		name := globLiteral(pat.src).prefix
		if appNameShaped(name) && !p.excluded(name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		taken := false
		for _, j := range related {
			b.steps -= matchCost
			if ps[j].Apps.Match(name) {
				taken = true
				break
			}
		}
		if !taken {
			return true, nil
		}
	}
	for _, j := range related {
		if slices.ContainsFunc(names, ps[j].Apps.Match) {
			covering = append(covering, j)
		}
	}
	return false, covering
}

// selectedBy is SelectedBy.
func selectedBy(ps []AppPolicy, sel *Selector) ([]bool, error) {
	out := make([]bool, len(ps))
	if names, plain := sel.Names(); plain {
		for i, p := range ps {
			out[i] = slices.ContainsFunc(names, p.Apps.Match)
		}
		return out, nil
	}
	a, err := newSelection(sel)
	if err != nil {
		return nil, err
	}
	var lits []literal
	for _, p := range sel.include {
		lits = append(lits, globLiteral(p.src))
	}
	b := newBudget()
	// A selection that takes every name (--apps '*') selects every
	// policy that can apply, as the reachability check made sure each
	// can.
	if len(sel.exclude) == 0 && slices.ContainsFunc(a.include, func(g *automaton) bool { d := g.det(b); return d.universal(d.start, b) }) {
		for i := range out {
			out[i] = true
		}
		return out, nil
	}
	for i, p := range ps {
		out[i] = true
		related := false
		for _, q := range p.Apps.include {
			l := globLiteral(q.src)
			related = related || slices.ContainsFunc(lits, func(m literal) bool { return compatible(l, m) })
		}
		if !related {
			out[i] = false
			continue
		}
		s, err := newSelection(p.Apps)
		if err != nil {
			return nil, err
		}
		if _, ok, done := search([]selection{a, s}, nil, b); done {
			out[i] = ok
		}
	}
	return out, nil
}
