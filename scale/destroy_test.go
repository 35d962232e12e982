package scale_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// latentWorld is memWorld with opts (latency, a seed) and the command's
// transport with retries off, so that an answer lost after the effect
// reaches the applier as uncertain. Call it inside a synctest bubble: the
// latency then passes on the bubble's clock, and requests sent at once are
// in flight together.
func latentWorld(t *testing.T, opts flytest.Options, ms ...flytest.MachineSpec) (*flytest.Server, scale.Machines) {
	t.Helper()
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-a", ReleaseVersion: 2, Machines: ms}}}
	opts.Token = token
	srv := flytest.NewInMemory(org, opts)
	rt := flyapi.NewTransport(srv.Transport(), flyapi.TransportOptions{MaxAttempts: 1})
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

// anchorAndStopped is a started anchor a1 and n stopped machines s01...
func anchorAndStopped(n int) []flytest.MachineSpec {
	pairs := []string{"a1=started"}
	for i := range n {
		pairs = append(pairs, fmt.Sprintf("s%02d=stopped", i+1))
	}
	return machines(pairs...)
}

// TestApplyDestroysOfAnAppOverlap: the destroys of one app go out at once
// under the anchor's one lease, never more than MaxActionsInFlight in
// flight, each under its victim's lease, after a single recount; the
// results keep the plan's order.
func TestApplyDestroysOfAnAppOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := latentWorld(t, flytest.Options{Latency: 20 * time.Millisecond}, anchorAndStopped(12)...)
		f := snapshot(t, m)
		plan := scale.NewPlan(f, scale.Targets{Created: exactly(1)}, scale.Policy{}, time.Now())
		if len(plan.Actions) != 12 {
			t.Fatalf("plan %+v, want 12 destroys", plan.Actions)
		}
		srv.ResetCalls()
		start := time.Now()
		res := scale.Apply(context.Background(), m, f, plan)
		t.Logf("12 destroys at 20ms a call: %v on the bubble's clock, %d calls", time.Since(start), len(srv.Calls()))
		if n := srv.Count("app-a", ""); n != 1 {
			t.Errorf("%d machines, want 1 (%q)", n, outcomes(res))
		}
		assertOverlappedInPlanOrder(t, srv, plan, res, "destroys")
		if n := len(ops(srv, flytest.OpList)); n != 1 {
			t.Errorf("%d lists, want the one recount under the anchor's lease", n)
		}
		if n := len(ops(srv, flytest.OpLeaseAcquire)); n != 13 {
			t.Errorf("%d leases taken, want the anchor's and one per victim", n)
		}
	})
}

// TestApplyBusyDestroyVictimIsReplacedByASpare: a planned victim that a
// deploy holds is passed over, and one spare, no more, is destroyed in its
// place in the next round, whether the busy victim went first (alone) or
// with the others.
func TestApplyBusyDestroyVictimIsReplacedByASpare(t *testing.T) {
	for _, held := range []int{0, 2} {
		t.Run(fmt.Sprintf("victim %d held", held), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, m := latentWorld(t, flytest.Options{Latency: 20 * time.Millisecond}, anchorAndStopped(8)...)
				f := snapshot(t, m)
				plan := scale.NewPlan(f, scale.Targets{Created: exactly(4)}, scale.Policy{}, time.Now())
				spares := plan.Spares[scale.ActionDestroy]
				if len(plan.Actions) != 5 || len(spares) == 0 {
					t.Fatalf("plan %+v, want 5 destroys and spares", plan)
				}
				busy := plan.Actions[held].MachineID
				srv.HoldLease("app-a", busy, "deploy", time.Minute)
				srv.ResetCalls()

				res := scale.Apply(context.Background(), m, f, plan)
				if n := srv.Count("app-a", ""); n != 4 {
					t.Errorf("%d machines, want the target 4 (%q)", n, outcomes(res))
				}
				if !slices.ContainsFunc(srv.Machines("app-a"), func(x fly.Machine) bool { return x.ID == busy }) {
					t.Errorf("the held victim %s was destroyed", busy)
				}
				if peak := srv.PeakInFlight("app-a"); peak < 2 || peak > scale.MaxActionsInFlight {
					t.Errorf("peak in flight %d, want the destroys overlapping, at most %d", peak, scale.MaxActionsInFlight)
				}
				var want []string
				for _, a := range plan.Actions {
					want = append(want, fmt.Sprintf("destroy %s %s", a.MachineID, map[bool]scale.Outcome{true: scale.OutcomeBusy, false: scale.OutcomeDone}[a.MachineID == busy]))
				}
				want = append(want, "destroy "+spares[0]+" done")
				if got := outcomes(res); !slices.Equal(got, want) {
					t.Errorf("outcomes %q, want %q: the planned victims in order, then the first spare in the busy one's place", got, want)
				}
			})
		})
	}
}

