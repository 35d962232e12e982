package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

var (
	fleet     = flag.Bool("fleet", false, "print the fleet table (make bench); without it the test is skipped")
	sizes     = flag.String("apps", "1000,10000", "fleet sizes, comma-separated")
	workers   = flag.String("concurrency", "8,16,64", "values of --concurrency, comma-separated")
	latency   = flag.Duration("latency", 20*time.Millisecond, "latency flytest adds to every Fly call")
	scenarios = flag.String("scenarios", "floor,steady,scale-up", "scenarios, comma-separated: floor, steady, scale-up, budget, ratio")
	prebuilt  = flag.String("bin", "", "a built command to measure instead of this tree's (a baseline build, for comparison)")
)

// token is the fake org's token: flytest checks it like Fly does.
const token = "FlyV1 fm2_fleet-bench"

// pageSize is the apps per GraphQL page of the org's app list (fly-go asks
// for 200).
const pageSize = 200

// A scenario is one kind of run over a fleet whose apps each have two
// started machines and three stopped ones, and a queue_depth of 20.
type scenario struct {
	name string
	// expr is the started target.
	expr string
	// args are more flags of the command.
	args []string
	// rounds is the least round trips per app: the list, then (if any)
	// every action of the app at once.
	rounds int
	// status is what every app must end as.
	status string
	// floor runs the floor client (see floor) instead of the command.
	floor bool
}

var allScenarios = []scenario{
	{name: "floor", rounds: 1, floor: true},
	{name: "steady", expr: "ceil(queue_depth / 10)", rounds: 1, status: "unchanged"},
	{name: "scale-up", expr: "ceil(queue_depth / 10) + 2", rounds: 2, status: "scaled"},
	// scale-up under a fleet budget that grants it all: every app is
	// planned, and waits for the allocation, before any acts.
	{name: "budget", expr: "ceil(queue_depth / 10) + 2", args: []string{"--fleet-max-started", "100000000"}, rounds: 2, status: "scaled"},
	// scale-up under --max-failure-ratio: every app is planned before
	// any acts, without a budget.
	{name: "ratio", expr: "ceil(queue_depth / 10) + 2", args: []string{"--max-failure-ratio", "0.5"}, rounds: 2, status: "scaled"},
}

// TestFleetTable runs the built command against flytest, with -latency
// added to every Fly call, for each fleet size, scenario and worker count,
// and prints one row per run: the wall time, its latency bound and their
// ratio, the Fly API calls by kind, the Prometheus queries, the most
// requests one app had in flight at once, and the command's CPU time and
// peak RSS (from its rusage).
//
// The bound is the critical path at that latency: the org lookup and the
// app pages one after another, then ceil(apps / concurrency) apps per
// worker at rounds round trips each. The floor scenario is the baseline of
// the same table: a client that makes a steady run's Fly calls and does
// nothing else (see floor), so that what flytest and a shared machine add
// to the bound is measured beside what the command adds. Nothing here
// asserts a time: shared machines are noisy. It fails only when a run does
// not do its work.
func TestFleetTable(t *testing.T) {
	if !*fleet {
		t.Skip("the fleet table runs with make bench (-fleet)")
	}
	if _, err := promtest.Binary(); err != nil {
		t.Fatal(err) // a skip would print an empty table
	}
	bin := *prebuilt
	if bin == "" {
		bin = build(t)
	}
	var scs []scenario
	for _, name := range list(*scenarios) {
		i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			t.Fatalf("-scenarios: unknown %q", name)
		}
		scs = append(scs, allScenarios[i])
	}
	concs := numbers(t, *workers)

	fmt.Printf("fleet benchmark, %s, %d cores (GOMAXPROCS %d), %s, %v added to every Fly call, 5 machines per app (2 started)\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), *latency)
	fmt.Printf("%-9s %6s %5s %9s %9s %6s  %-22s %-14s %5s %8s %9s %8s\n",
		"SCENARIO", "APPS", "CONC", "WALL", "BOUND", "RATIO", "MACHINES API CALLS/APP", "GRAPHQL CALLS", "PROMQ", "INFLIGHT", "CPU", "PEAK RSS")
	for _, n := range numbers(t, *sizes) {
		t.Run(fmt.Sprintf("apps=%d", n), func(t *testing.T) {
			series := make(map[string]float64, n)
			for i := 1; i <= n; i++ {
				series[appName(i)] = 20
			}
			prom := promtest.Start(t, series)
			for _, sc := range scs {
				for _, c := range concs {
					r := measure(t, bin, prom, n, c, sc)
					fmt.Printf("%-9s %6d %5d %9s %9s %6.2f  %-22s %-14s %5d %8d %9s %6.1fMiB\n",
						sc.name, n, c, r.wall.Round(time.Millisecond), r.bound.Round(time.Millisecond),
						r.wall.Seconds()/r.bound.Seconds(), r.perApp, r.graphql, r.queries, r.inFlight,
						r.cpu.Round(time.Millisecond), float64(r.rss)/(1<<20))
				}
			}
		})
	}
}

func appName(i int) string { return fmt.Sprintf("bench-%05d", i) }

type result struct {
	wall, bound     time.Duration
	perApp, graphql string
	queries         int
	inFlight        int
	// cpu is the command's user and system time: on a shared machine,
	// wall time far above the bound with little CPU means waiting for a core.
	cpu time.Duration
	rss int64
}

