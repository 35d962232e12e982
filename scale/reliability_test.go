package scale_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// overTransport is world with the clients over the retrying transport, as
// the command builds them, with short backoffs.
func overTransport(t *testing.T, ms ...flytest.MachineSpec) (*flytest.Server, scale.Machines) {
	t.Helper()
	srv, _, _ := world(t, ms...)
	rt := flyapi.NewTransport(nil, flyapi.TransportOptions{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

func TestApplyAnswersLostAfterTheEffect(t *testing.T) {
	destroyed412 := `{"error":"failed_precondition: unable to destroy machine from current state: 'destroyed'"}`
	tests := []struct {
		name     string
		machines []string
		created  int
		faults   []flytest.Fault
		want     string // what the report says of the action whose answer was lost
	}{
		{"create answered 503", []string{"a1=started"}, 3,
			[]flytest.Fault{{Op: flytest.OpLaunch, Status: http.StatusServiceUnavailable, After: true, Times: 1}},
			"a recount found the machine made"},
		{"create's connection dropped", []string{"a1=started"}, 3,
			[]flytest.Fault{{Op: flytest.OpLaunch, Drop: true, After: true, Times: 1}},
			"a recount found the machine made"},
		{"destroy answered 500, its retry finds it gone", []string{"a1=started", "b2=stopped", "c3=stopped", "d4=stopped"}, 2,
			[]flytest.Fault{{Op: flytest.OpDestroy, Status: http.StatusInternalServerError, After: true, Times: 1}},
			""},
		{"destroy answered 500, its retry refused 412", []string{"a1=started", "b2=stopped", "c3=stopped", "d4=stopped"}, 2,
			[]flytest.Fault{
				{Op: flytest.OpDestroy, Status: http.StatusInternalServerError, After: true, Times: 1},
				{Op: flytest.OpDestroy, Status: http.StatusPreconditionFailed, Body: destroyed412, Times: 1},
			},
			"a recount found the machine gone"},
		{"destroy answered 500 on every attempt", []string{"a1=started", "b2=stopped", "c3=stopped", "d4=stopped"}, 2,
			[]flytest.Fault{
				{Op: flytest.OpDestroy, Status: http.StatusInternalServerError, After: true, Times: 1},
				{Op: flytest.OpDestroy, Status: http.StatusInternalServerError, Times: 3},
			},
			"a recount found the machine gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, m := overTransport(t, machines(tt.machines...)...)
			f := snapshot(t, m)
			plan := scale.NewPlan(f, scale.Targets{Created: exactly(tt.created)}, scale.Policy{}, time.Now())
			for _, fault := range tt.faults {
				srv.Inject(fault)
			}
			res := scale.Apply(context.Background(), m, f, plan)
			if n := srv.Count("app-a", ""); n != tt.created {
				t.Errorf("%d machines, want exactly the target %d (%q)", n, tt.created, outcomes(res))
			}
			if len(res) != len(plan.Actions) {
				t.Fatalf("outcomes %q, want one per planned action", outcomes(res))
			}
			for _, r := range res {
				if r.Outcome != scale.OutcomeDone {
					t.Errorf("%s %s: %s (%s), want done", r.Kind, r.MachineID, r.Outcome, r.Error)
				}
			}
			if !strings.Contains(res[0].Error, tt.want) {
				t.Errorf("first action's report %q, want it to say %q", res[0].Error, tt.want)
			}
			if tt.created == 2 && !strings.HasPrefix(fmt.Sprint(outcomes(res)), "[destroy b2 done destroy c3 done") {
				t.Errorf("outcomes %q, want the planned victims b2 and c3 destroyed, no spare", outcomes(res))
			}
		})
	}
}

func TestApplyBusyMachineAlreadyInTheWantedStateTakesNoSpare(t *testing.T) {
	for _, tt := range []struct {
		name     string
		machines []string
		started  int
	}{
		{"stop", []string{"a1=started", "b2=started", "c3=started"}, 2},
		{"start", []string{"a1=started", "b2=stopped", "c3=stopped"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, m := world(t, machines(tt.machines...)...)
			f := snapshot(t, m)
			plan := scale.NewPlan(f, scale.Targets{Started: exactly(tt.started)}, scale.Policy{}, time.Now())
			if len(plan.Actions) != 1 {
				t.Fatalf("plan %+v, want one action", plan.Actions)
			}
			act := plan.Actions[0]
			// An overlapping run got there first and holds the machine.
			var err error
			if act.Kind == scale.ActionStop {
				err = m.Stop(context.Background(), "app-a", fly.StopMachineInput{ID: act.MachineID}, "")
			} else {
				_, err = m.Start(context.Background(), "app-a", act.MachineID, "")
			}
			if err != nil {
				t.Fatal(err)
			}
			srv.HoldLease("app-a", act.MachineID, "another run", time.Minute)

			res := scale.Apply(context.Background(), m, f, plan)
			if n := srv.Count("app-a", "started"); n != tt.started {
				t.Errorf("%d started, want %d: a spare stood in for a machine already there (%q)", n, tt.started, outcomes(res))
			}
			if len(res) != 1 || res[0].Outcome != scale.OutcomeDone || !strings.Contains(res[0].Error, "but already") {
				t.Errorf("results %+v, want the action done, the machine already there", res)
			}
		})
	}
}

func TestApplySpareOnlyWhileTheFreshCountNeedsIt(t *testing.T) {
	for _, tt := range []struct {
		name     string
		machines []string
		other    string // what an overlapping run did to the last spare
	}{
		{"stop", []string{"a1=started", "b2=started", "c3=started"}, "stop"},
		{"start", []string{"a1=started", "b2=stopped", "c3=stopped", "d4=stopped"}, "start"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, m := world(t, machines(tt.machines...)...)
			f := snapshot(t, m)
			plan := scale.NewPlan(f, scale.Targets{Started: exactly(2)}, scale.Policy{}, time.Now())
			spares := plan.Spares[plan.Actions[0].Kind]
			if len(plan.Actions) != 1 || len(spares) < 2 {
				t.Fatalf("plan %+v, want one action and two spares", plan)
			}
			// A deploy holds the planned machine; an overlapping run moved
			// the app to its target through the last spare.
			srv.HoldLease("app-a", plan.Actions[0].MachineID, "deploy", time.Minute)
			last := spares[len(spares)-1]
			var err error
			if tt.other == "stop" {
				err = m.Stop(context.Background(), "app-a", fly.StopMachineInput{ID: last}, "")
			} else {
				_, err = m.Start(context.Background(), "app-a", last, "")
			}
			if err != nil {
				t.Fatal(err)
			}

			res := scale.Apply(context.Background(), m, f, plan)
			if n := srv.Count("app-a", "started"); n != 2 {
				t.Errorf("%d started, want 2: a spare was used with the app at its target (%q)", n, outcomes(res))
			}
			if len(res) != 1 || res[0].Outcome != scale.OutcomeUnneeded {
				t.Errorf("outcomes %q, want the busy action unneeded", outcomes(res))
			}
		})
	}
}

func TestApplyRefreshesItsLeaseWhileWorkGoesOn(t *testing.T) {
	// The server's clock is the bubble's, pumped by the slow create.
	var clock atomic.Int64
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-a", Machines: machines("a1=started")}}},
		flytest.Options{Token: token, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	t.Cleanup(srv.Close)

	synctest.Test(t, func(t *testing.T) {
		clock.Store(time.Now().UnixNano())
		// No idle connections: their reads would keep the bubble's clock
		// from moving.
		_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL,
			Transport: &http.Transport{DisableKeepAlives: true}})
		if err != nil {
			t.Fatal(err)
		}
		f := snapshot(t, m)
		plan := scale.NewPlan(f, scale.Targets{Created: exactly(2)}, scale.Policy{}, time.Now())
		slow := &slowLaunch{Machines: m, clock: &clock, wait: 4 * scale.LeaseTTL}
		res := scale.Apply(context.Background(), slow, f, plan)
		if len(res) != 1 || res[0].Outcome != scale.OutcomeDone {
			t.Fatalf("outcomes %q, want the create done", outcomes(res))
		}
		if slow.otherGot != nil {
			t.Errorf("an overlapping run took the anchor's lease %v into a create: %v", slow.wait, slow.otherGot)
		}
		refreshes := ops(srv, flytest.OpLeaseRefresh)
		if n := len(refreshes); n < 10 {
			t.Errorf("%d lease refreshes during a %v create, want one every %v", n, slow.wait, scale.LeaseTTL/3)
		}
		for _, c := range append(ops(srv, flytest.OpLeaseAcquire), refreshes...) {
			if c.Status == 200 && !strings.Contains(c.RawQuery, fmt.Sprintf("ttl=%d", int(scale.LeaseTTL/time.Second))) {
				t.Errorf("lease call %s?%s: want the short ttl", c.Path, c.RawQuery)
			}
		}
	})
}

