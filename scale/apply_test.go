package scale_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const token = "FlyV1 fm2_apply-test"

// world starts flytest with one app "app-a" holding machines and returns
// the server and real fly-go clients pointed at it.
func world(t *testing.T, machines ...flytest.MachineSpec) (*flytest.Server, scale.Apps, scale.Machines) {
	t.Helper()
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-a", ReleaseVersion: 2, Machines: machines}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	t.Cleanup(srv.Close)
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return srv, apps, m
}

// memWorld is world served in memory, for tests under testing/synctest:
// call it inside the bubble.
func memWorld(t *testing.T, machines ...flytest.MachineSpec) (*flytest.Server, scale.Machines) {
	t.Helper()
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-a", ReleaseVersion: 2, Machines: machines}}}
	srv := flytest.NewInMemory(org, flytest.Options{Token: token})
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

// machines builds fixture machines from "id=state" pairs.
func machines(pairs ...string) []flytest.MachineSpec {
	out := make([]flytest.MachineSpec, len(pairs))
	for i, p := range pairs {
		id, state, _ := strings.Cut(p, "=")
		out[i] = flytest.MachineSpec{ID: id, State: state}
	}
	return out
}

// snapshot lists app-a's machines and builds its fleet.
func snapshot(t *testing.T, m scale.Machines) scale.Fleet {
	t.Helper()
	list, err := m.List(context.Background(), "app-a", "")
	if err != nil {
		t.Fatal(err)
	}
	return scale.NewFleet("app-a", "app", list)
}

func exactly(n int) scale.Range { return scale.Range{Min: &n, Max: &n} }

func outcomes(rs []scale.ActionResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Kind)+" "+r.MachineID+" "+string(r.Outcome))
	}
	return out
}

func ops(srv *flytest.Server, op string) []flytest.Call {
	var out []flytest.Call
	for _, c := range srv.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func TestApplyBusyMachineMovesToTheNextSpare(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Started: exactly(2)}, scale.Policy{}, time.Now())
	if len(plan.Actions) != 1 || plan.Actions[0].MachineID != "b2" || len(plan.Spares[scale.ActionStart]) != 1 {
		t.Fatalf("unexpected plan %+v", plan)
	}
	srv.HoldLease("app-a", "b2", "deploy", time.Minute) // a deploy holds b2

	res := scale.Apply(context.Background(), m, f, plan)
	got := outcomes(res)
	want := []string{"start b2 busy", "start c3 done"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	if srv.Count("app-a", "started") != 2 {
		t.Errorf("%d started, want 2", srv.Count("app-a", "started"))
	}
	if st := srv.Machines("app-a"); st[1].State != "stopped" {
		t.Errorf("leased machine b2 changed to %s", st[1].State)
	}
}

func TestApplyStopsWhenTheDeadlinePasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := memWorld(t, machines("a1=stopped", "b2=stopped")...)
		f := snapshot(t, m)
		plan := scale.NewPlan(f, scale.Targets{Started: exactly(2)}, scale.Policy{}, time.Now())
		srv.Inject(flytest.Fault{Op: flytest.OpStart, Latency: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()

		start := time.Now()
		res := scale.Apply(ctx, m, f, plan)
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Errorf("Apply took %v on the bubble's clock, want the 200ms deadline", d)
		}
		if len(res) != 2 {
			t.Fatalf("%d results, want both planned starts reported", len(res))
		}
		for _, r := range res {
			if r.Outcome != scale.OutcomeAborted {
				t.Errorf("%s %s: outcome %s, want aborted", r.Kind, r.MachineID, r.Outcome)
			}
		}
	})
}

func TestApplyTwiceFromOneSnapshotDoesNotOvershoot(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=started", "c3=stopped", "d4=stopped", "e5=stopped")...)
	f := snapshot(t, m)
	// Two overlapping runs decide from the same snapshot.
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3), Started: exactly(3)}, scale.Policy{}, time.Now())
	first := scale.Apply(context.Background(), m, f, plan)
	second := scale.Apply(context.Background(), m, f, plan)
	for _, r := range append(first, second...) {
		if r.Outcome == scale.OutcomeFailed {
			t.Errorf("%s %s failed: %s", r.Kind, r.MachineID, r.Error)
		}
	}
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines after two overlapping applies, want 3: %q then %q", n, outcomes(first), outcomes(second))
	}
	if n := srv.Count("app-a", "started"); n != 3 {
		t.Errorf("%d started, want 3", n)
	}
	for _, r := range second {
		if r.Kind == scale.ActionDestroy && r.Outcome != scale.OutcomeUnneeded {
			t.Errorf("second apply: destroy %s %s, want unneeded", r.MachineID, r.Outcome)
		}
		if r.Kind == scale.ActionStart && r.Outcome != scale.OutcomeDone {
			t.Errorf("second apply: start %s %s, want done (already started)", r.MachineID, r.Outcome)
		}
	}
}

// lying wraps Machines so that the first create or destroy takes effect but
// answers 500, as when the API's answer is lost after the change.
type lying struct {
	scale.Machines
	lied bool
}

func (l *lying) lie() error {
	l.lied = true
	return &flaps.FlapsError{OriginalError: errors.New("internal error"), ResponseStatusCode: 500}
}

func (l *lying) Launch(ctx context.Context, app string, in fly.LaunchMachineInput) (*fly.Machine, error) {
	m, err := l.Machines.Launch(ctx, app, in)
	if err == nil && !l.lied {
		return nil, l.lie()
	}
	return m, err
}

func (l *lying) Destroy(ctx context.Context, app string, in fly.RemoveMachineInput, nonce string) error {
	err := l.Machines.Destroy(ctx, app, in, nonce)
	if err == nil && !l.lied {
		return l.lie()
	}
	return err
}

// racing wraps Machines: someone else destroys machine gone just before our
// lease on it, and machine stopping is already on its way down when we stop it.
type racing struct {
	scale.Machines
	gone, stopping string
}

func (r *racing) AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	if id == r.gone {
		r.gone = ""
		if err := r.Machines.Destroy(ctx, app, fly.RemoveMachineInput{ID: id, Kill: true}, ""); err != nil {
			return nil, err
		}
	}
	return r.Machines.AcquireLease(ctx, app, id, ttl)
}

func (r *racing) Stop(ctx context.Context, app string, in fly.StopMachineInput, nonce string) error {
	if in.ID == r.stopping {
		return fmt.Errorf("412: failed_precondition: unable to stop machine from current state: 'stopping': %w", scale.ErrAlreadyStopped)
	}
	return r.Machines.Stop(ctx, app, in, nonce)
}

func TestApplyStopOfAMachineAlreadyStoppingTakesNoSpare(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=started", "c3=started")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Started: exactly(2)}, scale.Policy{}, time.Now())
	if len(plan.Actions) != 1 || plan.Actions[0].MachineID != "a1" {
		t.Fatalf("plan %+v, want stop a1", plan.Actions)
	}
	res := scale.Apply(context.Background(), &racing{Machines: m, stopping: "a1"}, f, plan)
	if n := srv.Count("app-a", "started"); n != 3 {
		// a1 is "stopping" in this story; the fake keeps it started, so
		// any stop that reached the server was a spare's.
		t.Errorf("%d started in the fake, want 3: a spare was stopped (%q)", n, outcomes(res))
	}
	if len(res) != 1 || res[0].Outcome != scale.OutcomeDone {
		t.Errorf("outcomes %q, want the stop done (already stopping)", outcomes(res))
	}
}