// measure runs the command once against a fresh fake org of n apps.
func measure(t *testing.T, bin string, prom *promtest.Server, n, conc int, sc scenario) result {
	t.Helper()
	org := &flytest.Org{Slug: "bench-org", Apps: []flytest.AppSpec{{Name: "bench-%05d", Count: n, ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Count: 2}, {State: "stopped", Count: 3}}}}}
	srv := flytest.New(org, flytest.Options{Token: token, Latency: *latency})
	defer srv.Close()
	prom.ResetQueries()

	usage := filepath.Join(t.TempDir(), "rusage")
	cmd := exec.Command(os.Args[0], bin, "run", "--org", "bench-org", "--apps", "bench-*", "--concurrency", strconv.Itoa(conc), "--output", "json",
		"--prometheus-address", prom.URL(), "--prometheus-metric-name", "queue_depth", "--prometheus-query", "sum by (app) (queue_depth)",
		"--started-machine-count", sc.expr)
	cmd.Args = append(cmd.Args, sc.args...)
	cmd.Env = append(childEnv(srv.URL), wrapEnv+"="+usage)
	if sc.floor {
		cmd = exec.Command(os.Args[0], os.Args[0], "floor", "--org", "bench-org", "--concurrency", strconv.Itoa(conc))
		cmd.Env = append(childEnv(srv.URL), wrapEnv+"="+usage, floorEnv+"=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s, %d apps, concurrency %d: %v\n%s", sc.name, n, conc, err, tail(stderr.String()))
	}
	if sc.floor {
		var rep struct {
			Apps int `json:"apps"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Apps != n {
			t.Fatalf("floor, %d apps: listed %d (%v), want every app", n, rep.Apps, err)
		}
	} else {
		var rep struct {
			Apps []struct {
				Status string `json:"status"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v", err)
		}
		for _, a := range rep.Apps {
			if a.Status != sc.status {
				t.Fatalf("%s, %d apps, concurrency %d: an app ended %s, want every app %s", sc.name, n, conc, a.Status, sc.status)
			}
		}
		if len(rep.Apps) != n {
			t.Fatalf("%d apps reported, want %d", len(rep.Apps), n)
		}
	}

	machineCalls, graphqlCalls := map[string]int{}, map[string]int{}
	for _, c := range srv.Calls() {
		if strings.HasPrefix(c.Op, "graphql") {
			graphqlCalls[strings.TrimPrefix(c.Op, "graphql_")]++
		} else {
			machineCalls[c.Op]++
		}
	}
	peak := 0
	for _, app := range srv.Apps() {
		peak = max(peak, srv.PeakInFlight(app))
	}
	pages := (n + pageSize - 1) / pageSize
	rounds := 1 + pages + (n+conc-1)/conc*sc.rounds
	var rss, user, sys int64
	if b, err := os.ReadFile(usage); err != nil {
		t.Fatal(err)
	} else if _, err := fmt.Sscan(string(b), &rss, &user, &sys); err != nil {
		t.Fatalf("rusage %q: %v", b, err)
	}
	return result{
		wall:     wall,
		bound:    time.Duration(rounds) * *latency,
		perApp:   perKind(machineCalls, float64(n)),
		graphql:  perKind(graphqlCalls, 1),
		queries:  prom.Queries(),
		inFlight: peak,
		cpu:      time.Duration(user + sys),
		rss:      rss,
	}
}

// wrapEnv names the file where the test binary, re-executed as a wrapper,
// writes the command's rusage: peak RSS in bytes, user and system time in
// nanoseconds.
//
// The command is not started from the harness itself: Go starts children
// with vfork, so the child's ru_maxrss counts the memory of the process it
// was forked from (Linux records the old mm's high-water mark at exec),
// here flytest's fleet of 50,000 machines. Forked from a small wrapper
// instead, it reads the command's own peak, or the wrapper's few MiB.
const wrapEnv = "FLEETBENCH_RUSAGE"

func TestMain(m *testing.M) {
	if path := os.Getenv(wrapEnv); path != "" {
		os.Exit(wrap(path, os.Args[1], os.Args[2:]))
	}
	if os.Getenv(floorEnv) != "" {
		os.Exit(floor(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// wrap runs bin with args and the wrapper's streams and environment, and
// writes its rusage to path. It returns the command's exit code.
func wrap(path, bin string, args []string) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, wrapEnv+"=") })
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "no rusage")
		return 1
	}
	// Maxrss is in KiB on Linux.
	out := fmt.Sprintf("%d %d %d\n", ru.Maxrss*1024, cmd.ProcessState.UserTime().Nanoseconds(), cmd.ProcessState.SystemTime().Nanoseconds())
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return cmd.ProcessState.ExitCode()
}

// perKind is "list 1, start 2": the calls of each kind divided by per.
func perKind(calls map[string]int, per float64) string {
	kinds := make([]string, 0, len(calls))
	for k := range calls {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		v := strconv.FormatFloat(float64(calls[k])/per, 'f', 2, 64)
		parts[i] = k + " " + strings.TrimSuffix(strings.TrimRight(v, "0"), ".")
	}
	return strings.Join(parts, ", ")
}

// build compiles the command as make build does.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fly-autoscaler")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// childEnv is the environment without the caller's fly-autoscaler and Fly
// settings, pointed at flytest.
func childEnv(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FAS_") || strings.HasPrefix(k, "FLY_") || k == "NO_COLOR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "FLY_API_BASE_URL="+url, "FLY_FLAPS_BASE_URL="+url, "FAS_API_TOKEN="+token)
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func numbers(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	for _, f := range list(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			t.Fatalf("%q: want whole numbers of at least 1", s)
		}
		out = append(out, n)
	}
	return out
}

func tail(s string) string {
	if lines := strings.Split(strings.TrimSpace(s), "\n"); len(lines) > 20 {
		return strings.Join(lines[len(lines)-20:], "\n")
	}
	return s
}