// slowLaunch makes a create take wait on the bubble's clock, which it
// copies to the server's, and tries meanwhile to take the anchor's lease as
// an overlapping run would.
type slowLaunch struct {
	scale.Machines
	clock    *atomic.Int64
	wait     time.Duration
	otherGot error // nil unless the other run's lease request succeeded
}

func (s *slowLaunch) Launch(ctx context.Context, app string, in fly.LaunchMachineInput) (*fly.Machine, error) {
	for end := time.Now().Add(s.wait); time.Now().Before(end); {
		time.Sleep(time.Second)
		s.clock.Store(time.Now().UnixNano())
	}
	ttl := 15
	if l, err := s.Machines.AcquireLease(ctx, app, "a1", &ttl); err == nil {
		s.otherGot = fmt.Errorf("lease %s granted", l.Data.Nonce)
	}
	return s.Machines.Launch(ctx, app, in)
}

// fixedTargets are expressions for exactly started and created machines.
func fixedTargets(t *testing.T, started, created int) scale.Expressions {
	t.Helper()
	s, err := scale.CompileExpr(fmt.Sprint(started), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := scale.CompileExpr(fmt.Sprint(created), nil)
	if err != nil {
		t.Fatal(err)
	}
	return scale.Expressions{MinStarted: s, MaxStarted: s, MinCreated: c, MaxCreated: c}
}

// convergeOrg has 300 apps for targets of 2 started and 4 machines:
// up-* need two machines created and one started, down-* two destroyed
// and one stopped.
func convergeOrg() *flytest.Org {
	return &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{
		{Name: "up-%03d", Count: 150, Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}},
		{Name: "down-%03d", Count: 150, Machines: []flytest.MachineSpec{{State: "started", Count: 3}, {State: "stopped", Count: 3}}},
	}}
}

func TestOneRunConvergesUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("300 apps under injected faults")
	}
	srv := flytest.New(convergeOrg(), flytest.Options{Token: token, Seed: 8})
	t.Cleanup(srv.Close)
	// 10% of every Machines API call answered 500 and 10% 429.
	for _, op := range []string{flytest.OpList, flytest.OpLaunch, flytest.OpStart, flytest.OpStop, flytest.OpDestroy,
		flytest.OpLeaseAcquire, flytest.OpLeaseRefresh, flytest.OpLeaseRelease} {
		srv.Inject(flytest.Fault{Op: op, Status: http.StatusInternalServerError, Probability: 0.1})
		srv.Inject(flytest.Fault{Op: op, Status: http.StatusTooManyRequests, Probability: 0.1 / 0.9})
	}
	type counts struct{ started, created int }
	before := map[string]counts{}
	for _, a := range srv.Apps() {
		before[a] = counts{srv.Count(a, "started"), srv.Count(a, "")}
	}

	rt := flyapi.NewTransport(nil, flyapi.TransportOptions{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := scale.NewSelector([]string{"*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := scale.Config{Org: "my-org", Selector: sel, Expressions: fixedTargets(t, 2, 4), Concurrency: 16}
	rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: m})
	if rep.Err != nil || len(rep.Apps) != 300 {
		t.Fatalf("run: %v, %d apps", rep.Err, len(rep.Apps))
	}

	atTarget, status := 0, map[scale.Status]int{}
	for _, r := range rep.Apps {
		status[r.Status]++
		b, a := before[r.App], counts{srv.Count(r.App, "started"), srv.Count(r.App, "")}
		// A fault may leave an app short, never past its target or moved
		// the wrong way.
		if a.created < min(b.created, 4) || a.created > max(b.created, 4) || a.started < min(b.started, 2) || a.started > max(b.started, 2) {
			t.Errorf("%s: %+v -> %+v, past the target (2 started, 4 machines): %s %s", r.App, b, a, r.Status, r.Reason)
		}
		if a == (counts{2, 4}) {
			atTarget++
		} else if r.Status != scale.StatusFailed {
			t.Errorf("%s: reported %s but ends at %+v (%s; %q)", r.App, r.Status, a, r.Reason, outcomes(r.Actions))
		}
	}
	for _, r := range rep.Apps {
		if r.Status == scale.StatusFailed && testing.Verbose() {
			t.Logf("%s: %s", r.App, r.Reason)
		}
	}
	pct := float64(atTarget) * 100 / 300
	t.Logf("one run under 10%% 500s and 10%% 429s: %d of 300 apps (%.1f%%) at target; statuses %v", atTarget, pct, status)
	if pct < 80 {
		t.Errorf("%.1f%% of apps at target after one run, want at least 80%%", pct)
	}
}

func TestDeployStartedMidRunIsSeenBeforeTheAppIsTouched(t *testing.T) {
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "rel-%d", Count: 3,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	t.Cleanup(srv.Close)
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := scale.NewSelector([]string{"rel-*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := scale.Config{Org: "my-org", Selector: sel, Expressions: fixedTargets(t, 2, 2), Concurrency: 1,
		Now: func() time.Time { return time.Unix(0, now.Load()) }}

	t.Run("steady state", func(t *testing.T) {
		srv.ResetCalls()
		rep := scale.Run(context.Background(), scale.Config{Org: "my-org", Selector: sel, Expressions: fixedTargets(t, 1, 2), Concurrency: 1, Now: cfg.Now},
			scale.Deps{Apps: apps, Machines: m})
		for _, r := range rep.Apps {
			if r.Status != scale.StatusUnchanged {
				t.Errorf("%s: %s (%s), want unchanged", r.App, r.Status, r.Reason)
			}
		}
		perApp := map[string]int{}
		for _, c := range srv.Calls() {
			perApp[c.Op]++
		}
		if perApp[flytest.OpList] != 3 || perApp[flytest.OpGraphQLRelease] != 0 {
			t.Errorf("calls by operation %v, want one list per app and no release read in a short run", perApp)
		}
	})

	t.Run("deploy mid-run", func(t *testing.T) {
		srv.ResetCalls()
		cfg.Progress = func(done, _ int) {
			if done == 1 {
				// rel-1 took 40 s; meanwhile a deploy of rel-2 started,
				// after the listing and before rel-2's turn.
				now.Add(int64(40 * time.Second))
				srv.SetReleaseStatus("rel-2", "running")
			}
		}
		rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: m})
		got := map[string]scale.AppResult{}
		for _, r := range rep.Apps {
			got[r.App] = r
		}
		if r := got["rel-2"]; r.Status != scale.StatusSkipped || r.Reason != "release in progress" {
			t.Errorf("rel-2: %s (%s), want skipped: release in progress", r.Status, r.Reason)
		}
		if r := got["rel-3"]; r.Status != scale.StatusScaled {
			t.Errorf("rel-3: %s (%s), want scaled: its release was read again and is complete", r.Status, r.Reason)
		}
		for _, c := range srv.Calls() {
			if c.App == "rel-2" && c.Op != flytest.OpGraphQLRelease {
				t.Errorf("rel-2 is being deployed but was called: %s %s", c.Method, c.Path)
			}
		}
		if n := srv.Count("rel-2", "started"); n != 1 {
			t.Errorf("rel-2 has %d started machines, want 1 (untouched)", n)
		}
	})
}