// TestApplyDestroyAnsweredAfterItsEffectCountsOnce: destroys whose answer
// is lost after they took effect (a 500 or a dropped connection) are
// counted done once the round's single recount finds their machines gone,
// and never make a spare go too; a planned victim a deploy holds is
// replaced by exactly one spare. Which destroys of the overlapping ones
// meet a fault varies, so each seed is a trial, and every trial must end
// at the target.
func TestApplyDestroyAnsweredAfterItsEffectCountsOnce(t *testing.T) {
	const trials = 24
	lost := 0 // destroys settled by a recount, over all trials
	for seed := range trials {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, m := latentWorld(t, flytest.Options{Latency: 20 * time.Millisecond, Seed: uint64(seed)}, anchorAndStopped(9)...)
				f := snapshot(t, m)
				plan := scale.NewPlan(f, scale.Targets{Created: exactly(4)}, scale.Policy{}, time.Now())
				spares := plan.Spares[scale.ActionDestroy]
				if len(plan.Actions) != 6 || len(spares) == 0 {
					t.Fatalf("plan %+v, want 6 destroys and spares", plan)
				}
				busy := plan.Actions[seed%6].MachineID
				srv.HoldLease("app-a", busy, "deploy", time.Minute)
				fault := flytest.Fault{Op: flytest.OpDestroy, After: true, Probability: 0.4}
				if seed%2 == 0 {
					fault.Drop = true
				} else {
					fault.Status = 500
				}
				srv.Inject(fault)
				srv.ResetCalls()

				res := scale.Apply(context.Background(), m, f, plan)
				if n := srv.Count("app-a", ""); n != 4 {
					t.Fatalf("%d machines, want exactly the target 4 (%q)", n, outcomes(res))
				}
				if len(res) != 7 {
					t.Fatalf("outcomes %q, want the 6 planned destroys and one spare", outcomes(res))
				}
				for i, r := range res {
					wantID, want := spares[0], scale.OutcomeDone
					if i < 6 {
						wantID = plan.Actions[i].MachineID
					}
					if wantID == busy {
						want = scale.OutcomeBusy
					}
					if r.MachineID != wantID || r.Outcome != want {
						t.Errorf("result %d: %s %s (%s), want %s %s", i, r.MachineID, r.Outcome, r.Error, wantID, want)
					}
					if strings.Contains(r.Error, "a recount found the machine gone") {
						lost++
					}
				}
				// The busy victim takes no destroy: five planned and one spare.
				if n := len(ops(srv, flytest.OpDestroy)); n != 6 {
					t.Errorf("%d destroys sent, want 6", n)
				}
				// The recount under the anchor's lease, then at most one
				// per round: the planned victims' and the spare's.
				if n := len(ops(srv, flytest.OpList)); n > 3 {
					t.Errorf("%d lists, want at most 3: one recount per round, not per lost answer", n)
				}
			})
		})
	}
	if lost == 0 {
		t.Errorf("no destroy's answer was lost in %d trials: the faults never struck", trials)
	}
	t.Logf("%d destroys of %d trials settled by a recount", lost, trials)
}

