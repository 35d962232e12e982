package scale_test

import (
	"context"
	"testing"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// TestRunGivesEveryAppItsReasonCode: a run over the fake Fly API reports
// each app with the reason code of the rule Decide applied to it, for a
// real run and a dry one.
func TestRunGivesEveryAppItsReasonCode(t *testing.T) {
	for _, dry := range []bool{false, true} {
		_, deps := fleetWorld(t,
			flytest.AppSpec{Name: "self", Machines: machines("s1=stopped")},
			flytest.AppSpec{Name: "deploying", ReleaseStatus: "running", Machines: machines("d1=stopped")},
			flytest.AppSpec{Name: "idle", Machines: machines("i1=started")},
			flytest.AppSpec{Name: "grow", Machines: machines("g1=started", "g2=stopped")},
			flytest.AppSpec{Name: "empty"},
		)
		cfg := runConfig(t, "self", "deploying", "idle", "grow", "empty")
		cfg.Org, cfg.OwnApp, cfg.DryRun = "my-org", "self", dry
		two := mustExpr(t, "created")
		cfg.Expressions = scale.Expressions{MinStarted: two, MaxStarted: two, MinCreated: mustExpr(t, "max(created, 1)")}
		rep := scale.Run(context.Background(), cfg, deps)
		if rep.Err != nil {
			t.Fatal(rep.Err)
		}
		grow := scale.ReasonScaled
		if dry {
			grow = scale.ReasonPlanned
		}
		want := map[string]scale.ReasonCode{
			"self": scale.ReasonOwnApp, "deploying": scale.ReasonReleaseInProgress,
			"idle": scale.ReasonAtTarget, "grow": grow, "empty": scale.ReasonTargetUnreachable,
		}
		for _, a := range rep.Apps {
			if a.Code != want[a.App] {
				t.Errorf("dry run %v: %s: %s/%s (%s), want %s", dry, a.App, a.Status, a.Code, a.Reason, want[a.App])
			}
		}
		if len(rep.Apps) != len(want) {
			t.Errorf("%d apps, want %d", len(rep.Apps), len(want))
		}
	}
}