// slowList makes each app's list take 5 s on the bubble's clock, and
// starts a deploy of deploy when the list of flipAt is read.
type slowList struct {
	scale.Machines
	srv            *flytest.Server
	flipAt, deploy string
}

func (s *slowList) List(ctx context.Context, app, state string) ([]*fly.Machine, error) {
	if app == s.flipAt {
		s.srv.SetReleaseStatus(s.deploy, "running")
	}
	time.Sleep(5 * time.Second)
	return s.Machines.List(ctx, app, state)
}

func TestLongRunRefreshesTheListingForReleases(t *testing.T) {
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "bg-%02d", Count: 12,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	t.Cleanup(srv.Close)

	synctest.Test(t, func(t *testing.T) {
		// No idle connections: their reads would keep the bubble's clock
		// from moving.
		apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL,
			Transport: &http.Transport{DisableKeepAlives: true}})
		if err != nil {
			t.Fatal(err)
		}
		sel, err := scale.NewSelector([]string{"bg-*"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// 12 apps one after the other, 5 s each: a 60 s run. A deploy of
		// bg-10 starts at 25 s, after the listing and before its turn.
		cfg := scale.Config{Org: "my-org", Selector: sel, Expressions: fixedTargets(t, 2, 2), Concurrency: 1}
		rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: &slowList{Machines: m, srv: srv, flipAt: "bg-06", deploy: "bg-10"}})

		for _, r := range rep.Apps {
			want := scale.StatusScaled
			if r.App == "bg-10" {
				want = scale.StatusSkipped
			}
			if r.Status != want {
				t.Errorf("%s: %s (%s), want %s", r.App, r.Status, r.Reason, want)
			}
		}
		listings, reads := 0, 0
		for _, c := range srv.Calls() {
			switch c.Op {
			case flytest.OpGraphQLApps:
				listings++
			case flytest.OpGraphQLRelease:
				reads++
			}
		}
		// The listing at the start, then one every 20 s of the 60 s run.
		if listings < 3 || listings > 4 || reads != 0 {
			t.Errorf("%d listings and %d per-app release reads in a 60 s run, want 3 or 4 listings and no per-app read", listings, reads)
		}
	})
}
