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
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// overTransport is world with the clients over the retrying transport, as
// the command builds them, with short backoffs.
func overTransport(t *testing.T, ms ...flytest.MachineSpec) (*flytest.Server, scale.Machines) {
	t.Helper()
	srv, _, _ := world(t, ms...)
	rt := scale.NewTransport(nil, scale.TransportOptions{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	_, m, err := scale.NewFlyClients(context.Background(), scale.ClientOptions{Token: token, APIBaseURL: srv.URL, Transport: rt})
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
	t.Setenv("FLY_FLAPS_BASE_URL", srv.URL)

	synctest.Test(t, func(t *testing.T) {
		clock.Store(time.Now().UnixNano())
		// No idle connections: their reads would keep the bubble's clock
		// from moving.
		_, m, err := scale.NewFlyClients(context.Background(), scale.ClientOptions{Token: token, APIBaseURL: srv.URL,
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
