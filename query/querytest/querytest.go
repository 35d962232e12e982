// Package querytest collects metrics through a query.Set as scale does,
// for the sources' tests. Only tests import it.
package querytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query"
)

// CollectAll prefetches apps on s, then collects every app concurrently,
// each with a deadline of its own (10 s), as scale's workers do: the value
// of metric for each app, or the app's error.
func CollectAll(ctx context.Context, s *query.Set, apps []string, metric string) (map[string]float64, map[string]error) {
	s.Prefetch(ctx, apps)
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		values = map[string]float64{}
		errs   = map[string]error{}
	)
	for _, app := range apps {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			m, err := s.Collect(actx, app)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[app] = err
				return
			}
			values[app] = m[metric]
		})
	}
	wg.Wait()
	return values, errs
}

// RunSet collects every app from src alone in a Set, within 30 s
// (CollectAll), then closes the Set: an error of Close fails t.
func RunSet(t testing.TB, src query.Source, apps []string) (map[string]float64, map[string]error, *query.Set) {
	t.Helper()
	set, err := query.NewSet(src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	values, errs := CollectAll(ctx, set, apps, src.Name())
	if err := set.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	return values, errs, set
}
