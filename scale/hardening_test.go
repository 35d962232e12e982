package scale_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// fleetWorld starts flytest with the given apps and returns real fly-go
// clients pointed at it, behind the run's transport.
func fleetWorld(t *testing.T, apps ...flytest.AppSpec) (*flytest.Server, scale.Deps) {
	t.Helper()
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: apps}, flytest.Options{Token: token})
	t.Cleanup(srv.Close)
	a, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL,
		Transport: flyapi.NewTransport(nil, flyapi.TransportOptions{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})})
	if err != nil {
		t.Fatal(err)
	}
	return srv, scale.Deps{Apps: a, Machines: m}
}

func mustExpr(t *testing.T, src string, vars ...string) *scale.Expr {
	t.Helper()
	e, err := scale.CompileExpr(src, vars)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runConfig(t *testing.T, apps ...string) scale.Config {
	t.Helper()
	sel, err := scale.NewSelector(apps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return scale.Config{Selector: sel, Timeout: 10 * time.Second}
}

func TestPlanIsBoundedByMachinesNotByTarget(t *testing.T) {
	_, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped")...)
	f := snapshot(t, m)
	huge := exactly(1_000_000_000)
	for _, tc := range []struct {
		policy scale.Policy
		limit  int
	}{
		{scale.Policy{}, scale.DefaultMaxMachines},
		{scale.Policy{MaxMachines: 10}, 10},
	} {
		plan := scale.NewPlan(f, scale.Targets{Created: huge, Started: huge}, tc.policy, time.Now())
		if got := len(plan.Actions); got != tc.limit-1 { // 2 starts + limit-3 creates
			t.Errorf("max %d: %d actions for a target of 1e9, want %d", tc.limit, got, tc.limit-1)
		}
		if plan.Target.Created != tc.limit {
			t.Errorf("max %d: target created %d", tc.limit, plan.Target.Created)
		}
		b, _ := json.Marshal(plan)
		if len(b) > 200*tc.limit {
			t.Errorf("max %d: plan of %d bytes", tc.limit, len(b))
		}
		err := scale.CheckTargets(f.Counts(), scale.Targets{Created: huge}, tc.policy)
		if !errors.Is(err, scale.ErrImplausible) || !strings.Contains(err.Error(), fmt.Sprintf("above the machine limit %d", tc.limit)) {
			t.Errorf("max %d: CheckTargets = %v", tc.limit, err)
		}
	}
	// At the ceiling, or shrinking from above it, is plausible.
	if err := scale.CheckTargets(scale.Counts{Created: 600}, scale.Targets{Created: exactly(550)}, scale.Policy{}); err != nil {
		t.Errorf("shrinking from 600 to 550: %v", err)
	}
	if err := scale.CheckTargets(scale.Counts{Created: 3}, scale.Targets{Created: exactly(500)}, scale.Policy{}); err != nil {
		t.Errorf("500 of 500: %v", err)
	}
}

func BenchmarkPlanHugeTarget(b *testing.B) {
	org := flytest.AppSpec{Name: "app-a", ReleaseVersion: 2, Machines: machines("a1=started", "b2=stopped")}
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{org}}, flytest.Options{})
	defer srv.Close()
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: "x", APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	list, _ := m.List(context.Background(), "app-a", "")
	f := scale.NewFleet("app-a", "app", list)
	for _, target := range []int{10, 1_000_000_000} {
		b.Run(fmt.Sprint(target), func(b *testing.B) {
			for b.Loop() {
				scale.NewPlan(f, scale.Targets{Created: exactly(target)}, scale.Policy{}, time.Now())
			}
		})
	}
}

func TestRunFailsAnAppWithAnImplausibleTarget(t *testing.T) {
	srv, deps := fleetWorld(t, flytest.AppSpec{Name: "app-a", ReleaseVersion: 2, Machines: machines("a1=started")})
	for _, src := range []string{"1e9", "1e6", "501"} {
		cfg := runConfig(t, "app-a")
		e := mustExpr(t, src)
		cfg.Expressions = scale.Expressions{MinCreated: e, MaxCreated: e}
		rep := scale.Run(context.Background(), cfg, deps)
		a := rep.Apps[0]
		if a.Status != scale.StatusFailed || !strings.Contains(a.Reason, "the machine limit 500") || len(a.Actions) != 0 {
			t.Errorf("%s: %s %q, %d actions; want failed naming the machine limit", src, a.Status, a.Reason, len(a.Actions))
		}
	}
	if n := len(srv.Mutations()); n != 0 {
		t.Errorf("%d changes made for implausible targets", n)
	}
}

