package scale

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckReachableAgainstTheFullSearch: the index by literal, the plain
// names matched without automata and the lone policy decided from its
// automaton give, on random policy lists, the answer of the search over
// every earlier policy (findName, itself checked against gobwas/glob by
// TestFindNameAgainstMatch): the same unreachable policy, covered by the
// same earlier ones.
func TestCheckReachableAgainstTheFullSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"ab", "a-b", "b9", "ba", "a", "abc", "Ab", "a_b"}
	pieces := []string{"a", "b", "-", "9", "*", "?", "[ab]", "[!a]", "{a,b-}", "ab", "**", "[a-c]"}
	randGlob := func() string {
		if rng.IntN(3) == 0 {
			return names[rng.IntN(len(names))]
		}
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	unreachable := 0
	for trial := range 1500 {
		n := 2 + rng.IntN(5)
		ps := make([]AppPolicy, n)
		var desc []string
		for i := range ps {
			inc := []string{randGlob()}
			if rng.IntN(3) == 0 {
				inc = append(inc, randGlob())
			}
			var exc []string
			if rng.IntN(4) == 0 {
				exc = []string{randGlob()}
			}
			ps[i] = testPolicy(t, fmt.Sprint(i), inc, exc...)
			desc = append(desc, fmt.Sprintf("%d: %s !%s", i, strings.Join(inc, ","), strings.Join(exc, ",")))
		}
		// The reference: every earlier policy in every question.
		sels := make([]selection, n)
		for i, p := range ps {
			sels[i], _ = newSelection(p.Apps)
		}
		want, wantCovering := -1, []string(nil)
		for i := range ps {
			if _, ok := findName(sels[i:i+1], sels[:i]); !ok {
				want = i
				for j := range i {
					if _, ok := findName([]selection{sels[i], sels[j]}, nil); ok {
						wantCovering = append(wantCovering, ps[j].Name)
					}
				}
				break
			}
		}

		undecided, err := CheckReachableBounded(ps)
		if len(undecided) > 0 {
			t.Errorf("trial %d: undecided %v on tiny globs: %s", trial, undecided, strings.Join(desc, "; "))
		}
		var ue *UnreachableError
		switch {
		case want < 0 && err != nil:
			t.Errorf("trial %d: %v, want every policy reachable: %s", trial, err, strings.Join(desc, "; "))
		case want >= 0 && !errors.As(err, &ue):
			t.Errorf("trial %d: %v, want policy %d unreachable, covered by %q: %s", trial, err, want, wantCovering, strings.Join(desc, "; "))
		case want >= 0 && (ue.Index != want || !slices.Equal(ue.Covering, wantCovering)):
			t.Errorf("trial %d: policy %d unreachable, covered by %q; want %d, covered by %q: %s", trial, ue.Index, ue.Covering, want, wantCovering, strings.Join(desc, "; "))
		}
		if want >= 0 {
			unreachable++
		}
	}
	if unreachable < 100 {
		t.Errorf("only %d of the random lists have an unreachable policy: the test proves little", unreachable)
	}
}

// shapedPolicies is n policies of one glob each, format filled with the
// policy's number.
func shapedPolicies(tb testing.TB, format string, n int) []AppPolicy {
	ps := make([]AppPolicy, n)
	for i := range ps {
		sel, err := NewSelector([]string{fmt.Sprintf(format, i)}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		ps[i] = AppPolicy{Name: fmt.Sprint(i), Apps: sel}
	}
	return ps
}

// TestCheckReachableIsNearLinear: five times the policies cost about five
// times as much to check, not twenty-five (as when every question held
// every earlier policy: 2,000 policies took 15 s and 10,000 took 441 s),
// for the usual shapes: plain names, prefixes and suffixes. The work is
// counted in allocations and their bytes, which the check's work consists of and which do
// not depend on the machine's load (two cores shared by many tests make
// a time ratio swing by three); the time is logged. Every policy is
// decided.
func TestCheckReachableIsNearLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("checks 10,000 policies several times")
	}
	for _, format := range []string{"app-%05d", "t%05d-*", "*-%05d"} {
		cost := func(n int) (allocs, bytes uint64, took time.Duration) {
			ps := shapedPolicies(t, format, n)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			undecided, err := CheckReachableBounded(ps)
			took = time.Since(start)
			runtime.ReadMemStats(&after)
			if err != nil || len(undecided) > 0 {
				t.Fatalf("%s x%d: %v, %d undecided", format, n, err, len(undecided))
			}
			return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc, took
		}
		smallAllocs, smallBytes, small := cost(2000)
		largeAllocs, largeBytes, large := cost(10000)
		ratio, bytesRatio := float64(largeAllocs)/float64(smallAllocs), float64(largeBytes)/float64(smallBytes)
		t.Logf("%s: 2,000 policies %d allocations (%d KiB) in %s, 10,000 %d allocations (%d KiB) in %s: ratios %.2f and %.2f",
			format, smallAllocs, smallBytes>>10, small, largeAllocs, largeBytes>>10, large, ratio, bytesRatio)
		if ratio > 6 || bytesRatio > 6 {
			t.Errorf("%s: 10,000 policies cost %.1f times the allocations and %.1f times the bytes of 2,000: not near-linear", format, ratio, bytesRatio)
		}
	}
}

// TestTangledGlobsStayWithinTheBound: the worst shapes, globs of many
// alternatives each anywhere in the name and policies that all overlap,
// end within the check's budget, their undecided policies let through.
func TestTangledGlobsStayWithinTheBound(t *testing.T) {
	var braced []string
	for k := range 200 {
		var alts []string
		for c := 'a'; c <= 't'; c++ {
			alts = append(alts, fmt.Sprintf("*%c%03d*", c, k))
		}
		braced = append(braced, "{"+strings.Join(alts, ",")+"}")
	}
	for _, tc := range []struct {
		name string
		ps   []AppPolicy
	}{
		{"200 brace sets", policyList(t, func() []string {
			var out []string
			for i, g := range braced {
				out = append(out, fmt.Sprintf("%d: %s", i, g))
			}
			return out
		}()...)},
		{"10,000 overlapping infixes", shapedPolicies(t, "*-m%05d-*", 10000)},
		{"2,000 stars between letters", shapedPolicies(t, "*a*%d*b*", 2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget()
			start := time.Now()
			undecided, err := checkReachableWithin(tc.ps, b)
			t.Logf("%s, %d undecided, %d steps and %d KiB of states left, %v", time.Since(start), len(undecided), b.steps, b.bytes>>10, err)
			if b.steps < -maxQuestionSteps || b.bytes < -maxQuestionBytes {
				t.Errorf("overspent: %d steps, %d bytes left", b.steps, b.bytes)
			}
			var ue *UnreachableError
			if err != nil && !errors.As(err, &ue) {
				t.Errorf("error %v", err)
			}
		})
	}
}
