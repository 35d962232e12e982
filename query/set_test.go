package query_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/promfake"
)

// metrics is scale.Metrics and scale.MetricStarter, restated here: query
// does not import scale.
type metrics interface {
	Start(ctx context.Context)
	Prefetch(ctx context.Context, apps []string)
	Collect(ctx context.Context, app string) (map[string]float64, error)
}

var _ metrics = (*query.Set)(nil)

// constSource is a per-app Source that is not Prometheus.
type constSource struct {
	name string
	v    float64
	err  error
}

func (c constSource) Name() string { return c.name }
func (c constSource) Collect(context.Context, string) (float64, error) {
	return c.v, c.err
}

func appNames(n int) []string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fmt.Sprintf("app-%d", i)
	}
	return apps
}

// fleetFixture answers sum by (app) with one series per app, value i.
func fleetFixture(apps []string) string {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i, app := range apps {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"metric":{"app":%q},"value":[1700000000,"%d"]}`, app, i)
	}
	b.WriteString(`]}}`)
	return b.String()
}

func TestNewSet(t *testing.T) {
	a, b := constSource{name: "a"}, constSource{name: "b"}
	s, err := query.NewSet(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := query.SetNames(s); len(got) != 2 || got[0] != "b" || got[1] != "a" {
		t.Errorf("names() = %v, want [b a]", got)
	}
	if _, err := query.NewSet(a, b, constSource{name: "a"}); err == nil || err.Error() != `metric "a": defined twice` {
		t.Errorf("duplicate names: error %v", err)
	}
	if _, err := query.NewSet(constSource{}); err == nil {
		t.Error("empty name: no error")
	}
	if _, err := query.NewSet(a, nil); err == nil {
		t.Error("nil source: no error")
	}
	empty, err := query.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	empty.Prefetch(context.Background(), []string{"x"})
	if m, err := empty.Collect(context.Background(), "x"); err != nil || len(m) != 0 {
		t.Errorf("empty set: %v, %v", m, err)
	}
}

func TestSetCollectMixed(t *testing.T) {
	srv := newFakeProm(t, map[string]reply{
		`sum(queue_depth{app="app-a"})`: {File: "vector_one.json"},
		`sum(queue_depth{app="app-b"})`: {File: "vector_many.json"},
		`sum by (app) (queue_depth)`:    {File: "fleet_by_app.json"},
	})
	per := newProm(t, prometheus.Config{Name: "per_app", Address: srv.URL, Query: perAppQuery})
	fleet := newProm(t, prometheus.Config{Name: "fleet", Address: srv.URL, Query: `sum by (app) (queue_depth)`})
	s, err := query.NewSet(per, fleet, constSource{name: "const", v: 3})
	if err != nil {
		t.Fatal(err)
	}
	s.Prefetch(context.Background(), []string{"app-a", "app-b"})

	got, err := s.Collect(context.Background(), "app-a")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"per_app": 7, "fleet": 1, "const": 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Collect(app-a) = %v, want %v", got, want)
	}

	_, err = s.Collect(context.Background(), "app-b")
	if err == nil || err.Error() != `metric "per_app": query returned 3 series, want 1` {
		t.Errorf("Collect(app-b) error %v", err)
	}
	if !errors.Is(err, query.ErrManySeries) {
		t.Errorf("errors.Is(%v, query.ErrManySeries) = false", err)
	}

	s2, _ := query.NewSet(constSource{name: "broken", err: errors.New("lag unknown")})
	if _, err := s2.Collect(context.Background(), "app-a"); err == nil || err.Error() != `metric "broken": lag unknown` {
		t.Errorf("error %v, want the metric named", err)
	}
}

func TestSetFleetQueriedOnce(t *testing.T) {
	apps := appNames(60)
	const q = "sum by (app) (queue_depth)"
	for _, prefetch := range []bool{true, false} {
		t.Run(fmt.Sprintf("prefetch=%v", prefetch), func(t *testing.T) {
			srv := newFakeProm(t, map[string]reply{q: {Body: fleetFixture(apps), Delay: 50 * time.Millisecond}})
			p := newProm(t, prometheus.Config{Name: "queue_depth", Address: srv.URL, Query: q})
			s, err := query.NewSet(p)
			if err != nil {
				t.Fatal(err)
			}
			if prefetch {
				s.Prefetch(context.Background(), apps)
				s.Prefetch(context.Background(), apps) // a second call does not query again
			}
			var wg sync.WaitGroup
			for i, app := range apps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					got, err := s.Collect(ctx, app)
					if err != nil {
						t.Errorf("Collect(%s): %v", app, err)
						return
					}
					if got["queue_depth"] != float64(i) {
						t.Errorf("Collect(%s) = %v, want %d", app, got, i)
					}
				}()
			}
			wg.Wait()
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d fleet-wide queries for %d apps, want 1", n, len(apps))
			}
		})
	}
}

func TestSetFleetErrorForEveryApp(t *testing.T) {
	apps := appNames(5)
	const q = "sum by (app) (queue_depth)"
	for _, tt := range []struct {
		name    string
		address func(t *testing.T) (string, *fakeProm)
		want    string
	}{
		{
			name: "500",
			address: func(t *testing.T) (string, *fakeProm) {
				srv := newFakeProm(t, map[string]reply{q: {Body: "down", Status: http.StatusInternalServerError}})
				return srv.URL, srv
			},
			want: `metric "queue_depth": fleet-wide query: query: server_error: server error: 500`,
		},
		{
			name:    "connection refused",
			address: func(t *testing.T) (string, *fakeProm) { return closedAddr(t), nil },
			want:    "connection refused",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, srv := tt.address(t)
			p := newProm(t, prometheus.Config{Name: "queue_depth", Address: addr, Query: q, OnEmpty: query.OnEmptyZero})
			s, _ := query.NewSet(p)
			s.Prefetch(context.Background(), apps)
			for _, app := range apps {
				m, err := s.Collect(context.Background(), app)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), `metric "queue_depth": `) {
					t.Errorf("Collect(%s) = %v, %v; want error containing %q", app, m, err, tt.want)
				}
			}
			if srv != nil {
				if n := len(srv.Requests()); n != 1 {
					t.Errorf("%d queries, want 1", n)
				}
			}
		})
	}
}

func TestSetPrefetchWithoutApps(t *testing.T) {
	srv := newFakeProm(t, map[string]reply{"up": {File: "scalar.json"}})
	s, _ := query.NewSet(newProm(t, prometheus.Config{Name: "up", Address: srv.URL, Query: "up"}))
	s.Prefetch(context.Background(), nil)
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("Prefetch with no apps sent %d queries, want 0", n)
	}
}

// A caller whose own deadline passes while it waits for a fleet-wide query
// started by Collect gets its ctx error; the query goes on for the others.
func TestSetLazyFleetCallerDeadline(t *testing.T) {
	const q = "sum by (app) (queue_depth)"
	block := make(chan struct{})
	srv := newFakeProm(t, map[string]reply{q: {Body: fleetFixture([]string{"app-0", "app-1"}), Block: block}})
	s, _ := query.NewSet(newProm(t, prometheus.Config{Name: "queue_depth", Address: srv.URL, Query: q}))

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Collect(short, "app-0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Collect with a short deadline: %v, want context.DeadlineExceeded", err)
	}
	close(block)
	got, err := s.Collect(context.Background(), "app-1")
	if err != nil || got["queue_depth"] != 1 {
		t.Fatalf("Collect(app-1) = %v, %v; want 1", got, err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
}

func TestSetLazyFleetTimeout(t *testing.T) {
	const q = "sum by (app) (queue_depth)"
	block := make(chan struct{})
	defer close(block)
	srv := newFakeProm(t, map[string]reply{q: {Block: block}})
	s, _ := query.NewSet(newProm(t, prometheus.Config{Name: "queue_depth", Address: srv.URL, Query: q}))
	s.FleetTimeout = 100 * time.Millisecond
	_, err := s.Collect(context.Background(), "app-0")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded from FleetTimeout", err)
	}
}

// recordingBatch is a BatchSource that records the apps of each Start and
// reads 100 for every app.
type recordingBatch struct {
	mu     sync.Mutex
	starts [][]string
}

func (*recordingBatch) Name() string { return "stream" }

func (*recordingBatch) Collect(context.Context, string) (float64, error) {
	return 0, errors.New("read outside the batch")
}

func (b *recordingBatch) Start(_ context.Context, apps []string) (query.Batch, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.starts = append(b.starts, apps)
	return fixedBatch(100), nil
}

func (b *recordingBatch) started() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.starts)
}

// fixedBatch reads its value for every app.
type fixedBatch float64

func (v fixedBatch) Read(context.Context, string) (query.Reading, error) {
	return query.Reading{Value: float64(v)}, nil
}
func (fixedBatch) Close() error { return nil }

// heldFleet is a Set of two fleet-wide Prometheus queries and a batch
// source, over a fake Prometheus served in memory whose answers wait until
// release is closed. cancelled counts the queries whose request ended
// before their answer.
func heldFleet(t *testing.T, apps []string) (s *query.Set, h *promfake.Handler, b *recordingBatch, release chan struct{}, cancelled *atomic.Int64) {
	t.Helper()
	release, cancelled = make(chan struct{}), new(atomic.Int64)
	h = &promfake.Handler{Answer: func(ctx context.Context, q promfake.Request) promfake.Reply {
		select {
		case <-release:
			return promfake.Reply{Body: fleetFixture(apps)}
		case <-ctx.Done():
			cancelled.Add(1)
			return promfake.Reply{}
		}
	}}
	rt := prometheus.WithTransport(h.Transport())
	b = &recordingBatch{}
	s, err := query.NewSet(
		newProm(t, prometheus.Config{Name: "depth", Address: "http://prometheus.invalid", Query: "sum by (app) (queue_depth)"}, rt),
		newProm(t, prometheus.Config{Name: "lag", Address: "http://prometheus.invalid", Query: "sum by (app) (lag)"}, rt),
		b)
	if err != nil {
		t.Fatal(err)
	}
	return s, h, b, release, cancelled
}

// sentQueries counts the requests h received by query text.
func sentQueries(h *promfake.Handler) map[string]int {
	n := map[string]int{}
	for _, r := range h.Requests() {
		n[r.Query]++
	}
	return n
}

// Start sends the fleet-wide queries before the apps are known and opens
// no batch source (it needs the apps); Prefetch then opens the batch
// sources for the apps, waits for everything, and sends no query again.
func TestSetStartThenPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		apps := appNames(3)
		s, h, b, release, _ := heldFleet(t, apps)
		ctx := context.Background()

		s.Start(ctx)
		synctest.Wait() // every goroutine Start made has done what it can
		want := map[string]int{"sum by (app) (queue_depth)": 1, "sum by (app) (lag)": 1}
		if got := sentQueries(h); !maps.Equal(got, want) {
			t.Fatalf("after Start, queries %v; want each fleet-wide query sent once", got)
		}
		if n := len(b.started()); n != 0 {
			t.Errorf("Start opened the batch source %d times; want it left to Prefetch", n)
		}

		close(release)
		s.Start(ctx) // started already: no query again
		s.Prefetch(ctx, apps)
		s.Prefetch(ctx, apps)
		if got := sentQueries(h); !maps.Equal(got, want) {
			t.Errorf("after Prefetch, queries %v; want each fleet-wide query sent once", got)
		}
		if got := b.started(); len(got) != 1 || !slices.Equal(got[0], apps) {
			t.Errorf("batch source opened for %v; want once, for %v", got, apps)
		}
		for i, app := range apps {
			got, err := s.Collect(ctx, app)
			want := map[string]float64{"depth": float64(i), "lag": float64(i), "stream": 100}
			if err != nil || !maps.Equal(got, want) {
				t.Errorf("Collect(%s) = %v, %v; want %v", app, got, err, want)
			}
		}
	})
}

// A run whose selection matches no app has sent its fleet-wide queries
// with Start: Prefetch with no apps sends nothing more and does not wait
// for them, and the end of Start's ctx ends them.
func TestSetStartThenPrefetchWithoutApps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, h, b, release, cancelled := heldFleet(t, nil)
		defer close(release)
		ctx, cancel := context.WithCancel(context.Background())
		s.Start(ctx)
		s.Prefetch(context.Background(), nil) // returns with the queries unanswered
		synctest.Wait()
		if got := sentQueries(h); len(got) != 2 || got["sum by (app) (queue_depth)"] != 1 || got["sum by (app) (lag)"] != 1 {
			t.Errorf("queries %v; want each fleet-wide query sent once", got)
		}
		if n := cancelled.Load(); n != 0 {
			t.Fatalf("%d queries ended before Start's ctx did", n)
		}
		cancel()
		synctest.Wait()
		if n := cancelled.Load(); n != 2 {
			t.Errorf("%d of 2 queries ended with Start's ctx", n)
		}
		if n := len(b.started()); n != 0 {
			t.Errorf("batch source opened %d times with no apps", n)
		}
	})
}

func newProm(t *testing.T, cfg prometheus.Config, opts ...prometheus.Option) *prometheus.Prometheus {
	t.Helper()
	p, err := prometheus.New(cfg, opts...)
	if err != nil {
		t.Fatalf("NewPrometheus: %v", err)
	}
	return p
}
