package cmd

import (
	"context"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// The environment of a test's runs: setenv records a variable for the
// test and its subtests, and runCLI passes the test's Env to Main, so
// tests leave the process's environment alone and can run in parallel.
var testEnvs sync.Map // test name -> Env

// setenv sets a variable for the runs of t and of its subtests, until t
// ends.
func setenv(t *testing.T, key, value string) {
	t.Helper()
	name := t.Name()
	env, loaded := testEnvs.LoadOrStore(name, Env{key: value})
	if loaded {
		// A test's own goroutine sets its variables: no other writer.
		env.(Env)[key] = value
		return
	}
	t.Cleanup(func() { testEnvs.Delete(name) })
}

// envFor returns the Env of t: its variables over those of the tests it
// is a subtest of.
func envFor(t *testing.T) Env {
	env := Env{}
	for _, name := range lineage(t) {
		if e, ok := testEnvs.Load(name); ok {
			maps.Copy(env, e.(Env))
		}
	}
	return env
}

// lineage returns the names of t and of the tests it is a subtest of,
// outermost first.
func lineage(t *testing.T) []string {
	parts := strings.Split(t.Name(), "/")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "/")
	}
	return out
}

// childEnv returns the environment of a child process running Main (see
// TestMainProcess): the process's, without the variables that configure a
// run (a developer's FAS_API_TOKEN must not reach a test), then t's Env,
// then extra.
func childEnv(t *testing.T, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "FAS_") && !strings.HasPrefix(k, "TEMPORAL_") && !strings.HasPrefix(k, "FLY_") && k != "NO_COLOR" {
			out = append(out, kv)
		}
	}
	env := envFor(t)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return append(out, extra...)
}

// resetEnv forgets the variables set for t itself (those of the tests it
// is a subtest of stay).
func resetEnv(t *testing.T) {
	if e, ok := testEnvs.Load(t.Name()); ok {
		clear(e.(Env))
	}
}

// testTransports holds the in-memory Fly API of a test (inMemoryFly).
var testTransports sync.Map // test name -> http.RoundTripper

// inMemoryFly serves org from flytest in memory to the runs of t and of
// its subtests (through testContext), with the variables that point the
// command at it: such a test can run on fake time (testing/synctest).
func inMemoryFly(t *testing.T, org *flytest.Org, opts flytest.Options) *flytest.Server {
	t.Helper()
	srv := flytest.NewInMemory(org, opts)
	name := t.Name()
	testTransports.Store(name, srv.Transport())
	t.Cleanup(func() { testTransports.Delete(name) })
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", opts.Token)
	return srv
}

// testContext returns the context of a run of t: carrying the in-memory
// Fly API of t or of a test it is a subtest of, if any.
func testContext(t *testing.T) context.Context {
	ctx := context.Background()
	for _, name := range lineage(t) {
		if rt, ok := testTransports.Load(name); ok {
			ctx = withFlyTransport(ctx, rt.(http.RoundTripper))
		}
	}
	return ctx
}

// realPrometheus lets one test at a time run against a real Prometheus.
var realPrometheus = make(chan struct{}, 1)

// onRealPrometheus runs t in parallel with the other tests but with no
// other test on a real Prometheus: each starts its own server, whose
// scrapes must not come late (a late scrape leaves series stale, and a
// run then finds none). While one waits on its server, the other tests
// use the CPU.
func onRealPrometheus(t *testing.T) {
	t.Parallel()
	realPrometheus <- struct{}{}
	t.Cleanup(func() { <-realPrometheus })
}

// configsOf returns the Configs of kind C among rc's metric sources.
func configsOf[C query.SourceConfig](rc *runConfig) []C {
	var out []C
	for _, m := range rc.metrics {
		if c, ok := m.cfg.(C); ok {
			out = append(out, c)
		}
	}
	return out
}
