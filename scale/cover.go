package scale

import (
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
// can be called, so "found" may be wrong, never "not found".
//
// Every question runs within a budget (see budget): work, counted in
// automaton steps, and memory, counted in bytes of the states kept. A
// question that runs out of it is answered "found", and said to be
// undecided. Both errors lean the same way: a policy is only called
// unreachable when that is certain.

// appNameChars are the characters of a Fly app name.
const appNameChars = "abcdefghijklmnopqrstuvwxyz0123456789-"

// allChars has a bit set for every character of appNameChars.
const allChars = uint64(1)<<len(appNameChars) - 1

// The bounds of the work of a check (of all its questions together) and
// of one question. A step is an automaton state visited or an index entry
// looked at, about 10 to 20 ns; a check of ten thousand policies of the
// usual shapes (plain names, prefixes, suffixes) takes tens of thousands.
const (
	maxCheckSteps    = 30_000_000
	maxQuestionSteps = 3_000_000
	// maxCheckBytes bounds the deterministic states the automata of a
	// check keep, maxQuestionBytes the combinations of states one
	// question keeps.
	maxCheckBytes    = 64 << 20
	maxQuestionBytes = 32 << 20
)

// budget is what a check may still spend; below zero it is spent.
type budget struct {
	steps int64
	bytes int64
}

func newBudget() *budget { return &budget{steps: maxCheckSteps, bytes: maxCheckBytes} }

func (b *budget) spent() bool { return b.steps < 0 || b.bytes < 0 }

// automaton is a glob as a Thompson automaton over the app-name
// characters. Every state has at most one character-consuming edge (to
// next[s] on a character whose bit is set in acc[s]) and any number of
// empty edges.
type automaton struct {
	acc    []uint64
	next   []int32
	eps    [][]int32
	start  int
	accept int

	// live[s]: some string leads from s to accept. univ[s]: every string
	// does (s loops on every character and reaches accept by empty
	// edges: the state of a trailing *).
	live, univ []bool
	// mark, gen and stack are the scratch of closure, moved move's.
	mark         []uint32
	gen          uint32
	stack, moved []int32
	d            *dfa // the deterministic form, see det
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
	a.analyse()
	return a, nil
}

func (a *automaton) state() int {
	a.acc = append(a.acc, 0)
	a.next = append(a.next, -1)
	a.eps = append(a.eps, nil)
	return len(a.acc) - 1
}

// edge adds a consuming edge from a new state to another new one, on the
// app-name characters that match accepts.
func (a *automaton) edge(match func(c byte) bool) (in, out int) {
	in, out = a.state(), a.state()
	a.acc[in], a.next[in] = charMask(match), int32(out)
	return in, out
}

func charMask(match func(c byte) bool) uint64 {
	var m uint64
	for i := range len(appNameChars) {
		if match(appNameChars[i]) {
			m |= 1 << i
		}
	}
	return m
}

func (a *automaton) link(from, to int) { a.eps[from] = append(a.eps[from], int32(to)) }

// build returns the entry and exit states of the automaton of node n.
func (a *automaton) build(n *ast.Node) (in, out int) {
	switch n.Kind {
	case ast.KindPattern:
		in = a.state()
		out = in
		for _, c := range n.Children {
			cin, cout := a.build(c)
			a.link(out, cin)
			out = cout
		}
		return in, out
	case ast.KindAnyOf:
		in, out = a.state(), a.state()
		for _, c := range n.Children {
			cin, cout := a.build(c)
			a.link(in, cin)
			a.link(cout, out)
		}
		return in, out
	case ast.KindText:
		text := n.Value.(ast.Text).Text
		in = a.state()
		out = in
		for i := range len(text) {
			c := text[i]
			cin, cout := a.edge(func(b byte) bool { return b == c })
			a.link(out, cin)
			out = cout
		}
		return in, out
	case ast.KindSingle:
		return a.edge(func(byte) bool { return true })
	case ast.KindAny, ast.KindSuper:
		// Without separators (Selector compiles none), * and ** match
		// any string: a state that loops on every character.
		in, out = a.state(), a.state()
		a.acc[in], a.next[in] = allChars, int32(in)
		a.link(in, out)
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

// analyse sets live and univ.
func (a *automaton) analyse() {
	n := len(a.acc)
	back := make([][]int32, n)
	for s := range n {
		for _, t := range a.eps[s] {
			back[t] = append(back[t], int32(s))
		}
		if a.acc[s] != 0 {
			back[a.next[s]] = append(back[a.next[s]], int32(s))
		}
	}
	a.live = make([]bool, n)
	a.live[a.accept] = true
	stack := []int32{int32(a.accept)}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range back[s] {
			if !a.live[p] {
				a.live[p] = true
				stack = append(stack, p)
			}
		}
	}
	a.mark = make([]uint32, n)
	a.univ = make([]bool, n)
	for s := range n {
		if a.acc[s] == allChars && a.next[s] == int32(s) {
			a.univ[s] = slices.Contains(a.closure([]int32{int32(s)}, nil), int32(a.accept))
		}
	}
}

// nonEmpty reports whether the automaton accepts a string of at least one
// app-name character: a state it reaches by empty edges reads one into a
// state from which acceptance is reachable.
func (a *automaton) nonEmpty() bool {
	for _, s := range a.closure([]int32{int32(a.start)}, nil) {
		if a.acc[s] != 0 && a.live[a.next[s]] {
			return true
		}
	}
	return false
}

// closure returns set with every state reachable from it by empty
// edges, sorted. b, if not nil, is charged for the work.
func (a *automaton) closure(set []int32, b *budget) []int32 {
	a.gen++
	if a.gen == 0 { // wrapped: forget every mark
		clear(a.mark)
		a.gen = 1
	}
	stack := append(a.stack[:0], set...)
	defer func() { a.stack = stack[:0] }()
	out := make([]int32, 0, len(set))
	work := 0
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		work++
		if a.mark[s] == a.gen {
			continue
		}
		a.mark[s] = a.gen
		out = append(out, s)
		stack = append(stack, a.eps[s]...)
	}
	if b != nil {
		b.steps -= int64(work)
	}
	slices.Sort(out)
	return out
}

// canonical reduces a closed set of states to one that accepts the same
// strings: without the states from which no string is accepted, and a
// set holding a state from which every string is, to that state alone.
// Matched alternatives of {*a*,*b*,...} then make one state, not one per
// combination.
func (a *automaton) canonical(set []int32) []int32 {
	out := set[:0]
	for _, s := range set {
		if a.univ[s] {
			return append(set[:0], s)
		}
		if a.live[s] {
			out = append(out, s)
		}
	}
	return out
}

func (a *automaton) move(set []int32, c int, b *budget) []int32 {
	out := a.moved[:0] // closure drops the repeats
	for _, s := range set {
		if a.acc[s]&(1<<c) != 0 {
			out = append(out, a.next[s])
		}
	}
	a.moved = out
	b.steps -= int64(len(set))
	return a.canonical(a.closure(out, b))
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
	witness, ok, _ = search(in, out, newBudget())
	return witness, ok
}

// search is findName within the budget b; decided is false when the
// budget ran out before an answer (ok is then true).
func search(in, out []selection, b *budget) (witness string, ok, decided bool) {
	if b.spent() {
		return "", true, false
	}
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
	dets := make([]*dfa, len(auts))
	for k, a := range auts {
		dets[k] = a.det(b)
	}

	// A state of the search is, per automaton, the index of its set of
	// states in the automaton's lazily built deterministic form.
	anyOf := func(ids []int32, r [2]int) bool {
		for k := r[0]; k < r[1]; k++ {
			if dets[k].accept[ids[k]] {
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
			if len(dets[k].sets[ids[k]]) > 0 {
				return false
			}
		}
		return true
	}
	anyUniversal := func(ids []int32, r [2]int) bool {
		for k := r[0]; k < r[1]; k++ {
			if dets[k].universal(ids[k], b) {
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
	keyBuf := make([]byte, 0, 4*len(auts))
	key := func(ids []int32) []byte {
		keyBuf = keyBuf[:0]
		for _, id := range ids {
			keyBuf = append(keyBuf, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
		}
		return keyBuf
	}

	type node struct {
		ids  []int32
		name string
	}
	start := node{ids: make([]int32, len(auts))}
	for k, d := range dets {
		start.ids[k] = d.start
	}
	// The question's own bounds, beside the check's.
	stepsFloor := b.steps - maxQuestionSteps
	nodeBytes := int64(16*len(auts) + 64)
	bytes := int64(0)
	// The start is expanded without being marked: the empty string is no
	// app name, but a longer one may lead back to the same states.
	seen := map[string]bool{}
	queue := []node{start}
	ids := make([]int32, len(auts))
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for c := range len(appNameChars) {
			for k, d := range dets {
				ids[k] = d.step(cur.ids[k], c, b)
			}
			b.steps -= int64(len(auts))
			if b.spent() {
				return "", true, false
			}
			k := key(ids)
			if seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			next := node{ids: slices.Clone(ids), name: cur.name + appNameChars[c:c+1]}
			bytes += nodeBytes + int64(len(next.name))
			if wanted(next.ids) {
				return next.name, true, true
			}
			if !hopeless(next.ids) {
				queue = append(queue, next)
			}
		}
		if b.spent() || b.steps < stepsFloor || bytes > maxQuestionBytes {
			return "", true, false
		}
	}
	return "", false, true
}

// det returns the automaton's deterministic form, built as it is explored.
func (a *automaton) det(b *budget) *dfa {
	if a.d == nil {
		a.d = &dfa{a: a, ids: map[string]int32{}}
		a.d.start = a.d.id(a.canonical(a.closure([]int32{int32(a.start)}, b)), b)
	}
	return a.d
}

// dfa is the subset construction of an automaton over appNameChars, made
// lazily: a state is a canonical set of the automaton's states, numbered
// as found. A state whose set is empty is dead: no string leads from it
// to acceptance.
type dfa struct {
	a      *automaton
	start  int32
	ids    map[string]int32
	sets   [][]int32
	accept []bool
	// univ memoizes universal: 0 not known yet, 1 universal, 2 not.
	univ []int8
	next [][len(appNameChars)]int32 // -1: not computed yet
}

func (d *dfa) id(set []int32, b *budget) int32 {
	buf := make([]byte, 0, 4*len(set))
	for _, s := range set {
		buf = append(buf, byte(s), byte(s>>8), byte(s>>16), byte(s>>24))
	}
	k := string(buf)
	if id, ok := d.ids[k]; ok {
		return id
	}
	id := int32(len(d.sets))
	d.ids[k] = id
	d.sets = append(d.sets, set)
	// A canonical set that is one universal state accepts (canonical).
	d.accept = append(d.accept, slices.Contains(set, int32(d.a.accept)) || len(set) == 1 && d.a.univ[set[0]])
	d.univ = append(d.univ, 0)
	var row [len(appNameChars)]int32
	for i := range row {
		row[i] = -1
	}
	d.next = append(d.next, row)
	if b != nil {
		b.bytes -= int64(12*len(set) + 4*len(row) + 96)
	}
	return id
}

// maxUniversalStates bounds the exploration of universal: past it the
// answer is "not universal", which prunes nothing.
const maxUniversalStates = 64

// universal reports whether every string leads from state id to an
// accepting one. It may say false wrongly, never true.
func (d *dfa) universal(id int32, b *budget) bool {
	if u := d.univ[id]; u != 0 {
		return u == 1
	}
	if set := d.sets[id]; len(set) == 1 && d.a.univ[set[0]] {
		d.univ[id] = 1
		return true
	}
	u := true
	seen := map[int32]bool{id: true}
	stack := []int32{id}
	for len(stack) > 0 && u {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !d.accept[n] || len(seen) > maxUniversalStates || b.spent() {
			u = false
			break
		}
		for c := range len(appNameChars) {
			if m := d.step(n, c, b); !seen[m] {
				seen[m] = true
				stack = append(stack, m)
			}
		}
	}
	d.univ[id] = 2
	if u {
		d.univ[id] = 1
	}
	return u
}

// step returns the state after reading appNameChars[c] in state id.
func (d *dfa) step(id int32, c int, b *budget) int32 {
	if n := d.next[id][c]; n >= 0 {
		return n
	}
	n := d.id(d.a.move(d.sets[id], c, b), b)
	d.next[id][c] = n
	return n
}
