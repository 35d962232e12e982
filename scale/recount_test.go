package scale_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// runOne runs over app-a of srv with the clients the command builds (the
// retrying transport, short backoffs) for targets of started and created
// machines, with m wrapping the Machines client when set.
func runOne(t *testing.T, srv *flytest.Server, started, created int, wrap func(scale.Machines) scale.Machines) scale.AppResult {
	t.Helper()
	rt := flyapi.NewTransport(nil, flyapi.TransportOptions{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		m = wrap(m)
	}
	sel, err := scale.NewSelector([]string{"app-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := scale.Config{Org: "my-org", Selector: sel, Expressions: fixedTargets(t, started, created)}
	rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: m})
	if rep.Err != nil || len(rep.Apps) != 1 {
		t.Fatalf("run: %v, %d apps", rep.Err, len(rep.Apps))
	}
	return rep.Apps[0]
}

func TestRecountCreditsAFoundMachineByWhatItIs(t *testing.T) {
	// 1 started + 1 stopped, for 3 started of 4: b2 is started and two
	// machines created, the first started, the second stopped. The first
	// create is refused before it takes effect, the second takes effect
	// and its answer is lost: the recount finds one new machine, stopped,
	// which is the second create's, not the first's.
	srv, _, _ := world(t, machines("a1=started", "b2=stopped")...)
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Status: http.StatusInternalServerError, Times: 1})
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Status: http.StatusInternalServerError, After: true, Times: 1})

	r := runOne(t, srv, 3, 4, nil)
	started, created := srv.Count("app-a", "started"), srv.Count("app-a", "")
	if started != 3 || created != 4 {
		t.Errorf("%d started of %d machines, want 3 of 4 (%s: %s %q)", started, created, r.Status, r.Reason, outcomes(r.Actions))
	}
	if r.Status != scale.StatusScaled {
		t.Errorf("status %s (%s), want scaled: the app is at its target", r.Status, r.Reason)
	}
	// The lost answer's create is credited with the stopped machine, by
	// its ID; the refused one is made again, started.
	var credited, again []scale.ActionResult
	for _, ar := range r.Actions {
		if ar.Kind != scale.ActionCreate {
			continue
		}
		if strings.Contains(ar.Error, "a recount found the machine made") {
			credited = append(credited, ar)
		} else if ar.Outcome == scale.OutcomeDone {
			again = append(again, ar)
		}
	}
	if len(credited) != 1 || credited[0].Started || credited[0].MachineID == "" || credited[0].Outcome != scale.OutcomeDone {
		t.Fatalf("creates credited by the recount %+v, want the stopped create, done, with the machine's ID", credited)
	}
	if m := machineByID(srv, credited[0].MachineID); m == nil || m.State == "started" {
		t.Errorf("create credited with %s (%+v), want the new machine that is not started", credited[0].MachineID, m)
	}
	if len(again) != 1 || !again[0].Started {
		t.Errorf("creates made again %+v, want the started one", again)
	}
}

func TestAppShortOfItsTargetAfterItsActionsIsNotScaled(t *testing.T) {
	// The started create takes effect, its answer is lost, and its machine
	// stops before the recount (it crashed): the recount credits it, so
	// that nothing is created twice, but the app is one started short.
	srv, _, _ := world(t, machines("a1=started")...)
	srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Status: http.StatusInternalServerError, After: true, Times: 1})

	r := runOne(t, srv, 2, 2, func(m scale.Machines) scale.Machines { return &crashAfterLaunch{Machines: m, srv: srv} })
	if started, created := srv.Count("app-a", "started"), srv.Count("app-a", ""); started != 1 || created != 2 {
		t.Fatalf("%d started of %d machines, want 1 of 2: the crashed machine counted, none created twice (%q)", started, created, outcomes(r.Actions))
	}
	if r.Status != scale.StatusFailed || r.Reason != "short of its target after its actions: 1 of 2 started" {
		t.Errorf("%s (%s), want failed: short of its target after its actions: 1 of 2 started", r.Status, r.Reason)
	}
}

// crashAfterLaunch stops, behind the client's back, each machine a failed
// launch made: a machine that crashed once its launch's answer was lost.
type crashAfterLaunch struct {
	scale.Machines
	srv *flytest.Server
}

func (c *crashAfterLaunch) Launch(ctx context.Context, app string, in fly.LaunchMachineInput) (*fly.Machine, error) {
	var before []string
	for _, m := range c.srv.Machines(app) {
		before = append(before, m.ID)
	}
	out, err := c.Machines.Launch(ctx, app, in)
	if err != nil {
		for _, m := range c.srv.Machines(app) {
			if !slices.Contains(before, m.ID) {
				if serr := c.Machines.Stop(ctx, app, fly.StopMachineInput{ID: m.ID}, ""); serr != nil {
					return nil, serr
				}
			}
		}
	}
	return out, err
}

func machineByID(srv *flytest.Server, id string) *fly.Machine {
	for _, m := range srv.Machines("app-a") {
		if m.ID == id {
			return &m
		}
	}
	return nil
}
