package scale

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gobwas/glob/syntax"
	"github.com/gobwas/glob/syntax/ast"
)

// This file decides questions about the sets of app names that globs
// match: "does some app name match this policy before any earlier one?".
// Each glob is compiled, from gobwas/glob's own syntax tree so that it means
// what Selector.Match means, into a small nondeterministic automaton, made
// deterministic as it is explored; the automata of a question run side by
// side over every string of app-name characters, breadth first, until a
// string answers the question or every combination of their states has
// been seen. A combination from which no string can answer (a glob that
// must match can no longer, or one that must not already matches every
// extension) is not explored further.
//
// The answer is exact over strings of lowercase letters, digits and dashes,
// the characters of a Fly app name. It ignores the other rules of a name
// (1 to 63 characters, no leading dash): a witness may be a string no app
// can be called, so "found" may be wrong, never "not found". A question
// whose automata have more than maxCoverStates combinations of states is
// answered "found" too. Both errors lean the same way: a policy is only
// called unreachable when that is certain.

// appNameChars are the characters of a Fly app name.
const appNameChars = "abcdefghijklmnopqrstuvwxyz0123456789-"

// maxCoverStates bounds the search: globs of a handful of wildcards each
// stay far below it.
const maxCoverStates = 100_000

// automaton is a glob as a Thompson automaton over bytes. Every state has
// at most one byte-consuming edge (to next[s] on a byte that step[s]
// accepts) and any number of empty edges.
type automaton struct {
	step   []func(c byte) bool
	next   []int
	eps    [][]int
	start  int
	accept int
	d      *dfa // the deterministic form, see det
}

// compileAutomaton builds the automaton of a glob; src must compile with
// glob.Compile.
func compileAutomaton(src string) (*automaton, error) {
	tree, err := syntax.Parse(src)
	if err != nil {
		return nil, err
	}
	a := &automaton{}
	a.start, a.accept = a.build(tree)
	return a, nil
}

func (a *automaton) state() int {
	a.step = append(a.step, nil)
	a.next = append(a.next, -1)
	a.eps = append(a.eps, nil)
	return len(a.step) - 1
}

// edge adds a consuming edge from a new state to another new one.
func (a *automaton) edge(match func(c byte) bool) (in, out int) {
	in, out = a.state(), a.state()
	a.step[in], a.next[in] = match, out
	return in, out
}

// build returns the entry and exit states of the automaton of node n.
func (a *automaton) build(n *ast.Node) (in, out int) {
	switch n.Kind {
	case ast.KindPattern:
		in = a.state()
		out = in
		for _, c := range n.Children {
			cin, cout := a.build(c)
			a.eps[out] = append(a.eps[out], cin)
			out = cout
		}
		return in, out
	case ast.KindAnyOf:
		in, out = a.state(), a.state()
		for _, c := range n.Children {
			cin, cout := a.build(c)
			a.eps[in] = append(a.eps[in], cin)
			a.eps[cout] = append(a.eps[cout], out)
		}
		return in, out
	case ast.KindText:
		text := n.Value.(ast.Text).Text
		in = a.state()
		out = in
		for i := range len(text) {
			c := text[i]
			cin, cout := a.edge(func(b byte) bool { return b == c })
			a.eps[out] = append(a.eps[out], cin)
			out = cout
		}
		return in, out
	case ast.KindSingle:
		return a.edge(func(byte) bool { return true })
	case ast.KindAny, ast.KindSuper:
		// Without separators (Selector compiles none), * and ** match
		// any string: a state that loops on every byte.
		in, out = a.state(), a.state()
		a.step[in], a.next[in] = func(byte) bool { return true }, in
		a.eps[in] = append(a.eps[in], out)
		return in, out
	case ast.KindList:
		l := n.Value.(ast.List)
		return a.edge(func(b byte) bool { return strings.IndexByte(l.Chars, b) >= 0 != l.Not })
	case ast.KindRange:
		r := n.Value.(ast.Range)
		return a.edge(func(b byte) bool { return (rune(b) >= r.Lo && rune(b) <= r.Hi) != r.Not })
	}
	// KindNothing: the empty string.
	in = a.state()
	return in, in
}

