package scale_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// slowWorld is world with latency on every request, so that requests sent
// at once are seen in flight together.
func slowWorld(t *testing.T, ms ...flytest.MachineSpec) (*flytest.Server, scale.Machines) {
	t.Helper()
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-a", ReleaseVersion: 2, Machines: ms}}}
	srv := flytest.New(org, flytest.Options{Token: token, Latency: 200 * time.Millisecond})
	t.Cleanup(srv.Close)
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

// TestApplyActionsOfAnAppOverlap: the starts of one app go out at once,
// never more than MaxActionsInFlight in flight, and so do the creates of a
// round once the first succeeded; the results keep the plan's order.
func TestApplyActionsOfAnAppOverlap(t *testing.T) {
	t.Run("starts", func(t *testing.T) {
		srv, m := slowWorld(t, flytest.MachineSpec{State: "started"}, flytest.MachineSpec{State: "stopped", Count: 12})
		f := snapshot(t, m)
		plan := scale.NewPlan(f, scale.Targets{Started: exactly(13)}, scale.Policy{}, time.Now())
		srv.ResetCalls()
		res := scale.Apply(context.Background(), m, f, plan)
		if n := srv.Count("app-a", "started"); n != 13 {
			t.Errorf("%d started, want 13 (%q)", n, outcomes(res))
		}
		assertOverlappedInPlanOrder(t, srv, plan, res, "starts")
	})
	t.Run("creates", func(t *testing.T) {
		srv, m := slowWorld(t, machines("a1=started")...)
		f := snapshot(t, m)
		plan := scale.NewPlan(f, scale.Targets{Created: exactly(6)}, scale.Policy{}, time.Now())
		srv.ResetCalls()
		res := scale.Apply(context.Background(), m, f, plan)
		if n := srv.Count("app-a", ""); n != 6 {
			t.Errorf("%d machines, want 6 (%q)", n, outcomes(res))
		}
		if peak := srv.PeakInFlight("app-a"); peak < 2 || peak > scale.MaxActionsInFlight {
			t.Errorf("peak in flight %d, want the creates after the first overlapping, at most %d", peak, scale.MaxActionsInFlight)
		}
		if got := fmt.Sprint(opsOf(srv)); got != "[lease_acquire list launch launch launch launch launch lease_release]" {
			t.Errorf("calls %s, want the lease, one recount, five creates, the release", got)
		}
	})
}

// assertOverlappedInPlanOrder checks that the actions of app-a overlapped,
// at most MaxActionsInFlight in flight, and that every one is done, its
// result in the plan's order.
func assertOverlappedInPlanOrder(t *testing.T, srv *flytest.Server, plan scale.Plan, res []scale.ActionResult, what string) {
	t.Helper()
	if peak := srv.PeakInFlight("app-a"); peak < 2 || peak > scale.MaxActionsInFlight {
		t.Errorf("peak in flight %d, want the %s overlapping, at most %d", peak, what, scale.MaxActionsInFlight)
	}
	if len(res) != len(plan.Actions) {
		t.Fatalf("outcomes %q, want one per action", outcomes(res))
	}
	for i, r := range res {
		if r.MachineID != plan.Actions[i].MachineID || r.Outcome != scale.OutcomeDone {
			t.Errorf("result %d: %s %s, want %s done (the plan's order)", i, r.MachineID, r.Outcome, plan.Actions[i].MachineID)
		}
	}
}

// opsOf lists the operations the server answered, in order.
func opsOf(srv *flytest.Server) []string {
	var out []string
	for _, c := range srv.Calls() {
		out = append(out, c.Op)
	}
	return out
}
