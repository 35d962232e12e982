package scale

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"
)

// decideNow is the clock of the decision tests.
var decideNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func dm(id, state string) *fly.Machine {
	return &fly.Machine{ID: id, State: state, Region: "ord", HostStatus: fly.HostStatusOk,
		Config: &fly.MachineConfig{Metadata: map[string]string{"fly_process_group": "app"}}}
}

// decidePolicy targets `started` started machines (an expression over
// the metric rps when started is "rps"), with p's rules.
func decidePolicy(t *testing.T, started, created string, p Policy) *AppPolicy {
	t.Helper()
	x := Expressions{}
	if started != "" {
		e, err := CompileExpr(started, []string{"rps"})
		if err != nil {
			t.Fatal(err)
		}
		x.MinStarted, x.MaxStarted = e, e
	}
	if created != "" {
		e, err := CompileExpr(created, []string{"rps"})
		if err != nil {
			t.Fatal(err)
		}
		x.MinCreated = e
	}
	return &AppPolicy{Name: DefaultPolicyName, Expressions: x, Policy: p}
}

// read are the facts of an app whose release and machines were read.
func read(p *AppPolicy, ms ...*fly.Machine) Facts {
	if ms == nil {
		ms = []*fly.Machine{}
	}
	return Facts{App: "web", Policy: p, At: MomentOf(decideNow, nil), Now: decideNow,
		ReleaseRead: true, Release: "complete", Read: true, Machines: ms, Metrics: map[string]float64{"rps": 1}}
}