// closure adds to set every state reachable from it by empty edges, and
// returns it sorted.
func (a *automaton) closure(set []int) []int {
	seen := make(map[int]bool, len(set))
	stack := slices.Clone(set)
	out := set[:0]
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		stack = append(stack, a.eps[s]...)
	}
	slices.Sort(out)
	return out
}

func (a *automaton) move(set []int, c byte) []int {
	var out []int
	for _, s := range set {
		if a.step[s] != nil && a.step[s](c) && !slices.Contains(out, a.next[s]) {
			out = append(out, a.next[s])
		}
	}
	return a.closure(out)
}

// globSet is the automata of a list of globs: a name is in the set when
// one of them matches it.
type globSet []*automaton

func compileGlobSet(srcs []string) (globSet, error) {
	out := make(globSet, 0, len(srcs))
	for _, s := range srcs {
		a, err := compileAutomaton(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// selection is the set of names a Selector (or a policy's apps) takes:
// matched by an include glob and by no exclude glob.
type selection struct{ include, exclude globSet }

func newSelection(s *Selector) (selection, error) {
	var sel selection
	var err error
	if sel.include, err = compileGlobSet(patternSources(s.include)); err != nil {
		return sel, err
	}
	sel.exclude, err = compileGlobSet(patternSources(s.exclude))
	return sel, err
}

func patternSources(ps []pattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.src
	}
	return out
}

// findName searches for an app-name-shaped string, at least one character
// long, that is in every one of in and in none of out. It returns the
// first such string found (one of the shortest), or ok false when there is
// none. When the search is too large to complete it returns ok true and an
// empty witness: see the comment at the top of this file.
func findName(in, out []selection) (witness string, ok bool) {
	// Every glob of every selection runs in auts; a span is where one
	// selection's include and exclude automata sit in it.
	var auts []*automaton
	type span struct{ inc, exc [2]int }
	spans := func(sels []selection) []span {
		var sp []span
		for _, s := range sels {
			var x span
			x.inc[0] = len(auts)
			auts = append(auts, s.include...)
			x.inc[1] = len(auts)
			x.exc[0] = len(auts)
			auts = append(auts, s.exclude...)
			x.exc[1] = len(auts)
			sp = append(sp, x)
		}
		return sp
	}
	inSpans, outSpans := spans(in), spans(out)

	// A state of the search is, per automaton, the index of its set of
	// states in the automaton's lazily built deterministic form.
	anyOf := func(ids []int32, r [2]int) bool {
		for k := r[0]; k < r[1]; k++ {
			if auts[k].det().accepts(ids[k]) {
				return true
			}
		}
		return false
	}
	member := func(ids []int32, x span) bool { return anyOf(ids, x.inc) && !anyOf(ids, x.exc) }
	wanted := func(ids []int32) bool {
		for _, x := range inSpans {
			if !member(ids, x) {
				return false
			}
		}
		for _, x := range outSpans {
			if member(ids, x) {
				return false
			}
		}
		return true
	}
	// hopeless is a state no extension can bring to a wanted one: an in
	// selection can no longer match, or an out selection matches every
	// extension. Pruning it keeps the search small: without it, every
	// combination of the out selections that already matched would be a
	// state of its own.
	allDead := func(ids []int32, r [2]int) bool {
		for k := r[0]; k < r[1]; k++ {
			if !auts[k].det().dead(ids[k]) {
				return false
			}
		}
		return true
	}
	anyUniversal := func(ids []int32, r [2]int) bool {
		for k := r[0]; k < r[1]; k++ {
			if auts[k].det().universal(ids[k]) {
				return true
			}
		}
		return false
	}
	hopeless := func(ids []int32) bool {
		for _, x := range inSpans {
			if allDead(ids, x.inc) || anyUniversal(ids, x.exc) {
				return true
			}
		}
		for _, x := range outSpans {
			if anyUniversal(ids, x.inc) && allDead(ids, x.exc) {
				return true
			}
		}
		return false
	}
	key := func(ids []int32) string {
		b := make([]byte, 0, 4*len(ids))
		for _, id := range ids {
			b = append(b, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
		}
		return string(b)
	}

	type node struct {
		ids  []int32
		name string
	}
	start := node{ids: make([]int32, len(auts))}
	for k, a := range auts {
		start.ids[k] = a.det().start
	}
	// The start is expanded without being marked: the empty string is no
	// app name, but a longer one may lead back to the same states.
	seen := map[string]bool{}
	queue := []node{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for c := range len(appNameChars) {
			next := node{ids: make([]int32, len(auts)), name: cur.name + appNameChars[c:c+1]}
			for k, a := range auts {
				next.ids[k] = a.det().step(cur.ids[k], c)
			}
			k := key(next.ids)
			if seen[k] {
				continue
			}
			seen[k] = true
			if wanted(next.ids) {
				return next.name, true
			}
			if len(seen) > maxCoverStates {
				return "", true
			}
			if !hopeless(next.ids) {
				queue = append(queue, next)
			}
		}
	}
	return "", false
}

// det returns the automaton's deterministic form, built as it is explored.
func (a *automaton) det() *dfa {
	if a.d == nil {
		a.d = &dfa{a: a, ids: map[string]int32{}}
		a.d.start = a.d.id(a.closure([]int{a.start}))
	}
	return a.d
}

// dfa is the subset construction of an automaton over appNameChars, made
// lazily: a state is a set of the automaton's states, numbered as found.
type dfa struct {
	a      *automaton
	start  int32
	ids    map[string]int32
	sets   [][]int
	accept []bool
	next   [][len(appNameChars)]int32 // -1: not computed yet
}

func (d *dfa) id(set []int) int32 {
	k := fmt.Sprint(set)
	if id, ok := d.ids[k]; ok {
		return id
	}
	id := int32(len(d.sets))
	d.ids[k] = id
	d.sets = append(d.sets, set)
	d.accept = append(d.accept, slices.Contains(set, d.a.accept))
	var row [len(appNameChars)]int32
	for i := range row {
		row[i] = -1
	}
	d.next = append(d.next, row)
	return id
}

func (d *dfa) accepts(id int32) bool { return d.accept[id] }

// dead reports whether no string leads from state id to an accepting one.
func (d *dfa) dead(id int32) bool {
	return !d.reaches(id, func(n int32) bool { return d.accept[n] })
}

// universal reports whether every string leads from state id to an
// accepting one.
func (d *dfa) universal(id int32) bool {
	return !d.reaches(id, func(n int32) bool { return !d.accept[n] })
}

// maxDFAStates bounds the exploration of dead and universal: past it the
// answer is "reaches", which prunes nothing.
const maxDFAStates = 10_000

// reaches reports whether a state for which hit holds is reachable from
// id (id included).
func (d *dfa) reaches(id int32, hit func(int32) bool) bool {
	seen := map[int32]bool{id: true}
	stack := []int32{id}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if hit(n) || len(seen) > maxDFAStates {
			return true
		}
		for c := range len(appNameChars) {
			if m := d.step(n, c); !seen[m] {
				seen[m] = true
				stack = append(stack, m)
			}
		}
	}
	return false
}

// step returns the state after reading appNameChars[c] in state id.
func (d *dfa) step(id int32, c int) int32 {
	if n := d.next[id][c]; n >= 0 {
		return n
	}
	n := d.id(d.a.move(d.sets[id], appNameChars[c]))
	d.next[id][c] = n
	return n
}
