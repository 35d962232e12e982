package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// metrics is scale.Metrics, restated here: query does not import scale.
type metrics interface {
	Prefetch(ctx context.Context, apps []string)
	Collect(ctx context.Context, app string) (map[string]float64, error)
}

var _ metrics = (*Set)(nil)

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
	s, err := NewSet(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.names(); len(got) != 2 || got[0] != "b" || got[1] != "a" {
		t.Errorf("names() = %v, want [b a]", got)
	}
	if _, err := NewSet(a, b, constSource{name: "a"}); err == nil || err.Error() != `metric "a": defined twice` {
		t.Errorf("duplicate names: error %v", err)
	}
	if _, err := NewSet(constSource{}); err == nil {
		t.Error("empty name: no error")
	}
	if _, err := NewSet(a, nil); err == nil {
		t.Error("nil source: no error")
	}
	empty, err := NewSet()
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
		`sum(queue_depth{app="app-a"})`: {file: "vector_one.json"},
		`sum(queue_depth{app="app-b"})`: {file: "vector_many.json"},
		`sum by (app) (queue_depth)`:    {file: "fleet_by_app.json"},
	})
	per := newProm(t, PrometheusConfig{Name: "per_app", Address: srv.URL, Query: perAppQuery})
	fleet := newProm(t, PrometheusConfig{Name: "fleet", Address: srv.URL, Query: `sum by (app) (queue_depth)`})
	s, err := NewSet(per, fleet, constSource{name: "const", v: 3})
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
	if !errors.Is(err, ErrManySeries) {
		t.Errorf("errors.Is(%v, ErrManySeries) = false", err)
	}

	s2, _ := NewSet(constSource{name: "broken", err: errors.New("lag unknown")})
	if _, err := s2.Collect(context.Background(), "app-a"); err == nil || err.Error() != `metric "broken": lag unknown` {
		t.Errorf("error %v, want the metric named", err)
	}
}

func TestSetFleetQueriedOnce(t *testing.T) {
	apps := appNames(60)
	const q = "sum by (app) (queue_depth)"
	for _, prefetch := range []bool{true, false} {
		t.Run(fmt.Sprintf("prefetch=%v", prefetch), func(t *testing.T) {
			srv := newFakeProm(t, map[string]reply{q: {body: fleetFixture(apps), delay: 50 * time.Millisecond}})
			p := newProm(t, PrometheusConfig{Name: "queue_depth", Address: srv.URL, Query: q})
			s, err := NewSet(p)
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
				srv := newFakeProm(t, map[string]reply{q: {body: "down", status: http.StatusInternalServerError}})
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
			p := newProm(t, PrometheusConfig{Name: "queue_depth", Address: addr, Query: q, OnEmpty: OnEmptyZero})
			s, _ := NewSet(p)
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
	srv := newFakeProm(t, map[string]reply{"up": {file: "scalar.json"}})
	s, _ := NewSet(newProm(t, PrometheusConfig{Name: "up", Address: srv.URL, Query: "up"}))
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
	srv := newFakeProm(t, map[string]reply{q: {body: fleetFixture([]string{"app-0", "app-1"}), block: block}})
	s, _ := NewSet(newProm(t, PrometheusConfig{Name: "queue_depth", Address: srv.URL, Query: q}))

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
	srv := newFakeProm(t, map[string]reply{q: {block: block}})
	s, _ := NewSet(newProm(t, PrometheusConfig{Name: "queue_depth", Address: srv.URL, Query: q}))
	s.FleetTimeout = 100 * time.Millisecond
	_, err := s.Collect(context.Background(), "app-0")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded from FleetTimeout", err)
	}
}
