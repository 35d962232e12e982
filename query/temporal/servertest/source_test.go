package servertest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/temporal"
)

// newSource returns a Temporal source on s's default namespace, closed when
// the test ends.
func newSource(t *testing.T, s *server, cfg temporal.Config, opts ...temporal.Option) *temporal.Temporal {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "jobs"
	}
	if cfg.Address == "" {
		cfg.Address = s.GetFrontendHostPort()
	}
	if cfg.Namespace == "" {
		cfg.Namespace = s.GetDefaultNamespace()
	}
	src, err := temporal.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// collect collects app's value with a 20s bound.
func collect(src query.Source, app string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return src.Collect(ctx, app)
}

// TestBacklogAndRunningCount starts workflows and activities on per-app
// task queues that no worker polls, and reads them back with both measures.
func TestBacklogAndRunningCount(t *testing.T) {
	s := startServer(t)
	apps := map[string]struct{ workflows, activities int }{
		"app-a": {3, 0},
		"app-b": {1, 4},
		"app-c": {0, 2},
		"app-d": {0, 0}, // a queue nothing was ever sent to
	}
	for app, n := range apps {
		if n.workflows > 0 {
			s.startJobs(t, "jobs-"+app, n.workflows)
		}
		if n.activities > 0 {
			s.startActivities(t, "jobs-"+app, n.activities)
		}
	}

	backlog := newSource(t, s, temporal.Config{TaskQueue: "jobs-$APP_NAME"})
	workflowsOnly := newSource(t, s, temporal.Config{TaskQueue: "jobs-${APP_NAME}", QueueTypes: []string{"workflow"}})
	activitiesOnly := newSource(t, s, temporal.Config{TaskQueue: "jobs-$APP_NAME", QueueTypes: []string{"activity"}})
	running := newSource(t, s, temporal.Config{Query: `TaskQueue = "jobs-$APP_NAME"`})
	for app, n := range apps {
		for _, c := range []struct {
			src  query.Source
			want int
		}{
			{backlog, n.workflows + n.activities},
			{workflowsOnly, n.workflows},
			{activitiesOnly, n.activities},
			// The workflows that scheduled the activities run on the
			// runner queue: only the jobs started on the app's queue match.
			{running, n.workflows},
		} {
			eventually(t, fmt.Sprintf("%s: %v", app, c.src), func() error {
				v, err := collect(c.src, app)
				if err != nil {
					return err
				}
				if v != float64(c.want) {
					return fmt.Errorf("got %v, want %d", v, c.want)
				}
				return nil
			})
		}
	}
}

// TestFleetWideQueryAsksOnce: without $APP_NAME one request answers for
// every app of the run.
func TestFleetWideQueryAsksOnce(t *testing.T) {
	s := startServer(t)
	s.startJobs(t, "shared-queue", 2)
	probe := newSource(t, s, temporal.Config{Query: `TaskQueue = "shared-queue"`})
	eventually(t, "count the shared queue", func() error {
		v, err := collect(probe, "app-a")
		if err == nil && v != 2 {
			err = fmt.Errorf("got %v, want 2", v)
		}
		return err
	})
	src := newSource(t, s, temporal.Config{Query: `TaskQueue = "shared-queue"`})
	set, err := query.NewSet(src)
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.metricRequests("shared-queue"))
	apps := []string{"app-a", "app-b", "app-c"}
	set.Prefetch(context.Background(), apps)
	for _, app := range apps {
		vals, err := set.Collect(context.Background(), app)
		if err != nil || vals["jobs"] != 2 {
			t.Errorf("%s: %v, %v; want jobs=2", app, vals, err)
		}
	}
	if n := len(s.metricRequests("shared-queue")) - before; n != 1 {
		t.Errorf("%d requests for 3 apps, want 1", n)
	}
}