func TestApplyDestroyTakesAndReleasesALease(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(2)}, scale.Policy{}, time.Now())
	srv.Inject(flytest.Fault{Op: flytest.OpDestroy, App: "app-a", Status: 500, Times: 1})

	res := scale.Apply(context.Background(), m, f, plan)
	got := outcomes(res)
	if len(got) != 2 || got[0] != "destroy b2 failed" || got[1] != "destroy c3 done" {
		t.Fatalf("outcomes %q, want b2 failed then c3 done", got)
	}
	acquired, released := ops(srv, flytest.OpLeaseAcquire), ops(srv, flytest.OpLeaseRelease)
	// The anchor (a1, the clone source, never destroyed) and each victim.
	if len(acquired) != 3 || acquired[0].MachineID != "a1" {
		t.Errorf("leases acquired %+v, want the anchor a1 then one per destroy attempt", acquired)
	}
	if len(released) != 2 || released[0].MachineID != "b2" || released[1].MachineID != "a1" {
		t.Errorf("lease releases %+v, want the failed destroy's (b2), then the anchor's (a1)", released)
	}
	if n := srv.Count("app-a", ""); n != 2 {
		t.Errorf("%d machines left, want 2", n)
	}
}

func TestApplyUncertainDestroyThatHappenedCounts(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped", "d4=stopped")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3)}, scale.Policy{}, time.Now())
	res := scale.Apply(context.Background(), &lying{Machines: m}, f, plan)
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines, want 3: a spare was destroyed after a destroy that happened (%q)", n, outcomes(res))
	}
	if len(res) != 1 || res[0].Outcome != scale.OutcomeDone {
		t.Errorf("outcomes %q, want the one destroy done", outcomes(res))
	}
}

func TestApplyDestroySkipsAMachineStartedSinceThePlan(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(2)}, scale.Policy{}, time.Now())
	if len(plan.Actions) != 1 || plan.Actions[0].MachineID != "b2" {
		t.Fatalf("plan %+v, want destroy b2", plan.Actions)
	}
	// Fly's proxy wakes b2 for a request before the run acts.
	if _, err := m.Start(context.Background(), "app-a", "b2", ""); err != nil {
		t.Fatal(err)
	}
	res := scale.Apply(context.Background(), m, f, plan)
	if st := srv.Machines("app-a"); len(st) != 2 || st[0].ID != "a1" || st[1].ID != "b2" {
		t.Errorf("machines left %v, want a1 and b2 (c3 destroyed in b2's place)", st)
	}
	if srv.Count("app-a", "started") != 2 {
		t.Errorf("a started machine was destroyed: %q", outcomes(res))
	}
}

func TestApplyVictimDestroyedBySomeoneElseTakesNoSpare(t *testing.T) {
	srv, _, m := world(t, machines("a1=started", "b2=stopped", "c3=stopped", "d4=stopped")...)
	f := snapshot(t, m)
	plan := scale.NewPlan(f, scale.Targets{Created: exactly(3)}, scale.Policy{}, time.Now())
	if len(plan.Actions) != 1 || plan.Actions[0].MachineID != "b2" {
		t.Fatalf("plan %+v, want destroy b2", plan.Actions)
	}
	res := scale.Apply(context.Background(), &racing{Machines: m, gone: "b2"}, f, plan)
	if n := srv.Count("app-a", ""); n != 3 {
		t.Errorf("%d machines, want 3: a spare was destroyed after someone else destroyed the victim (%q)", n, outcomes(res))
	}
	if len(res) != 1 || res[0].Outcome != scale.OutcomeUnneeded {
		t.Errorf("outcomes %q, want the destroy unneeded", outcomes(res))
	}
}
