package scale

import (
	"slices"
	"strings"

	"github.com/gobwas/glob/syntax"
	"github.com/gobwas/glob/syntax/ast"
)

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