// TestDecide walks every rule of Decide: every reason code has a case
// (TestDecideCoversEveryReasonCode), and the steps between.
func TestDecide(t *testing.T) {
	one := decidePolicy(t, "1", "", Policy{})
	two := decidePolicy(t, "2", "", Policy{})
	start := Plan{App: "web", Target: Counts{Started: 2, Created: 2}, Actions: []Action{{Kind: ActionStart, MachineID: "b"}}}
	startTwo := Plan{App: "web", Target: Counts{Started: 3, Created: 3}, Actions: []Action{{Kind: ActionStart, MachineID: "b"}, {Kind: ActionStart, MachineID: "c"}}}
	res := func(id string, o Outcome, e string) ActionResult {
		return ActionResult{Action: Action{Kind: ActionStart, MachineID: id}, Outcome: o, Error: e}
	}
	applied := func(plan Plan, rs ...ActionResult) Facts {
		return Facts{App: "web", Policy: one, Plan: &plan, Fleet: Fleet{App: "web", Group: "app"}, Applied: true, Actions: rs}
	}
	recounted := func(f Facts, ms []*fly.Machine, err error) Facts {
		f.Recounted, f.Recount, f.RecountErr = true, ms, err
		return f
	}
	paused := dm("a", "started")
	paused.Config.Metadata[MetaPausedUntil] = "2026-12-06T14:00:00Z"
	paused.Config.Metadata[MetaPausedReason] = "migration"
	other := dm("w", "started")
	other.Config.Metadata["fly_process_group"] = "worker"
	off := dm("u", "started")
	off.HostStatus = "unreachable"

	tests := []struct {
		name   string
		facts  Facts
		next   Step
		status Status
		code   ReasonCode
		reason string // a part of the reason
		check  func(t *testing.T, d Decision)
	}{
		{name: "nothing read: the release first", facts: Facts{App: "web", Policy: one}, next: StepReadRelease},
		{name: "the own app, before any read", facts: Facts{App: "web", Policy: one, OwnApp: true},
			status: StatusSkipped, code: ReasonOwnApp, reason: OwnAppReason},
		{name: "release unreadable", facts: Facts{App: "web", Policy: one, ReleaseRead: true, ReleaseErr: errors.New("read release: 500")},
			status: StatusFailed, code: ReasonReleaseUnreadable, reason: "read release: 500"},
		{name: "release in progress", facts: Facts{App: "web", Policy: one, ReleaseRead: true, Release: "Running"},
			status: StatusSkipped, code: ReasonReleaseInProgress, reason: "release in progress"},
		{name: "release done: observe", facts: Facts{App: "web", Policy: one, ReleaseRead: true, Release: "complete"}, next: StepObserve},
		{name: "paused, whatever else went wrong", facts: func() Facts {
			f := read(one, paused)
			f.MetricsErr = errors.New("metrics: down")
			return f
		}(), status: StatusPaused, code: ReasonPaused, reason: "paused until 2026-12-06T14:00Z: migration"},
		{name: "machines unreadable", facts: func() Facts {
			f := read(one)
			f.Machines, f.ListErr = nil, errors.New("list machines: 429")
			return f
		}(), status: StatusFailed, code: ReasonMachinesUnreadable, reason: "list machines: 429",
			check: func(t *testing.T, d Decision) {
				if d.Observed {
					t.Error("observed without a list")
				}
			}},
		{name: "metrics unreadable without a fallback", facts: func() Facts {
			f := read(one, dm("a", "started"))
			f.Metrics, f.MetricsErr = nil, errors.New("metrics: down")
			return f
		}(), status: StatusFailed, code: ReasonMetricsUnreadable, reason: "metrics: down"},
		{name: "interrupted", facts: func() Facts {
			f := read(one, dm("a", "started"))
			f.MetricsErr, f.Interrupted = errors.New("metrics: context canceled"), true
			return f
		}(), status: StatusFailed, code: ReasonInterrupted, reason: "interrupted before it finished"},
		{name: "interrupted under a fallback", facts: func() Facts {
			f := read(decidePolicy(t, "1", "", Policy{FallbackStarted: 2}), dm("a", "started"))
			f.MetricsErr, f.Interrupted = errors.New("metrics: context canceled"), true
			return f
		}(), status: StatusFailed, code: ReasonInterrupted},
		{name: "expression fails", facts: read(decidePolicy(t, "rps / 0 * 0", "", Policy{})),
			status: StatusFailed, code: ReasonExpressionFailed, reason: "result is NaN"},
		{name: "implausible target", facts: read(decidePolicy(t, "", "10", Policy{MaxMachines: 3}), dm("a", "started")),
			status: StatusFailed, code: ReasonImplausibleTarget, reason: "implausible target: created target 10 is above the machine limit 3"},
		{name: "fallback: raised, dry run", facts: func() Facts {
			f := read(decidePolicy(t, "1", "", Policy{FallbackStarted: 2}), dm("a", "started"), dm("b", "stopped"))
			f.Metrics, f.MetricsErr, f.DryRun = nil, errors.New("metrics: down"), true
			return f
		}(), status: StatusFallback, code: ReasonFallback, reason: "metrics: down",
			check: func(t *testing.T, d Decision) {
				if d.Target.Started != 2 || len(d.Actions) != 1 || d.Actions[0].Outcome != OutcomePlanned {
					t.Errorf("target %+v, actions %+v: want b started", d.Target, d.Actions)
				}
			}},
		{name: "fallback failed to list", facts: func() Facts {
			f := read(decidePolicy(t, "1", "", Policy{FallbackStarted: 2}))
			f.Machines, f.ListErr, f.MetricsErr = nil, errors.New("list machines: 500"), errors.New("metrics: down")
			return f
		}(), status: StatusFailed, code: ReasonMachinesUnreadable},
		{name: "target unreachable: nothing to clone", facts: read(decidePolicy(t, "1", "1", Policy{})),
			status: StatusSkipped, code: ReasonTargetUnreachable},
		{name: "at its target, other groups and unreachable hosts left out", facts: read(one, dm("a", "started"), other, off),
			status: StatusUnchanged, code: ReasonAtTarget,
			check: func(t *testing.T, d Decision) {
				if d.Current != (Counts{Started: 1, Created: 1}) || !slices.Contains(d.Warnings, "1 machine on an unreachable host not counted") {
					t.Errorf("current %+v, warnings %q", d.Current, d.Warnings)
				}
			}},
		{name: "dry run: planned", facts: func() Facts {
			f := read(two, dm("a", "started"), dm("b", "stopped"))
			f.DryRun = true
			return f
		}(), status: StatusPlanned, code: ReasonPlanned,
			check: func(t *testing.T, d Decision) {
				if len(d.Actions) != 1 || d.Actions[0].Kind != ActionStart || d.Actions[0].MachineID != "b" {
					t.Errorf("actions %+v", d.Actions)
				}
			}},
		{name: "a plan to apply", facts: read(two, dm("a", "started"), dm("b", "stopped")), next: StepApply,
			check: func(t *testing.T, d Decision) {
				if len(d.Plan.Actions) != 1 || d.Target.Started != 2 || d.Demand == nil || d.Demand.Started != 2 {
					t.Errorf("plan %+v, demand %+v", d.Plan, d.Demand)
				}
			}},
		{name: "under a budget, the plan waits", facts: func() Facts {
			f := read(two, dm("a", "started"), dm("b", "stopped"))
			f.Budgeted = true
			return f
		}(), next: StepAllocate,
			check: func(t *testing.T, d Decision) {
				if d.Floor != (Counts{}) || len(d.Plan.Actions) != 1 || len(d.Fleet.Machines) != 2 {
					t.Errorf("floor %+v, plan %+v", d.Floor, d.Plan)
				}
			}},
		{name: "the fleet budget holds a plan back", facts: func() Facts {
			fleet := NewFleet("web", "app", []*fly.Machine{dm("a", "started"), dm("b", "stopped"), dm("c", "stopped")})
			three := 3
			plan := NewPlan(fleet, Targets{Started: Range{Min: &three, Max: &three}}, Policy{}, decideNow)
			budget := 2
			return Facts{App: "web", Policy: one, Now: decideNow, DryRun: true, Plan: &plan, Fleet: fleet,
				Granted: &Counts{Started: 2, Created: 3}, Budget: Budget{MaxStarted: &budget}}
		}(), status: StatusPlanned, code: ReasonPlanned,
			check: func(t *testing.T, d Decision) {
				if d.Target != (Counts{Started: 2, Created: 3}) || len(d.Actions) != 1 || !slices.Equal(d.Warnings, []string{"held back by the fleet's started cap 2: 2 of 3 started granted"}) {
					t.Errorf("target %+v, actions %+v, warnings %q", d.Target, d.Actions, d.Warnings)
				}
			}},
		{name: "the failure ratio aborts the changes", facts: Facts{App: "web", Policy: one, Plan: &start, Abort: "changes aborted: 2 of 3 apps failed"},
			status: StatusSkipped, code: ReasonChangesAborted, reason: "changes aborted",
			check: func(t *testing.T, d Decision) {
				if len(d.Actions) != 1 || d.Actions[0].Outcome != OutcomeAborted {
					t.Errorf("actions %+v", d.Actions)
				}
			}},
		{name: "applied: scaled", facts: applied(start, res("b", OutcomeDone, "")), status: StatusScaled, code: ReasonScaled},
		{name: "applied: nothing needed after all", facts: recounted(applied(start, res("b", OutcomeUnneeded, "")), []*fly.Machine{dm("a", "started"), dm("b", "started")}, nil),
			status: StatusUnchanged, code: ReasonAtTarget},
		{name: "applied with a failure made up for: recount", facts: applied(start, res("b", OutcomeFailed, "500"), res("c", OutcomeDone, "")), next: StepRecount},
		{name: "applied: actions failed", facts: recounted(applied(start, res("b", OutcomeFailed, "500")), []*fly.Machine{dm("a", "started"), dm("b", "stopped")}, nil),
			status: StatusFailed, code: ReasonActionsFailed, reason: "1 of 1 actions failed: start b: 500 (short of its target: 1 of 2 started)"},
		{name: "applied: busy", facts: recounted(applied(startTwo, res("b", OutcomeDone, ""), res("c", OutcomeBusy, "409")), []*fly.Machine{dm("a", "started"), dm("b", "started"), dm("c", "stopped")}, nil),
			status: StatusBlocked, code: ReasonBusy, reason: "busy, leased by someone else (the next run catches up): c (short of its target: 2 of 3 started)"},
		{name: "applied: the final recount failed", facts: recounted(applied(start, res("b", OutcomeFailed, "500"), res("c", OutcomeDone, "")), nil, errors.New("503")),
			status: StatusFailed, code: ReasonRecountFailed, reason: "final recount: list machines: 503 (whether the app reached its target is not known)"},
		{name: "applied: short of its target", facts: recounted(applied(start, res("b", OutcomeFailed, "500"), res("c", OutcomeDone, "")), []*fly.Machine{dm("a", "started"), dm("b", "stopped"), dm("c", "stopped")}, nil),
			status: StatusFailed, code: ReasonShortOfTarget, reason: "short of its target after its actions: 1 of 2 started"},
		{name: "applied from a fallback", facts: func() Facts {
			f := applied(start, res("b", OutcomeDone, ""))
			f.Fallback = "metrics: down"
			return f
		}(), status: StatusFallback, code: ReasonFallback, reason: "metrics: down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.facts)
			if d.Next != tt.next || d.Status != tt.status || d.Code != tt.code {
				t.Fatalf("Decide = next %d, %s/%s (%q), want next %d, %s/%s", d.Next, d.Status, d.Code, d.Reason, tt.next, tt.status, tt.code)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q, want %q in it", d.Reason, tt.reason)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
			// Pure: the same facts, the same decision.
			if again := Decide(tt.facts); again.Next != d.Next || again.Code != d.Code || again.Reason != d.Reason {
				t.Errorf("decided %d/%s/%q, then %d/%s/%q", d.Next, d.Code, d.Reason, again.Next, again.Code, again.Reason)
			}
		})
	}
	t.Run("every code has a case", func(t *testing.T) {
		have := map[ReasonCode]bool{}
		for _, tt := range tests {
			have[tt.code] = true
		}
		for _, c := range ReasonCodes() {
			if !have[c] {
				t.Errorf("reason code %q has no case in TestDecide", c)
			}
		}
	})
}

