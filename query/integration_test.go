package query_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/querytest"
)

const (
	perAppSum = `sum(queue_depth{app="${APP_NAME}"})`
	fleetSum  = `sum by (app) (queue_depth)`
)

// collectAll collects every app concurrently, as scale's workers do, each
// with its own deadline.
func collectAll(t *testing.T, s *query.Set, apps []string) (map[string]float64, map[string]error) {
	t.Helper()
	return querytest.CollectAll(context.Background(), s, apps, "queue_depth")
}

func TestRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("real Prometheus: skipped in -short mode")
	}
	series := map[string]float64{}
	var apps []string
	for i := range 20 {
		app := fmt.Sprintf("my-app-%d", i)
		apps = append(apps, app)
		series[app] = float64(i) * 1.5
	}
	srv := promtest.Start(t, series)

	newSet := func(t *testing.T, q string, onEmpty query.OnEmpty) *query.Set {
		t.Helper()
		p := newProm(t, prometheus.Config{Name: "queue_depth", Address: srv.URL(), Query: q, Token: "test-token", OnEmpty: onEmpty})
		s, err := query.NewSet(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("per-app and fleet-wide agree", func(t *testing.T) {
		srv.ResetQueries()
		perApp, errs := collectAll(t, newSet(t, perAppSum, query.OnEmptyError), apps)
		if len(errs) > 0 {
			t.Fatalf("per-app errors: %v", errs)
		}
		if n := srv.Queries(); n != len(apps) {
			t.Errorf("per-app: %d queries, want %d", n, len(apps))
		}
		seen := map[string]bool{}
		for _, r := range srv.QueryLog() {
			seen[r.Query] = true
			if r.Authorization != "Bearer test-token" {
				t.Errorf("Authorization %q, want Bearer test-token", r.Authorization)
			}
		}
		for _, app := range apps {
			if q := query.Expand(perAppSum, app); !seen[q] {
				t.Errorf("no query %q", q)
			}
		}

		srv.ResetQueries()
		fleet, errs := collectAll(t, newSet(t, fleetSum, query.OnEmptyError), apps)
		if len(errs) > 0 {
			t.Fatalf("fleet-wide errors: %v", errs)
		}
		if n := srv.Queries(); n != 1 {
			t.Errorf("fleet-wide: %d queries for %d apps, want 1", n, len(apps))
		}
		for _, app := range apps {
			if perApp[app] != series[app] || fleet[app] != series[app] {
				t.Errorf("%s: per-app %v, fleet-wide %v, want %v", app, perApp[app], fleet[app], series[app])
			}
		}
	})

	t.Run("app without series", func(t *testing.T) {
		const missing = "no-such-app"
		for _, q := range []string{perAppSum, fleetSum} {
			s := newSet(t, q, query.OnEmptyError)
			s.Prefetch(context.Background(), []string{missing})
			if _, err := s.Collect(context.Background(), missing); !errors.Is(err, query.ErrNoData) {
				t.Errorf("%s, on-empty error: %v, want ErrNoData", q, err)
			}
			s = newSet(t, q, query.OnEmptyZero)
			s.Prefetch(context.Background(), []string{missing})
			if m, err := s.Collect(context.Background(), missing); err != nil || m["queue_depth"] != 0 {
				t.Errorf("%s, on-empty zero: %v, %v; want 0", q, m, err)
			}
		}
	})

	t.Run("series shapes", func(t *testing.T) {
		// Unaggregated series carry the app label: each app takes its own.
		values, errs := collectAll(t, newSet(t, "queue_depth", query.OnEmptyError), apps[:3])
		for _, app := range apps[:3] {
			if errs[app] != nil || values[app] != series[app] {
				t.Errorf("queue_depth, %s: %v, %v; want %v", app, values[app], errs[app], series[app])
			}
		}
		// A series without the app label beside labelled ones is ignored.
		s := newSet(t, fleetSum+" or vector(1)", query.OnEmptyError)
		if m, err := s.Collect(context.Background(), "my-app-1"); err != nil || m["queue_depth"] != series["my-app-1"] {
			t.Errorf("labelled plus unlabelled: %v, %v; want %v", m, err, series["my-app-1"])
		}
		// A scalar applies to every app.
		s = newSet(t, "scalar(sum(queue_depth))", query.OnEmptyError)
		if m, err := s.Collect(context.Background(), "my-app-1"); err != nil || m["queue_depth"] != 285 {
			t.Errorf("scalar: %v, %v; want 285", m, err)
		}
		// Many series without the app label: no app can tell which is its own.
		s = newSet(t, `label_replace(label_replace(queue_depth, "name", "$1", "app", "(.*)"), "app", "", "app", ".*")`, query.OnEmptyZero)
		if _, err := s.Collect(context.Background(), "my-app-1"); !errors.Is(err, query.ErrManySeries) {
			t.Errorf("unlabelled series: %v, want ErrManySeries", err)
		}
		// A per-app query that matches two series is an error, not a sum.
		s = newSet(t, `queue_depth{app=~"${APP_NAME}|my-app-1"}`, query.OnEmptyZero)
		if _, err := s.Collect(context.Background(), "my-app-2"); !errors.Is(err, query.ErrManySeries) {
			t.Errorf("per-app, two series: %v, want ErrManySeries", err)
		}
	})

	t.Run("values change", func(t *testing.T) {
		srv.Set("my-app-3", 100)
		srv.Delete("my-app-4")
		srv.Sync(t)
		values, errs := collectAll(t, newSet(t, fleetSum, query.OnEmptyError), []string{"my-app-3", "my-app-4"})
		if values["my-app-3"] != 100 {
			t.Errorf("my-app-3 = %v, want 100", values["my-app-3"])
		}
		if !errors.Is(errs["my-app-4"], query.ErrNoData) {
			t.Errorf("deleted my-app-4: %v, want ErrNoData", errs["my-app-4"])
		}
	})
}

// A Prometheus that answers 500, or a closed port, fails every app: no app
// is read as zero, whatever the on-empty policy.
func TestUnreachablePrometheusFailsEveryApp(t *testing.T) {
	apps := appNames(20)
	down := newLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusInternalServerError)
	}))
	for _, addr := range []struct{ name, url, want string }{
		{"500", down.URL, "server error: 500"},
		{"port closed", closedAddr(t), "connection refused"},
	} {
		for _, q := range []string{perAppSum, fleetSum} {
			t.Run(addr.name+" "+q, func(t *testing.T) {
				p := newProm(t, prometheus.Config{Name: "queue_depth", Address: addr.url, Query: q, OnEmpty: query.OnEmptyZero})
				s, _ := query.NewSet(p)
				values, errs := collectAll(t, s, apps)
				if len(values) != 0 {
					t.Errorf("values %v, want none", values)
				}
				for _, app := range apps {
					if err := errs[app]; err == nil || !strings.Contains(err.Error(), addr.want) {
						t.Errorf("%s: error %v, want %q", app, err, addr.want)
					}
				}
			})
		}
	}
}
