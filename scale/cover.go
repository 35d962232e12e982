package scale

import (
	"slices"
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
