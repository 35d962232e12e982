package scale

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/glob"
)

// testPolicy is a policy over include and exclude globs.
func testPolicy(t testing.TB, name string, include []string, exclude ...string) AppPolicy {
	t.Helper()
	sel, err := NewSelector(include, exclude)
	if err != nil {
		t.Fatal(err)
	}
	return AppPolicy{Name: name, Apps: sel}
}

// TestSelectedAppsSharePolicies: the apps of a run that take the same
// policy hold one copy of it, the one PolicyFor gives, not a copy each.
func TestSelectedAppsSharePolicies(t *testing.T) {
	names := []string{"paying-a", "paying-b", "trial-a", "batch-1", "batch-2", "batch-3"}
	sel, err := NewSelector(names, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Selector: sel, Group: "worker", Policies: []AppPolicy{
		testPolicy(t, "paying", []string{"paying-*"}),
		testPolicy(t, "trial", []string{"trial-*"}),
	}}
	apps, err := selectApps(t.Context(), cfg, Deps{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*AppPolicy{}
	for _, a := range apps {
		if !reflect.DeepEqual(*a.policy, cfg.PolicyFor(a.name)) {
			t.Errorf("%s takes %+v, want %+v", a.name, *a.policy, cfg.PolicyFor(a.name))
		}
		if p, ok := byName[a.policy.Name]; ok && p != a.policy {
			t.Errorf("%s holds its own copy of policy %q", a.name, a.policy.Name)
		}
		byName[a.policy.Name] = a.policy
	}
	if len(apps) != len(names) || len(byName) != 3 {
		t.Errorf("%d apps over %d policies, want %d over 3", len(apps), len(byName), len(names))
	}
}

func TestPolicyForFirstMatchWins(t *testing.T) {
	cfg := Config{Policies: []AppPolicy{
		testPolicy(t, "paying", []string{"paying-*"}, "paying-test-*"),
		testPolicy(t, "eu", []string{"*-eu"}),
		testPolicy(t, "trial", []string{"trial-*", "paying-test-*"}),
	}}
	for app, want := range map[string]string{
		"paying-acme":    "paying",
		"paying-acme-eu": "paying", // matches paying and eu: the first wins
		"trial-bob-eu":   "eu",     // matches eu and trial: the first wins
		"trial-bob":      "trial",
		"paying-test-1":  "trial", // excluded from paying
		"batch-1":        DefaultPolicyName,
	} {
		if got := cfg.PolicyFor(app).Name; got != want {
			t.Errorf("PolicyFor(%q) = %q, want %q", app, got, want)
		}
	}
}

func TestNewAppPolicyInheritance(t *testing.T) {
	expr := func(src string) *Expr {
		e, err := CompileExpr(src, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	two, one, five, three, eight := expr("2"), expr("1"), expr("5"), expr("3"), expr("8")
	group, suspend, zero, minute, hundred := "worker", ActionSuspend, 0, time.Minute, 100
	nFour, nTwo := 4, 2
	def := AppPolicy{
		Name:        DefaultPolicyName,
		Group:       "app",
		Expressions: Expressions{MinStarted: two, MaxStarted: two, MinCreated: one, MaxCreated: eight},
		Policy:      Policy{InitialState: "started", Regions: []string{"ord"}, ScaleDown: ActionStop, MaxScaleUp: &nFour, MaxScaleDown: &nTwo, MaxMachines: 500},
	}
	tests := []struct {
		name string
		o    Overrides
		want AppPolicy
	}{
		{
			name: "nothing set keeps everything",
			want: def,
		},
		{
			name: "regions only keeps the default's targets",
			o:    Overrides{Regions: []string{"ams", "fra"}},
			want: AppPolicy{Group: "app", Expressions: def.Expressions,
				Policy: Policy{InitialState: "started", Regions: []string{"ams", "fra"}, ScaleDown: ActionStop, MaxScaleUp: &nFour, MaxScaleDown: &nTwo, MaxMachines: 500}},
		},
		{
			name: "min and max started replace the default's started-machine-count, keep its created",
			o:    Overrides{Expressions: Expressions{MinStarted: one, MaxStarted: five}},
			want: AppPolicy{Group: "app", Expressions: Expressions{MinStarted: one, MaxStarted: five, MinCreated: one, MaxCreated: eight}, Policy: def.Policy},
		},
		{
			name: "max started alone leaves no min from the default",
			o:    Overrides{Expressions: Expressions{MaxStarted: three}},
			want: AppPolicy{Group: "app", Expressions: Expressions{MaxStarted: three, MinCreated: one, MaxCreated: eight}, Policy: def.Policy},
		},
		{
			name: "max created alone replaces both created bounds, keeps started",
			o:    Overrides{Expressions: Expressions{MaxCreated: three}},
			want: AppPolicy{Group: "app", Expressions: Expressions{MinStarted: two, MaxStarted: two, MaxCreated: three}, Policy: def.Policy},
		},
		{
			name: "settings set to their zero value override",
			o:    Overrides{Group: &group, ScaleDown: &suspend, MaxScaleUp: &zero, MaxMachines: &hundred, MinStartedDuration: &minute},
			want: AppPolicy{Group: "worker", Expressions: def.Expressions,
				Policy: Policy{InitialState: "started", Regions: []string{"ord"}, ScaleDown: ActionSuspend, MaxScaleUp: &zero, MaxScaleDown: &nTwo, MaxMachines: 100, MinStartedDuration: time.Minute}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, _ := NewSelector([]string{"x-*"}, nil)
			got := NewAppPolicy("x", sel, tt.o, def)
			if got.Name != "x" || got.Apps != sel {
				t.Errorf("name %q, apps %v: want the policy's own", got.Name, got.Apps)
			}
			if got.Group != tt.want.Group || got.Expressions != tt.want.Expressions ||
				!slices.Equal(got.Policy.Regions, tt.want.Policy.Regions) {
				t.Errorf("got group %q, %s, regions %q\nwant group %q, %s, regions %q",
					got.Group, exprString(got.Expressions), got.Policy.Regions, tt.want.Group, exprString(tt.want.Expressions), tt.want.Policy.Regions)
			}
			if gp, wp := got.Policy, tt.want.Policy; !reflect.DeepEqual(gp, wp) {
				t.Errorf("policy %+v, want %+v", gp, wp)
			}
		})
	}
	if def.Expressions.MinStarted != two || def.Policy.Regions[0] != "ord" {
		t.Error("NewAppPolicy changed the default")
	}
}

func exprString(x Expressions) string {
	s := func(e *Expr) string {
		if e == nil {
			return "-"
		}
		return e.String()
	}
	return "started " + s(x.MinStarted) + ".." + s(x.MaxStarted) + ", created " + s(x.MinCreated) + ".." + s(x.MaxCreated)
}

// policyList is a list of policies written "name: glob;glob !exclude;exclude".
func policyList(t *testing.T, specs ...string) []AppPolicy {
	t.Helper()
	var out []AppPolicy
	for _, spec := range specs {
		name, rest, _ := strings.Cut(spec, ": ")
		inc, exc, _ := strings.Cut(rest, " !")
		var excl []string
		if exc != "" {
			excl = strings.Split(exc, ";")
		}
		out = append(out, testPolicy(t, name, strings.Split(inc, ";"), excl...))
	}
	return out
}

func TestCheckReachable(t *testing.T) {
	tests := []struct {
		name     string
		policies []string
		// unreachable is the policy reported, "" for none; covering the
		// earlier policies it names.
		unreachable string
		covering    []string
	}{
		{name: "disjoint prefixes", policies: []string{"paying: paying-*", "trial: trial-*", "batch: batch-*"}},
		{name: "identical glob", policies: []string{"a: trial-*", "b: trial-*"}, unreachable: "b", covering: []string{"a"}},
		{name: "identical plain name", policies: []string{"a: web", "b: web"}, unreachable: "b", covering: []string{"a"}},
		{name: "covered by an earlier star", policies: []string{"all: *", "paying: paying-*"}, unreachable: "paying", covering: []string{"all"}},
		{name: "covered by an earlier super star", policies: []string{"all: **", "one: web"}, unreachable: "one", covering: []string{"all"}},
		{name: "narrower first is fine", policies: []string{"paying: paying-*", "all: *"}},
		{name: "covered by two earlier", policies: []string{"eu: *-eu", "us: *-us", "web: web-{eu,us}"}, unreachable: "web", covering: []string{"eu", "us"}},
		{name: "partly covered is fine", policies: []string{"eu: *-eu", "web: web-{eu,us}"}},
		{name: "alternatives covering a prefix", policies: []string{"ab: {a,b}-*", "a: a-*"}, unreachable: "a", covering: []string{"ab"}},
		{name: "wider alternatives after a prefix", policies: []string{"a: a-*", "ab: {a,b}-*"}},
		{name: "an exclude leaves room", policies: []string{"paying: paying-* !paying-test-*", "test: paying-test-*"}},
		{name: "an exclude that removes nothing reachable", policies: []string{"paying: paying-* !trial-*", "again: paying-x"}, unreachable: "again", covering: []string{"paying"}},
		{name: "the app-name characters", policies: []string{"l: *[a-z]", "d: *[0-9]", "dash: *-", "any: *?"}, unreachable: "any", covering: []string{"l", "d", "dash"}},
		{name: "a character no app name has", policies: []string{"one: web-[!x]", "x: web-?"}},
		{name: "containing then ending", policies: []string{"has-a: *a*", "ends-a: *a"}, unreachable: "ends-a", covering: []string{"has-a"}},
		{name: "ending then containing", policies: []string{"ends-a: *a", "has-a: *a*"}},
		{name: "starts or ends", policies: []string{"starts: a*", "ends: *a", "both: a*a"}, unreachable: "both", covering: []string{"starts", "ends"}},
		{name: "digits class", policies: []string{"n: batch-[0-9]*", "all: batch-*"}},
		{name: "digits class after the prefix", policies: []string{"all: batch-*", "n: batch-[0-9]*"}, unreachable: "n", covering: []string{"all"}},
		{name: "excluded entirely", policies: []string{"none: web-* !web-*"}, unreachable: "none"},
		{name: "upper case matches no app name", policies: []string{"typo: Paying-*"}, unreachable: "typo"},
		{name: "escaped star is a literal star", policies: []string{"lit: a\\*"}, unreachable: "lit"},
		{name: "two globs of which one is new", policies: []string{"a: a-*", "b: a-x;b-x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckReachable(policyList(t, tt.policies...))
			if tt.unreachable == "" {
				if err != nil {
					t.Fatalf("CheckReachable: %v, want nil", err)
				}
				return
			}
			var ue *UnreachableError
			if !errors.As(err, &ue) {
				t.Fatalf("CheckReachable: %v, want policy %q unreachable", err, tt.unreachable)
			}
			if ue.Name != tt.unreachable || !slices.Equal(ue.Covering, tt.covering) {
				t.Errorf("unreachable %q covered by %q, want %q covered by %q (%v)", ue.Name, ue.Covering, tt.unreachable, tt.covering, err)
			}
			if !strings.Contains(err.Error(), `"`+tt.unreachable+`"`) {
				t.Errorf("error %q does not name the policy", err)
			}
		})
	}
}

// TestFindNameAgainstMatch checks the search against gobwas/glob itself on
// random globs: a witness must really be taken by the policy first, and a
// policy found unreachable must match, before every earlier policy, none
// of the strings of up to four characters.
func TestFindNameAgainstMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b", "-", "*", "?", "[ab]", "[!a]", "{a,b-}", "ab", "**", "[a-c]"}
	randGlob := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(3) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	// Every string of up to four characters over the globs' letters and
	// two others (a digit and a letter) no glob names.
	var all []string
	var grow func(prefix string)
	grow = func(prefix string) {
		if prefix != "" {
			all = append(all, prefix)
		}
		if len(prefix) == 4 {
			return
		}
		for _, c := range "abc-9z" {
			grow(prefix + string(c))
		}
	}
	grow("")

	unreachable := 0
	for trial := range 300 {
		n := 2 + rng.IntN(2)
		specs := make([]AppPolicy, n)
		globs := make([][2]glob.Glob, n)
		for i := range specs {
			inc, exc := []string{randGlob()}, []string(nil)
			if rng.IntN(3) == 0 {
				exc = []string{randGlob()}
			}
			specs[i] = testPolicy(t, string(rune('A'+i)), inc, exc...)
			globs[i][0] = glob.MustCompile(inc[0])
			if exc != nil {
				globs[i][1] = glob.MustCompile(exc[0])
			}
		}
		takes := func(i int, name string) bool {
			return globs[i][0].Match(name) && (globs[i][1] == nil || !globs[i][1].Match(name))
		}
		first := func(name string) int {
			for i := range specs {
				if takes(i, name) {
					return i
				}
			}
			return -1
		}
		sels := make([]selection, n)
		for i, p := range specs {
			sels[i], _ = newSelection(p.Apps)
		}
		last := n - 1
		witness, ok := findName(sels[last:], sels[:last])
		describe := func() string {
			var s []string
			for _, p := range specs {
				s = append(s, p.Name+": "+strings.Join(patternSources(p.Apps.include), ",")+" !"+strings.Join(patternSources(p.Apps.exclude), ","))
			}
			return strings.Join(s, "; ")
		}
		switch {
		case ok && witness == "":
			t.Errorf("trial %d: search gave up on tiny globs: %s", trial, describe())
		case ok && first(witness) != last:
			t.Errorf("trial %d: witness %q is not taken by the last policy first: %s", trial, witness, describe())
		case !ok:
			unreachable++
			for _, name := range all {
				if first(name) == last {
					t.Errorf("trial %d: %q reaches the last policy, which was found unreachable: %s", trial, name, describe())
					break
				}
			}
		}
	}
	if unreachable == 0 {
		t.Error("no random case was unreachable: the test proves little")
	}
}

func TestPolicySelects(t *testing.T) {
	paying := testPolicy(t, "paying", []string{"paying-*"})
	for _, tt := range []struct {
		include, exclude []string
		want             bool
	}{
		{[]string{"*"}, nil, true},
		{[]string{"tenant-*", "paying-*"}, nil, true},
		{[]string{"trial-*"}, nil, false},
		{[]string{"paying-*"}, []string{"paying-*"}, false},
		{[]string{"paying-acme", "trial-bob"}, nil, true},
		{[]string{"paying-acme", "trial-bob"}, []string{"paying-acme"}, false},
	} {
		sel, err := NewSelector(tt.include, tt.exclude)
		if err != nil {
			t.Fatal(err)
		}
		got, err := paying.Selects(sel)
		if err != nil || got != tt.want {
			t.Errorf("selection %q !%q: Selects = %v, %v; want %v", tt.include, tt.exclude, got, err, tt.want)
		}
	}
}

// manyPolicies is 30 policies of one glob shape, then "last", a policy
// each of them overlaps and policy 5 covers.
func manyPolicies(tb testing.TB) []AppPolicy {
	var ps []AppPolicy
	for i := range 30 {
		sel, err := NewSelector([]string{fmt.Sprintf("*-mid%02d-*", i)}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		ps = append(ps, AppPolicy{Name: fmt.Sprint(i), Apps: sel})
	}
	last, _ := NewSelector([]string{"x*-mid05-*"}, nil)
	return append(ps, AppPolicy{Name: "last", Apps: last})
}

// TestCheckReachableManyPolicies: policies whose globs overlap in every
// combination are decided, not given up on (which would let "last"
// through).
func TestCheckReachableManyPolicies(t *testing.T) {
	var ue *UnreachableError
	if err := CheckReachable(manyPolicies(t)); !errors.As(err, &ue) || ue.Name != "last" {
		t.Fatalf("CheckReachable: %v, want last unreachable", err)
	}
	if err := CheckReachable(manyPolicies(t)[:30]); err != nil {
		t.Fatalf("CheckReachable without last: %v", err)
	}
}

// BenchmarkCheckReachable measures the check of 31 policies whose globs
// all overlap, the last one covered: the worst shape for the search.
func BenchmarkCheckReachable(b *testing.B) {
	for b.Loop() {
		if err := CheckReachable(manyPolicies(b)); err == nil {
			b.Fatal("last found reachable")
		}
	}
}

// TestPolicyMatcherAgreesWithTheList: the index a run finds each app's
// policy through gives, for every name, the policy that matching the
// policies in turn gives: the first that matches. Random policies of
// every shape (plain names, prefixes, suffixes, infixes, braces, classes,
// excludes) over random names, 200 trials.
func TestPolicyMatcherAgreesWithTheList(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	word := func() string {
		const letters = "abc-"
		n := 1 + rng.IntN(4)
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	shapes := []func() string{
		word,                                  // a plain name
		func() string { return word() + "*" }, // a prefix
		func() string { return "*" + word() }, // a suffix
		func() string { return "*" + word() + "*" },
		func() string { return word() + "?" + word() },
		func() string { return "{" + word() + "," + word() + "}*" },
		func() string { return word() + "[ab]*" },
		func() string { return "*" },
	}
	glob := func() string { return shapes[rng.IntN(len(shapes))]() }
	mismatches, matched, later := 0, 0, 0
	for trial := range 200 {
		var ps []AppPolicy
		for i := range 1 + rng.IntN(60) {
			include := []string{glob()}
			if rng.IntN(3) == 0 {
				include = append(include, glob())
			}
			var exclude []string
			if rng.IntN(4) == 0 {
				exclude = []string{glob()}
			}
			ps = append(ps, testPolicy(t, fmt.Sprint("p", i), include, exclude...))
		}
		cfg := Config{Policies: ps}
		m := newPolicyMatcher(ps)
		for range 300 {
			name := word() + word() + word()
			want := cfg.policyIndex(name)
			if want >= 0 {
				matched++
			}
			if want > 0 {
				later++
			}
			if got := m.index(name); got != want {
				mismatches++
				if mismatches < 10 {
					t.Errorf("trial %d, %q: matcher %d, list %d", trial, name, got, want)
				}
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d mismatches", mismatches)
	}
	// The names must reach policies, and not only the first.
	if matched < 20000 || later < 10000 {
		t.Errorf("%d of 60000 names matched a policy, %d a later one: the trials test too little", matched, later)
	}
	t.Logf("%d of 60000 names matched a policy, %d a later one", matched, later)
}

// BenchmarkPolicies: finding the policy of each of 10,000 apps, through
// the index and, as the baseline of the same run, by matching the
// policies in turn; N policies of distinct prefixes, the apps spread over
// them.
func BenchmarkPolicies(b *testing.B) {
	const apps = 10000
	for _, n := range []int{10, 32, 100, 1000, 10000} {
		var ps []AppPolicy
		apps := make([]string, apps)
		for i := range n {
			ps = append(ps, testPolicy(b, fmt.Sprint(i), []string{fmt.Sprintf("t%05d-*", i)}))
		}
		for i := range apps {
			apps[i] = fmt.Sprintf("t%05d-x%d", i%n, i)
		}
		cfg := Config{Policies: ps}
		b.Run(fmt.Sprintf("list/%d", n), func(b *testing.B) {
			for b.Loop() {
				for _, a := range apps {
					cfg.policyIndex(a)
				}
			}
		})
		b.Run(fmt.Sprintf("index/%d", n), func(b *testing.B) {
			for b.Loop() {
				m := newPolicyMatcher(ps)
				for _, a := range apps {
					m.index(a)
				}
			}
		})
	}
}