// TestDecideCoversEveryReasonCode: every ReasonCode constant of the
// package is listed by ReasonCodes (which TestDecide covers), once.
func TestDecideCoversEveryReasonCode(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "ReasonCode" {
					for _, v := range vs.Values {
						if lit, ok := v.(*ast.BasicLit); ok {
							declared[strings.Trim(lit.Value, `"`)] = true
						}
					}
				}
			}
			return true
		})
	}
	listed := map[string]bool{}
	for _, c := range ReasonCodes() {
		if listed[string(c)] {
			t.Errorf("ReasonCodes lists %q twice", c)
		}
		listed[string(c)] = true
	}
	if len(declared) < 19 {
		t.Fatalf("found %d reason codes in the source: the parse missed them", len(declared))
	}
	for c := range declared {
		if !listed[c] {
			t.Errorf("reason code %q is not in ReasonCodes (nor so in TestDecide)", c)
		}
	}
	for c := range listed {
		if !declared[c] {
			t.Errorf("ReasonCodes lists %q, declared nowhere", c)
		}
	}
}

func TestSettle(t *testing.T) {
	plan := Plan{Actions: []Action{{Kind: ActionStart, MachineID: "a"}, {Kind: ActionStart, MachineID: "b"}}}
	r := func(id string, o Outcome) ActionResult {
		return ActionResult{Action: Action{Kind: ActionStart, MachineID: id}, Outcome: o, Error: map[bool]string{true: "500: boom"}[o == OutcomeFailed]}
	}
	tests := []struct {
		name    string
		results []ActionResult
		status  Status
		warning string
	}{
		{"all done", []ActionResult{r("a", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, ""},
		{"a spare made up for a failure", []ActionResult{r("a", OutcomeFailed), r("c", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, "spares or retries stood in for failed actions: start a: 500: boom"},
		{"a failure without a spare", []ActionResult{r("a", OutcomeFailed), r("b", OutcomeDone)}, StatusFailed, ""},
		{"busy without a spare blocks", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeDone)}, StatusBlocked, ""},
		{"nothing done, all busy", []ActionResult{r("a", OutcomeBusy), r("b", OutcomeBusy)}, StatusBlocked, ""},
		{"a spare made up for a busy machine", []ActionResult{r("a", OutcomeBusy), r("c", OutcomeDone), r("b", OutcomeDone)}, StatusScaled, "busy, leased by someone else, spares stood in: a"},
		{"busy, but a recount found the app at its target", []ActionResult{r("a", OutcomeUnneeded), r("b", OutcomeDone)}, StatusScaled, ""},
		{"aborted by the deadline", []ActionResult{r("a", OutcomeDone), r("b", OutcomeAborted)}, StatusFailed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statusFrom(AppResult{App: "x", Actions: tt.results}, plan)
			if got.Status != tt.status {
				t.Errorf("status %s (%s), want %s", got.Status, got.Reason, tt.status)
			}
			if w := strings.Join(got.Warnings, "|"); !strings.Contains(w, tt.warning) || (tt.warning == "" && w != "") {
				t.Errorf("warnings %q, want %q", w, tt.warning)
			}
			if tt.status == StatusFailed && !strings.Contains(got.Reason, "actions failed") {
				t.Errorf("reason %q", got.Reason)
			}
			if tt.status == StatusBlocked && !strings.HasPrefix(got.Reason, "busy, leased by someone else (the next run catches up): a") {
				t.Errorf("reason %q, want the busy machines named", got.Reason)
			}
		})
	}
}

func TestSettleNamesWokenAndBusyMachines(t *testing.T) {
	plan := Plan{Anchor: "a1", Actions: []Action{{Kind: ActionDestroy, MachineID: "b2"}, {Kind: ActionStart, MachineID: "c3"}}}
	got := statusFrom(AppResult{Actions: []ActionResult{
		{Action: Action{Kind: ActionDestroy, MachineID: "b2"}, Outcome: OutcomeBusy, Cause: CauseStartedSincePlan, Error: errStartedSincePlan.Error()},
		{Action: Action{Kind: ActionStart, MachineID: "c3"}, Outcome: OutcomeBusy, Error: "409: lease held"},
	}}, plan)
	w := strings.Join(got.Warnings, "|")
	if !strings.Contains(w, "started since the plan (the next run decides again): b2") {
		t.Errorf("warnings %q", w)
	}
	if got.Status != StatusBlocked || got.Reason != "busy, leased by someone else (the next run catches up): c3" {
		t.Errorf("status %s (%s), want blocked by c3", got.Status, got.Reason)
	}
}

// TestFailureRatioPassed: the changes are aborted only when more than the
// ratio of the apps failed.
func TestFailureRatioPassed(t *testing.T) {
	for _, tc := range []struct {
		failed, n int
		ratio     float64
		abort     bool
	}{
		{0, 4, 0, false}, {1, 4, 0, true}, {2, 4, 0.5, false}, {3, 4, 0.5, true}, {4, 4, 1, false},
	} {
		got := failureRatioPassed(tc.failed, tc.n, tc.ratio)
		if (got != "") != tc.abort {
			t.Errorf("%d of %d failed, ratio %g: %q, want abort %v", tc.failed, tc.n, tc.ratio, got, tc.abort)
		}
		if tc.abort && got != fmt.Sprintf("changes aborted: %d of %d apps failed, more than the failure ratio %g allows", tc.failed, tc.n, tc.ratio) {
			t.Errorf("reason %q", got)
		}
	}
}