// TestErrorsFailTheApp: every kind of failure is an error naming what
// failed, never a value of 0.
func TestErrorsFailTheApp(t *testing.T) {
	s := startServer(t)
	const apiKey = "tmprl-api-key-never-printed-123"
	for _, tc := range []struct {
		name    string
		cfg     temporal.Config
		timeout time.Duration
		want    []string
	}{
		{"missing namespace, backlog", temporal.Config{Namespace: "no-such-namespace", TaskQueue: "jobs-$APP_NAME"}, 0,
			[]string{`describe task queue "jobs-app-a" (workflow): not found: `, "no-such-namespace"}},
		{"missing namespace, running", temporal.Config{Namespace: "no-such-namespace", Query: `TaskQueue = "jobs-$APP_NAME"`}, 0,
			[]string{"count workflows", "not found: ", "no-such-namespace"}},
		{"bad query", temporal.Config{Query: `TaskQueue = `}, 0,
			[]string{`count workflows ExecutionStatus="Running" AND (TaskQueue =): invalid argument: `}},
		{"unknown search attribute", temporal.Config{Query: `NoSuchAttribute = "$APP_NAME"`}, 0,
			[]string{"invalid argument: ", "NoSuchAttribute"}},
		{"permission denied", temporal.Config{TaskQueue: deniedPrefix + "$APP_NAME"}, 0,
			[]string{"permission denied (check api-key or the client certificate): "}},
		{"unavailable", temporal.Config{TaskQueue: unavailablePrefix + "$APP_NAME"}, 2 * time.Second,
			[]string{"unavailable: ", "frontend is shutting down"}},
		{"deadline", temporal.Config{Query: `TaskQueue = "` + slowPrefix + `$APP_NAME"`}, time.Second,
			[]string{"deadline exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, s, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
			}
			defer cancel()
			v, err := src.Collect(ctx, "app-a")
			if err == nil {
				t.Fatalf("value %v, want an error", v)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// A server that echoes the API key in its error: the key never shows.
	// An API key implies TLS, so this one goes through a TLS proxy.
	t.Run("secrets redacted", func(t *testing.T) {
		pki := promtest.NewPKI(t)
		proxy := tlsProxy(t, pki, s.GetFrontendHostPort(), false)
		src := newSource(t, s, temporal.Config{Address: proxy, TaskQueue: deniedPrefix + "$APP_NAME",
			APIKey: apiKey, TLSCA: pki.CAPEM, TLSServerName: serverName})
		_, err := collect(src, "app-a")
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("error %v, want permission denied", err)
		}
		if strings.Contains(err.Error(), apiKey) || !strings.Contains(err.Error(), "REDACTED") {
			t.Errorf("error %q shows the API key or hides it without saying so", err)
		}
		if got := s.metricRequests(deniedPrefix + "app-a"); len(got) == 0 || got[len(got)-1].auth != "Bearer "+apiKey {
			t.Errorf("the server did not receive the API key as a bearer token: %+v", got)
		}
	})
}

// TestPacing: concurrent collections never exceed requests-per-second, as
// the frontend counts them; the same load unpaced does, so the check can
// fail.
func TestPacing(t *testing.T) {
	s := startServer(t)
	const apps, workers = 20, 8
	run := func(prefix string, rps temporal.Rate) []request {
		src := newSource(t, s, temporal.Config{TaskQueue: prefix + "$APP_NAME", RequestsPerSecond: rps})
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					if _, err := collect(src, fmt.Sprintf("app-%d", i)); err != nil {
						t.Errorf("app-%d: %v", i, err)
					}
				}
			})
		}
		for i := range apps {
			next <- i
		}
		close(next)
		wg.Wait()
		rs := s.metricRequests(prefix)
		if len(rs) != apps*2 {
			t.Fatalf("%s: %d requests, want one per app and queue type (%d)", prefix, len(rs), apps*2)
		}
		return rs
	}

	// The limiter hands requests out 100ms apart, so any two-second
	// window holds at most 21 of them as handed out; the frontend sees
	// them after the network and the scheduler, which can move a request
	// at either edge of a window into it: two requests of slack.
	const window, limit = 2 * time.Second, 2*10 + 1 + 2
	if n := maxPerWindow(run("paced-", 0), window); n > limit {
		t.Errorf("paced at the default 10/s: %d requests in %v, want at most %d", n, window, limit)
	}
	if n := maxPerWindow(run("unpaced-", 1000), window); n <= limit {
		t.Errorf("at 1000/s: at most %d requests in any %v; the check cannot tell paced from unpaced", n, window)
	}
}
