package cmd

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// closedAddr returns an address on 127.0.0.1 that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// countingListener accepts connections on 127.0.0.1 and counts them.
func countingListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

const goodConfig = `org: acme
app-name: "tenant-*"
exclude: "tenant-internal-*"
shard: 1/2
timezone: Europe/Berlin
concurrency: 16
max-scale-down: 2
started-machine-count: ceil(queue_depth / 10)
metric-collectors:
  - type: prometheus
    metric-name: queue_depth
    address: http://ADDR
    query: sum(queue_depth{app="$APP_NAME"})
  - type: prometheus
    metric-name: cpu
    address: http://ADDR
    query: avg(cpu{app="$APP_NAME"})
  - type: kafka
    metric-name: lag
    brokers: ADDR
    topic: orders-$APP_NAME
policies:
  - name: trial
    apps: "tenant-trial-*"
    min-started-machine-count: "0"
    max-started-machine-count: "1"
  - name: paying
    apps: "tenant-paid-*"
    started-machine-count: "ceil(queue_depth / 5) + (cpu > 0.8 ? 1 : 0) + lag / 1000"
  - name: night
    apps: "tenant-*"
    started-machine-count: "hour < 6 ? 0 : 1"
`

// TestValidateGoodConfig: a good configuration is "config ok" with its
// counts, exit 0, with no token and no network: the Fly APIs and every
// metric source point at a closed port, and then at a listener that
// counts the connections it gets (none).
func TestValidateGoodConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) (string, func() int64)
	}{
		{"closed port", func(t *testing.T) (string, func() int64) { return closedAddr(t), func() int64 { return 0 } }},
		{"counting listener", func(t *testing.T) (string, func() int64) {
			addr, n := countingListener(t)
			return addr, n.Load
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, connections := tc.addr(t)
			setenv(t, "FLY_API_BASE_URL", "http://"+addr)
			setenv(t, "FLY_FLAPS_BASE_URL", "http://"+addr)
			path := writeFile(t, "fas.yml", strings.ReplaceAll(goodConfig, "ADDR", addr))
			code, out, stderr := runCLI(t, "validate", "--config", path, "--dry-run", "--max-failure-ratio", "0.2")
			if code != ExitOK {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			// 9 keys of the file (the original's app-name counts once
			// with --apps), two flags.
			if want := "config ok: 3 policies, 3 collectors, 11 settings\n"; out != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
			if stderr != "" {
				t.Errorf("stderr: %q", stderr)
			}
			if n := connections(); n != 0 {
				t.Errorf("validate made %d connections", n)
			}
		})
	}
}

// badConfig holds problems on known lines; the variables and flags of
// TestValidateListsEveryProblem add two more.
const badConfig = `org: acme
exlude: "tenant-internal-*"
app-name: "tenant-*"
concurrency: [4]
shard: 5/4
timezone: Mars/Olympus
started-machine-count: ceil(queue_dept / 10)
metric-collectors:
  - type: prometheus
    metric-name: queue_depth
    address: http://127.0.0.1:1
    query: sum(queue_depth{app="$APP_NAME"})
  - type: influx
    metric-name: cpu
policies:
  - name: capped
    apps: "tenant-big-*"
    max-machines: "0"
  - name: everyone
    apps: "tenant-*"
    started-machine-count: "1"
  - name: trial
    apps: "tenant-trial-*"
    started-machine-count: "cpu > 0.5 ? 2 : 1"
  - name: broken
    apps: "tenant-[z-a]"
`

// TestValidateListsEveryProblem: a configuration with problems of every
// kind — an unknown key, a type, a shard, a time zone, an expression, a
// collector type, a policy's range, an unreachable policy, a malformed
// glob, a flag and a variable — lists each, with where it is, and exits 2.
func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "fas.yml", badConfig)
	setenv(t, "FAS_SCALE_DOWN", "shrink")
	code, out, stderr := runCLI(t, "validate", "--config", path, "--max-scale-up", "-1")
	if code != ExitUsage {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	// Each problem: where it is, and what it is.
	want := []struct{ where, what string }{
		{path + ":2:", `unknown key "exlude" (did you mean "exclude"?)`},
		{path + ":4:", "concurrency: want a single value, not a list"},
		{"shard", `"5/4" is not a shard`},
		{"timezone", `"Mars/Olympus" is not a time zone`},
		{"started-machine-count", `unknown name queue_dept`},
		{"metric-collectors[1]", `type "influx" is not supported`},
		{path + `:18: policy "capped": max-machines`, `"0" is not a number of machines`},
		{path + `:22: policy "trial"`, `can never apply: every app its apps match takes an earlier policy first, "everyone" (line 19)`},
		{path + `:26: policy "broken": apps`, "malformed glob"},
		{"--max-scale-up (FAS_MAX_SCALE_UP)", `"-1" is not a number of machines`},
		{"--scale-down (FAS_SCALE_DOWN)", `"shrink": use stop or suspend`},
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	for _, w := range want {
		found := false
		for _, line := range lines {
			if strings.Contains(line, w.where) && strings.Contains(line, w.what) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %s: %s in:\n%s", w.where, w.what, stderr)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d problems listed, want %d:\n%s", len(lines), len(want), stderr)
	}
	for _, line := range lines {
		if !strings.Contains(line, path) && !strings.HasPrefix(line, "--") {
			t.Errorf("problem names neither the file nor a flag: %q", line)
		}
	}
	if want := "config invalid: 11 problems"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	// run stops at the first of them, with the same words.
	code, _, runErr := runCLI(t, "run", "--config", path, "--max-scale-up", "-1", "--api-token", "tok")
	if code != ExitUsage || !strings.Contains(stderr, strings.TrimSpace(strings.SplitN(runErr, "\n", 2)[0])) {
		t.Errorf("run: exit %d, %q; want 2 and one of validate's problems", code, runErr)
	}
}
