package cmd

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// demoOrgJSON is the demo's Fly org in scale/flytest's fixture format,
// embedded so that the demo works from any install, the Docker image
// included: twelve apps under two name patterns (tenant-*, worker-*) with
// machines in every state, one of them mid-release, and one app that the
// patterns leave out.
//
//go:embed demo/org.json
var demoOrgJSON []byte

// demoQueueDepth is the value of queue_depth the demo's metrics endpoint
// answers for each app. With the demo's targets (ceil(queue_depth / 10)
// started machines, as many created, at most 4) every kind of change
// happens once: starts from suspended, stopped and never-started machines,
// stops, creates, destroys, and apps already on target.
var demoQueueDepth = map[string]float64{
	"tenant-01": 14,   // 2 started: on target
	"tenant-02": 38,   // 1 → 4 started: resume the suspended one, start two stopped
	"tenant-03": 6,    // 3 → 1 started: stop the oldest release first
	"tenant-04": 27,   // 1 → 3 machines: create two, started, over ord and iad
	"tenant-05": 50,   // release in progress: skipped whatever the metric says
	"tenant-06": 0,    // scaled to zero already
	"tenant-07": 15,   // 6 machines, at most 4: destroy two stopped ones
	"tenant-08": 20,   // 1 → 2 started: resume the suspended one
	"worker-01": 33,   // 1 → 4 started and 3 → 4 machines: start two, create one
	"worker-02": 9,    // 4 → 1 started: stop three
	"worker-03": 10,   // on target; a machine on an unreachable host is not counted
	"worker-04": 8,    // a machine created but never started: start it
	"website":   1000, // not selected by the patterns: never touched
}

const (
	demoOrg   = "demo-org"
	demoToken = "demo-token"
	// demoPatterns are the apps the demo selects: all but one of its org.
	demoPatterns = "tenant-*,worker-*"
	// demoLatency is added to every fake Fly API request, so that the
	// timings look like a real run's and the passes take a moment.
	demoLatency = 40 * time.Millisecond
)

func demoCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "see it work: a fake Fly org and metrics on loopback, then a dry run, a run and a converged run",
		Description: "Starts an in-process fake of the Fly GraphQL and Machines APIs (scale/flytest) holding an\n" +
			"embedded demo org, and a Prometheus-compatible metrics endpoint answering /api/v1/query\n" +
			"with fixed values, both on 127.0.0.1. Then it runs the real run command against them over\n" +
			"HTTP three times: a dry run that shows the plan, the run that makes the changes, and a\n" +
			"second run that finds nothing left to do. Nothing outside this machine is contacted; no\n" +
			"FAS_* variable or config file is read.",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("demo takes no arguments")
			}
			return demo(c.Context, s, envOf(c).Get("COLUMNS"))
		},
	}
}

// demo runs the demo: see demoCommand. columns is COLUMNS, which the
// passes' tables fit as a run's do.
func demo(ctx context.Context, s *Streams, columns string) error {
	org, err := flytest.ParseOrg(demoOrgJSON)
	if err != nil {
		return fmt.Errorf("demo org: %w", err)
	}
	fly := flytest.New(org, flytest.Options{Token: demoToken, Latency: demoLatency, Seed: 1})
	defer fly.Close()
	metrics, err := startDemoMetrics(demoQueueDepth)
	if err != nil {
		return err
	}
	defer metrics.Close()

	args := []string{
		"--org", demoOrg,
		"--apps", demoPatterns,
		"--prometheus-address", metrics.URL,
		"--prometheus-metric-name", "queue_depth",
		"--prometheus-query", `sum(queue_depth{app="$APP_NAME"})`,
		"--started-machine-count", "ceil(queue_depth / 10)",
		"--min-created-machine-count", "ceil(queue_depth / 10)",
		"--max-created-machine-count", "4",
		"--regions", "ord,iad",
	}
	bold := newRenderer(s.Out, s.Color).NewStyle().Bold(true)
	fmt.Fprintf(s.Out, "%s\n\n", bold.Render("fly-autoscaler demo"))
	// The count the reports show: the apps --apps selects.
	sel, err := scale.NewSelector(splitList(demoPatterns), nil)
	if err != nil {
		return fmt.Errorf("demo patterns: %w", err)
	}
	selected := 0
	for _, name := range fly.Apps() {
		if sel.Match(name) {
			selected++
		}
	}
	fmt.Fprintf(s.Out, "A fake Fly.io org %q (%d apps, %d of them matching %s)\n"+
		"at %s and a Prometheus-compatible metrics endpoint at\n"+
		"%s, both served by this process on loopback: nothing outside\n"+
		"this machine is contacted. Each pass below is the real run command, talking\n"+
		"HTTP to them, with the Fly API base URLs pointed at the fake:\n\n",
		demoOrg, len(fly.Apps()), selected, demoPatterns, fly.URL, metrics.URL)
	fmt.Fprintf(s.Out, "  %s\n", shellCommand(append([]string{"fly-autoscaler", "run"}, args...)))

	passes := []struct {
		title string
		extra []string
	}{
		{"1/3  Plan: what would change (--dry-run touches nothing)", []string{"--dry-run"}},
		{"2/3  Run: scale the fleet", nil},
		{"3/3  Run again: converged, nothing left to do", nil},
	}
	for _, p := range passes {
		fmt.Fprintf(s.Out, "\n%s\n\n", bold.Render("── "+p.title))
		if err := demoPass(ctx, s, fly.URL, columns, append(slices.Clone(args), p.extra...)); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "\nNext: fly-autoscaler run --help, and README.md's quick start for your own org.\n")
	return nil
}

// demoPass runs "fly-autoscaler run" with args against the fake Fly API
// at flyURL: the same command, flags and code as the operator's, in an
// environment of the demo's own, which holds only the base URLs: the demo
// must not pick up the operator's real configuration (FAS_* variables);
// COLUMNS, about the terminal, is passed on.
func demoPass(ctx context.Context, s *Streams, flyURL, columns string, args []string) error {
	env := Env{"FLY_API_BASE_URL": flyURL, "FLY_FLAPS_BASE_URL": flyURL}
	if columns != "" {
		env["COLUMNS"] = columns
	}
	run := append([]string{"fly-autoscaler", "run", "--api-token", demoToken}, args...)
	return runApp(ctx, newApp(s, env), run)
}

// shellCommand renders argv as a shell command line, one option per line.
func shellCommand(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			if strings.HasPrefix(a, "-") && i > 2 {
				b.WriteString(" \\\n    ")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:,=@%+-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// startDemoMetrics starts the demo's metrics endpoint: query/promfake,
// which speaks the part of the Prometheus HTTP API that fly-autoscaler uses
// (instant queries at /api/v1/query), answering values[app] for each app.
// There is no Prometheus in the binary; any server that speaks this API
// works the same.
func startDemoMetrics(values map[string]float64) (*promfake.Server, error) {
	return promfake.Start(&promfake.Handler{Values: values})
}
