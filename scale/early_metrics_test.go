package scale_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// pageLatency is what each page of the org listing takes to answer.
const pageLatency = 100 * time.Millisecond

// fleetQuery is the run's fleet-wide query: it needs no app names.
const fleetQuery = "sum by (app) (queue_depth)"

// listedWorld serves in memory an org of 450 apps (three pages of the
// listing, each answered pageLatency after it is asked), each with one
// started and one stopped machine, and returns the server and the
// command's clients on its transport. Call it inside a synctest bubble.
func listedWorld(t *testing.T) (*flytest.Server, scale.Apps, scale.Machines) {
	t.Helper()
	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "app-%03d", Count: 450,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}
	srv := flytest.NewInMemory(org, flytest.Options{Token: token})
	srv.Inject(flytest.Fault{Op: flytest.OpGraphQLApps, Latency: pageLatency})
	rt := flyapi.NewTransport(srv.Transport(), flyapi.TransportOptions{})
	apps, m, err := flyapi.NewClients(context.Background(), flyapi.Options{Token: token, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return srv, apps, m
}

// promArrival is what a fake Prometheus saw of one query when it arrived.
type promArrival struct {
	query string
	// pagesAnswered counts the pages of the org listing answered by then.
	pagesAnswered int
}

// promInMemory serves h to the Prometheus client in memory and records,
// as each query arrives, how many pages of srv's org listing had been
// answered.
type promInMemory struct {
	h   *promfake.Handler
	srv *flytest.Server

	mu       sync.Mutex
	arrivals []promArrival
}

func (p *promInMemory) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.ParseForm(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.arrivals = append(p.arrivals, promArrival{query: req.Form.Get("query"), pagesAnswered: len(ops(p.srv, flytest.OpGraphQLApps))})
	p.mu.Unlock()
	return p.h.Transport().RoundTrip(req)
}

func (p *promInMemory) seen() []promArrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]promArrival(nil), p.arrivals...)
}

// fleetMetrics is the Set the command builds for one fleet-wide query,
// over prom.
func fleetMetrics(t *testing.T, prom *promInMemory) *query.Set {
	t.Helper()
	p, err := prometheus.New(prometheus.Config{Name: "queue_depth", Address: "http://prometheus.invalid", Query: fleetQuery},
		prometheus.WithTransport(prom))
	if err != nil {
		t.Fatal(err)
	}
	set, err := query.NewSet(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	return set
}

// byQueueDepth is a run over app-001 to app-009 of listedWorld's org that
// wants queue_depth machines started.
func byQueueDepth(t *testing.T) scale.Config {
	t.Helper()
	sel, err := scale.NewSelector([]string{"app-00?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, err := scale.CompileExpr("queue_depth", []string{"queue_depth"})
	if err != nil {
		t.Fatal(err)
	}
	return scale.Config{Org: "my-org", Selector: sel, Expressions: scale.Expressions{MinStarted: started, MaxStarted: started}}
}

// TestRunSendsFleetQueriesWhileListing: a run that lists the org's apps
// sends its fleet-wide query before the listing is over, not after it, and
// the apps take their values from that one query.
func TestRunSendsFleetQueriesWhileListing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, apps, m := listedWorld(t)
		values := map[string]float64{}
		for i := 1; i <= 9; i++ {
			values[fmt.Sprintf("app-%03d", i)] = 2
		}
		prom := &promInMemory{h: &promfake.Handler{Values: values}, srv: srv}
		cfg := byQueueDepth(t)
		cfg.DryRun = true
		rep := scale.Run(context.Background(), cfg, scale.Deps{Apps: apps, Machines: m, Metrics: fleetMetrics(t, prom)})

		if rep.Err != nil || len(rep.Apps) != 9 {
			t.Fatalf("run: %v, %d apps; want the 9 apps of app-00?", rep.Err, len(rep.Apps))
		}
		for _, a := range rep.Apps {
			if a.Status != scale.StatusPlanned || a.Target.Started != 2 {
				t.Errorf("%s: %s (%s), target %+v; want 2 started planned from queue_depth", a.App, a.Status, a.Reason, a.Target)
			}
		}
		pages := len(ops(srv, flytest.OpGraphQLApps))
		if pages != 3 {
			t.Fatalf("the listing took %d pages, want 3", pages)
		}
		seen := prom.seen()
		if len(seen) != 1 || seen[0].query != fleetQuery {
			t.Fatalf("Prometheus received %+v; want the fleet-wide query once", seen)
		}
		if seen[0].pagesAnswered >= pages {
			t.Errorf("the fleet-wide query arrived once %d of the %d pages of the listing were answered; want it before the last", seen[0].pagesAnswered, pages)
		}
	})
}

// TestRunWithAFailedListingOrQuery: sent early, the fleet-wide query
// changes nothing of what a failure does. A listing that fails fails the
// run, acts on nothing and ends the query still in flight; a query that
// fails fails every app, none scaled on a guess.
func TestRunWithAFailedListingOrQuery(t *testing.T) {
	t.Run("listing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, apps, m := listedWorld(t)
			srv.Inject(flytest.Fault{Op: flytest.OpGraphQLApps, Status: http.StatusForbidden})
			var ended atomic.Bool
			prom := &promInMemory{srv: srv, h: &promfake.Handler{Answer: func(ctx context.Context, _ promfake.Request) promfake.Reply {
				<-ctx.Done() // answers only when the run gives up on it
				ended.Store(true)
				return promfake.Reply{}
			}}}
			rep := scale.Run(context.Background(), byQueueDepth(t), scale.Deps{Apps: apps, Machines: m, Metrics: fleetMetrics(t, prom)})

			if rep.Err == nil || !strings.Contains(rep.Err.Error(), "list apps") || len(rep.Apps) != 0 || !rep.Failed() {
				t.Errorf("run: %v with %d apps; want it failed on the listing", rep.Err, len(rep.Apps))
			}
			for _, c := range srv.Calls() {
				if !strings.HasPrefix(c.Op, "graphql") {
					t.Errorf("%s %s after a failed listing; want no Machines API call", c.Method, c.Path)
				}
			}
			if seen := prom.seen(); len(seen) != 1 {
				t.Errorf("Prometheus received %+v; want the fleet-wide query sent with the listing", seen)
			}
			synctest.Wait() // no time passes: only the run's return can end the query
			if !ended.Load() {
				t.Error("the fleet-wide query is still in flight after the run returned")
			}
		})
	})
	t.Run("query", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, apps, m := listedWorld(t)
			prom := &promInMemory{srv: srv, h: &promfake.Handler{Answer: func(context.Context, promfake.Request) promfake.Reply {
				return promfake.Error(http.StatusServiceUnavailable, "unavailable", "down")
			}}}
			rep := scale.Run(context.Background(), byQueueDepth(t), scale.Deps{Apps: apps, Machines: m, Metrics: fleetMetrics(t, prom)})

			if rep.Err != nil || len(rep.Apps) != 9 {
				t.Fatalf("run: %v, %d apps; want the 9 apps of app-00?", rep.Err, len(rep.Apps))
			}
			for _, a := range rep.Apps {
				if a.Status != scale.StatusFailed || !strings.Contains(a.Reason, "fleet-wide query") {
					t.Errorf("%s: %s (%s); want failed on the fleet-wide query", a.App, a.Status, a.Reason)
				}
			}
			if muts := srv.Mutations(); len(muts) != 0 {
				t.Errorf("%d changes after a failed query: %+v", len(muts), muts)
			}
			if seen := prom.seen(); len(seen) != 1 {
				t.Errorf("Prometheus received %+v; want the fleet-wide query once", seen)
			}
		})
	})
}
