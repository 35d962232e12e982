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

// BenchmarkRunFleet measures one dry run over a 1,000-app org served by
// flytest with 1 ms of latency per request, at several worker counts.
// concurrency=1 is the baseline: compare the others to it (benchstat, or
// the ns/op ratio) rather than reading absolute times.
func BenchmarkRunFleet(b *testing.B) {
	org := &flytest.Org{Slug: "bench-org", Apps: []flytest.AppSpec{{Name: "bench-%04d", Count: 1000,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 2}}}}}
	srv := flytest.New(org, flytest.Options{Token: token, Latency: time.Millisecond})
	defer srv.Close()
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	sel, _ := scale.NewSelector([]string{"bench-*"}, nil)
	two, _ := scale.CompileExpr("2", nil)
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			cfg := scale.Config{Org: "bench-org", Selector: sel, DryRun: true, Concurrency: conc,
				Expressions: scale.Expressions{MinStarted: two, MaxStarted: two}}
			for b.Loop() {
				rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: m})
				if rep.Err != nil || len(rep.Apps) != 1000 || rep.Apps[0].Status != scale.StatusPlanned {
					b.Fatalf("run: %v, %d apps", rep.Err, len(rep.Apps))
				}
			}
		})
	}
}

// BenchmarkPlan measures the planner alone on a five-machine app scaled
// from two started machines to four: the CPU cost of one app's decision.
func BenchmarkPlan(b *testing.B) {
	org := &flytest.Org{Slug: "bench-org", Apps: []flytest.AppSpec{{Name: "bench-app", ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Count: 2}, {State: "stopped", Count: 3}}}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	defer srv.Close()
	_, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	list, err := m.List(context.Background(), "bench-app", "")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		f := scale.NewFleet("bench-app", "app", list)
		p := scale.NewPlan(f, scale.Targets{Started: exactly(4)}, scale.Policy{}, now)
		if len(p.Actions) != 2 {
			b.Fatalf("plan %+v, want two starts", p)
		}
	}
}

// BenchmarkRunPerApp measures a whole dry run over 1,000 apps without
// latency, reported per app: the CPU cost of observing, measuring and
// deciding, client and fake server included.
func BenchmarkRunPerApp(b *testing.B) {
	const apps = 1000
	org := &flytest.Org{Slug: "bench-org", Apps: []flytest.AppSpec{{Name: "bench-%04d", Count: apps, ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Count: 2}, {State: "stopped", Count: 3}}}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	defer srv.Close()
	ac, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	sel, _ := scale.NewSelector([]string{"bench-*"}, nil)
	four, _ := scale.CompileExpr("4", nil)
	cfg := scale.Config{Org: "bench-org", Selector: sel, DryRun: true, Expressions: scale.Expressions{MinStarted: four, MaxStarted: four}}
	for b.Loop() {
		rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: ac, Machines: m})
		if rep.Err != nil || len(rep.Apps) != apps || rep.Apps[0].Status != scale.StatusPlanned {
			b.Fatalf("run: %v, %d apps", rep.Err, len(rep.Apps))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*apps), "ns/app")
}
