package scale_test

import (
	"context"
	"strings"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func TestApplyCreatesRecountUnderTheCloneSourceLease(t *testing.T) {
	srv, _, m := world(t, flytest.MachineSpec{ID: "a1", State: "started", Image: "registry.fly.io/app-a:deployment-2"})
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3), Started: exactly(3)}, scale.Policy{}, time.Now())
	if n := len(plan.Actions); n != 2 {
		t.Fatalf("plan has %d actions, want 2 creates", n)
	}
	// Another run creates one machine between our plan and our apply.
	if _, err := m.Launch(context.Background(), "app-a", fly.LaunchMachineInput{Config: f.Machines[0].Raw().Config, Region: "ord"}); err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()

	res := scale.Apply(context.Background(), m, f, plan)
	got := outcomes(res)
	// The recount drops one create up front; the other is made.
	if len(got) != 2 || res[0].Outcome != scale.OutcomeUnneeded || res[1].Outcome != scale.OutcomeDone {
		t.Fatalf("outcomes %q, want one create unneeded and one done", got)
	}
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines, want 3 (no more than the target)", n)
	}
	// Lease, recount, launch, release, in that order.
	var seq []string
	for _, c := range srv.Calls() {
		seq = append(seq, c.Op)
	}
	want := []string{flytest.OpLeaseAcquire, flytest.OpList, flytest.OpLaunch, flytest.OpLeaseRelease}
	if len(seq) != len(want) {
		t.Fatalf("calls %q, want %q", seq, want)
	}
	for i := range want {
		if seq[i] != want[i] {
			t.Fatalf("calls %q, want %q", seq, want)
		}
	}
	// The new machine is a clone of the source, pinned to its full image
	// reference (tag and digest).
	pinned := f.Machines[0].Raw().FullImageRef()
	if !strings.HasPrefix(pinned, "registry.fly.io/app-a:deployment-2@sha256:") {
		t.Fatalf("source image ref %q lacks the digest", pinned)
	}
	for _, mm := range srv.Machines("app-a") {
		if mm.ID != res[1].MachineID {
			continue
		}
		if mm.Config.Image != pinned || mm.Config.ProcessGroup() != "app" {
			t.Errorf("machine %s: image %q group %q", mm.ID, mm.Config.Image, mm.Config.ProcessGroup())
		}
	}
}

func TestApplyCreatesSkipALeasedCloneSource(t *testing.T) {
	srv, _, m := world(t, machines("a1=started")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3)}, scale.Policy{}, time.Now())
	srv.HoldLease("app-a", "a1", "deploy", time.Minute)

	res := scale.Apply(context.Background(), m, f, plan)
	if len(res) != 2 {
		t.Fatalf("%d results, want the 2 planned creates", len(res))
	}
	for _, r := range res {
		if r.Outcome != scale.OutcomeBusy {
			t.Errorf("create outcome %s, want busy", r.Outcome)
		}
	}
	if n := len(ops(srv, flytest.OpLaunch)); n != 0 {
		t.Errorf("%d launches with the clone source leased by someone else", n)
	}
}

func TestApplyFailedCreateIsMadeAgainAfterARecount(t *testing.T) {
	srv, _, m := world(t, machines("a1=started")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3)}, scale.Policy{}, time.Now())
	srv.ResetCalls()
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, App: "app-a", Status: 500, Times: 1})

	res := scale.Apply(context.Background(), m, f, plan)
	if got := outcomes(res); len(got) != 3 || res[0].Outcome != scale.OutcomeFailed || res[1].Outcome != scale.OutcomeDone || res[2].Outcome != scale.OutcomeDone {
		t.Fatalf("outcomes %q, want failed, done, then done in a second round", got)
	}
	if n := len(ops(srv, flytest.OpLaunch)); n != 3 {
		t.Errorf("%d launches, want 3 (two planned, the failed one once more)", n)
	}
	if n := len(ops(srv, flytest.OpList)); n != 2 {
		t.Errorf("%d lists, want 2 (the recount, and another before the second round)", n)
	}
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines, want 3", n)
	}
}

func TestApplyCreatesStopAfterThreeRounds(t *testing.T) {
	srv, _, m := world(t, machines("a1=started")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(2)}, scale.Policy{}, time.Now())
	srv.ResetCalls()
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, App: "app-a", Status: 422})

	res := scale.Apply(context.Background(), m, f, plan)
	if got := outcomes(res); len(got) != 3 {
		t.Fatalf("outcomes %q, want three failed attempts", got)
	}
	if n := len(ops(srv, flytest.OpLaunch)); n != 3 {
		t.Errorf("%d launches, want 3: one per round, each after a count", n)
	}
	if n := len(ops(srv, flytest.OpList)); n != 3 {
		t.Errorf("%d lists, want 3: one before each round", n)
	}
}

func TestApplyUncertainCreateThatHappenedCounts(t *testing.T) {
	srv, _, m := world(t, machines("a1=started")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3)}, scale.Policy{}, time.Now())
	res := scale.Apply(context.Background(), &lying{Machines: m}, f, plan)
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines, want 3: an uncertain create that happened must not be made again (%q)", n, outcomes(res))
	}
	if len(res) != 2 || res[0].Outcome != scale.OutcomeDone || res[1].Outcome != scale.OutcomeDone {
		t.Errorf("outcomes %q, want both creates done (the first proven by the recount)", outcomes(res))
	}
}
