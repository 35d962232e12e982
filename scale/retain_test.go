package scale_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"weak"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// TestPlannedAppsHoldNoMachineRecords: a run that plans every app before
// acting on any (a failure ratio is set) holds each planned app until its
// actions, but not the machine records the Machines API answered for it
// (configs, checks, events): once every app is planned, those records are
// garbage, save a create's clone source, which is read again.
func TestPlannedAppsHoldNoMachineRecords(t *testing.T) {
	for _, tc := range []struct {
		name             string
		started, created string
		// kept is how many of each app's records a create still needs.
		kept int
	}{
		{name: "starts", started: "2", created: "3"},
		{name: "creates", started: "1", created: "4", kept: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const apps = 3
			org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-%d", Count: apps, ReleaseVersion: 1,
				Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 2}}}}}
			srv := flytest.New(org, flytest.Options{Token: token})
			t.Cleanup(srv.Close)
			a, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordsSeen{Machines: m}
			sel, _ := scale.NewSelector([]string{"app-*"}, nil)
			started, err := scale.CompileExpr(tc.started, nil)
			if err != nil {
				t.Fatal(err)
			}
			created, err := scale.CompileExpr(tc.created, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg := scale.Config{Org: "my-org", Selector: sel,
				Expressions:   scale.Expressions{MinStarted: started, MaxStarted: started, MinCreated: created, MaxCreated: created},
				LimitFailures: true, MaxFailureRatio: 1}
			rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: a, Machines: rec})
			for _, ar := range rep.Apps {
				if ar.Status != scale.StatusScaled {
					t.Fatalf("%s: %s (%s), want scaled", ar.App, ar.Status, ar.Reason)
				}
			}
			if rec.listed != apps*3 {
				t.Fatalf("%d records listed before the first action, want %d", rec.listed, apps*3)
			}
			if want := apps * tc.kept; rec.alive != want {
				t.Errorf("%d of %d records still held once every app was planned, want %d", rec.alive, rec.listed, want)
			}
		})
	}
}

// recordsSeen counts, at the first start or create of a run, how many of
// the machine records listed until then are still reachable.
type recordsSeen struct {
	scale.Machines

	mu            sync.Mutex
	records       []weak.Pointer[fly.Machine]
	checked       bool
	listed, alive int
}

func (r *recordsSeen) List(ctx context.Context, app, state string) ([]*fly.Machine, error) {
	list, err := r.Machines.List(ctx, app, state)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range list {
		r.records = append(r.records, weak.Make(m))
	}
	return list, err
}

func (r *recordsSeen) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked {
		return
	}
	r.checked = true
	runtime.GC()
	r.listed = len(r.records)
	for _, w := range r.records {
		if w.Value() != nil {
			r.alive++
		}
	}
}

func (r *recordsSeen) Start(ctx context.Context, app, id, nonce string) (*fly.MachineStartResponse, error) {
	r.check()
	return r.Machines.Start(ctx, app, id, nonce)
}

func (r *recordsSeen) AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	r.check() // creates go out under the anchor's lease
	return r.Machines.AcquireLease(ctx, app, id, ttl)
}