func TestMaxScaleZeroFreezesThatDirection(t *testing.T) {
	_, _, m := world(t, machines("a1=started", "b2=stopped", "c3=started")...)
	f := snapshot(t, m)
	zero := 0
	up := scale.NewPlan(f, scale.Targets{Started: exactly(3), Created: exactly(5)}, scale.Policy{MaxScaleUp: &zero}, time.Now())
	for _, a := range up.Actions {
		if a.Kind == scale.ActionStart || a.Kind == scale.ActionCreate {
			t.Errorf("--max-scale-up 0 planned %s %s", a.Kind, a.MachineID)
		}
	}
	if up.Target != f.Counts() {
		t.Errorf("--max-scale-up 0: target %+v, want the current %+v", up.Target, f.Counts())
	}
	down := scale.NewPlan(f, scale.Targets{Started: exactly(0), Created: exactly(1)}, scale.Policy{MaxScaleDown: &zero}, time.Now())
	if len(down.Actions) != 0 {
		t.Errorf("--max-scale-down 0 planned %+v", down.Actions)
	}
	// Unset is no limit.
	free := scale.NewPlan(f, scale.Targets{Started: exactly(3), Created: exactly(5)}, scale.Policy{}, time.Now())
	if free.Target != (scale.Counts{Started: 3, Created: 5}) {
		t.Errorf("no limit: target %+v", free.Target)
	}
}

func TestOverflowingExpressionsFailTheApp(t *testing.T) {
	srv, deps := fleetWorld(t, flytest.AppSpec{Name: "app-a", ReleaseVersion: 2, Machines: machines("a1=started", "b2=started")})
	for _, src := range []string{"9223372036854775807 + 1", "3037000500 * 3037000500", "int(1e19)", "2 ** 80", "-(-9223372036854775807 - 1)"} {
		cfg := runConfig(t, "app-a")
		e := mustExpr(t, src)
		cfg.Expressions = scale.Expressions{MinStarted: e, MaxStarted: e}
		rep := scale.Run(context.Background(), cfg, deps)
		if a := rep.Apps[0]; a.Status != scale.StatusFailed || !strings.Contains(a.Reason, "past the range of a machine count") {
			t.Errorf("%s: %s %q, want failed", src, a.Status, a.Reason)
		}
	}
	if n := len(srv.Mutations()); n != 0 {
		t.Errorf("%d changes made for overflowing expressions", n)
	}
	// Ordinary arithmetic, % included, still works.
	for src, want := range map[string]int{"10 % 3": 1, "int(2.7) + 1": 3, "ceil(7 / 2)": 4, "max(1, 2) * 2": 4} {
		if got, err := mustExpr(t, src).Eval(nil); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", src, got, err, want)
		}
	}
}

func TestAppWithoutACloneSourceIsSkipped(t *testing.T) {
	srv, deps := fleetWorld(t, flytest.AppSpec{Name: "app-a", ReleaseVersion: 2})
	cfg := runConfig(t, "app-a")
	two := mustExpr(t, "2")
	cfg.Expressions = scale.Expressions{MinCreated: two, MaxCreated: two}
	rep := scale.Run(context.Background(), cfg, deps)
	a := rep.Apps[0]
	if a.Status != scale.StatusSkipped || a.Reason != `no machine of group "app" to clone: deploy the app first` {
		t.Errorf("%s %q, want skipped for want of a clone source", a.Status, a.Reason)
	}
	if n := len(srv.Mutations()); n != 0 {
		t.Errorf("%d changes made", n)
	}
}

// failingFor is a metrics source that fails for one app and reads 9 for
// the others.
type failingFor string

func (failingFor) Prefetch(context.Context, []string) {}

func (f failingFor) Collect(_ context.Context, app string) (map[string]float64, error) {
	if app == string(f) {
		return nil, errors.New("query: 503 service unavailable")
	}
	return map[string]float64{"q": 9}, nil
}

func TestMaxFailureRatioDecidesTheSameWayEveryRun(t *testing.T) {
	var specs []flytest.AppSpec
	for _, name := range []string{"app-a", "app-b", "app-c", "app-d"} {
		specs = append(specs, flytest.AppSpec{Name: name, ReleaseVersion: 2, Machines: machines(name+"1=started", name+"2=stopped", name+"3=stopped")})
	}
	srv, deps := fleetWorld(t, specs...)
	// app-a fails first or last, depending on the workers: the outcome
	// must not.
	deps.Metrics = failingFor("app-a")
	cfg := runConfig(t, "app-a", "app-b", "app-c", "app-d")
	cfg.Concurrency = 4
	e := mustExpr(t, "q > 5 ? 3 : 1", "q")
	cfg.Expressions = scale.Expressions{MinStarted: e, MaxStarted: e}
	cfg.LimitFailures, cfg.MaxFailureRatio = true, 0.2
	for run := range 20 {
		rep := scale.Run(context.Background(), cfg, deps)
		var got []string
		for _, a := range rep.Apps {
			got = append(got, a.App+"="+string(a.Status))
			if a.App != "app-a" && (len(a.Actions) != 2 || a.Actions[0].Outcome != scale.OutcomeAborted) {
				t.Errorf("run %d: %s actions %+v, want 2 aborted", run, a.App, a.Actions)
			}
		}
		if s := strings.Join(got, " "); s != "app-a=failed app-b=skipped app-c=skipped app-d=skipped" {
			t.Errorf("run %d: %s", run, s)
		}
		if n := len(srv.Mutations()); n != 0 {
			t.Fatalf("run %d: %d changes made past the failure ratio", run, n)
		}
	}
	// Under the ratio, the other apps are acted on.
	cfg.MaxFailureRatio = 0.3
	rep := scale.Run(context.Background(), cfg, deps)
	for _, a := range rep.Apps[1:] {
		if a.Status != scale.StatusScaled {
			t.Errorf("ratio 0.3: %s %s %q", a.App, a.Status, a.Reason)
		}
	}
	if n := len(ops(srv, flytest.OpStart)); n != 6 {
		t.Errorf("ratio 0.3: %d starts, want 6", n)
	}
}

func TestHTTPStatusesReportedAsReceived(t *testing.T) {
	for _, status := range []int{502, 503} {
		srv, deps := fleetWorld(t, flytest.AppSpec{Name: "app-a", ReleaseVersion: 2, Machines: machines("a1=started")})
		srv.Inject(flytest.Fault{Op: flytest.OpGraphQLOrg, Status: status})
		cfg := runConfig(t, "app-*")
		cfg.Org = "my-org"
		one := mustExpr(t, "1")
		cfg.Expressions = scale.Expressions{MinStarted: one, MaxStarted: one}
		rep := scale.Run(context.Background(), cfg, deps)
		if rep.Err == nil || !strings.Contains(rep.Err.Error(), fmt.Sprint(status)) || strings.Contains(rep.Err.Error(), "500") {
			t.Errorf("GraphQL %d reported as %v", status, rep.Err)
		}

		srv, deps = fleetWorld(t, flytest.AppSpec{Name: "app-a", ReleaseVersion: 2, Machines: machines("a1=started")})
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: status})
		rep = scale.Run(context.Background(), runConfigWith(t, cfg, "app-a"), deps)
		if r := rep.Apps[0].Reason; !strings.Contains(r, fmt.Sprintf("list machines: %d: ", status)) || strings.Contains(r, "500") || strings.Contains(r, "HTTP") {
			t.Errorf("Machines API %d reported as %q", status, r)
		}
	}
}

func runConfigWith(t *testing.T, cfg scale.Config, apps ...string) scale.Config {
	t.Helper()
	sel, err := scale.NewSelector(apps, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Selector, cfg.Org = sel, ""
	return cfg
}
