package cmd

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

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
			return demo(c.Context, s)
		},
	}
}

// demo runs the demo: see demoCommand.
func demo(ctx context.Context, s *Streams) error {
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
		"--apps", "tenant-*,worker-*",
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
	fmt.Fprintf(s.Out, "A fake Fly.io org %q (%d apps) at %s and a Prometheus-compatible\n"+
		"metrics endpoint at %s, both served by this process on loopback:\n"+
		"nothing outside this machine is contacted. Each pass below is the real run command,\n"+
		"talking HTTP to them, with the Fly API base URLs pointed at the fake:\n\n",
		demoOrg, len(fly.Apps()), fly.URL, metrics.URL)
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
		if err := demoPass(ctx, s, fly.URL, append(slices.Clone(args), p.extra...)); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "\nNext: fly-autoscaler run --help, and README.md for your own org.\n")
	return nil
}

// demoPass runs the run command with args against the fake Fly API at
// flyURL: the same flags, loadRunConfig, runOnce and scale.Run as
// "fly-autoscaler run", except that the flags read no FAS_* variable (the
// demo must not pick up the operator's real configuration) and the base
// URLs are set here rather than from the environment.
func demoPass(ctx context.Context, s *Streams, flyURL string, args []string) error {
	flags := runFlags()
	for _, f := range flags {
		if v := reflect.ValueOf(f).Elem().FieldByName("EnvVars"); v.IsValid() && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
	app := &cli.App{
		Name:                      "fly-autoscaler",
		Writer:                    s.Out,
		ErrWriter:                 s.Err,
		HideHelpCommand:           true,
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {},
		OnUsageError:              onUsageError,
		Commands: []*cli.Command{{
			Name:         "run",
			Flags:        flags,
			OnUsageError: onUsageError,
			Action: func(c *cli.Context) error {
				rc, err := loadRunConfig(c, s)
				if err != nil {
					return err
				}
				rc.apiBaseURL, rc.machinesBaseURL = flyURL, flyURL
				return runOrRepeat(c.Context, s, rc)
			},
		}},
	}
	run := append([]string{"fly-autoscaler", "run", "--api-token", demoToken}, args...)
	return app.RunContext(ctx, run)
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

// demoMetrics is a loopback HTTP server that speaks the part of the
// Prometheus HTTP API that fly-autoscaler uses, instant queries at
// /api/v1/query, answering a fixed value per app. There is no Prometheus in
// the binary; any server that speaks this API works the same.
type demoMetrics struct {
	URL string
	srv *http.Server
}

func startDemoMetrics(values map[string]float64) (*demoMetrics, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo metrics: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/query", demoQueryHandler(values))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writePromError(w, http.StatusNotFound, "not_found", "the demo serves /api/v1/query only")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &demoMetrics{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// Close stops the server and its connections.
func (m *demoMetrics) Close() { _ = m.srv.Close() }

// promAppSelector finds the app in a per-app query such as
// sum(queue_depth{app="my-app"}).
var promAppSelector = regexp.MustCompile(`app\s*=\s*"([^"]*)"`)

// demoQueryHandler answers instant queries. A query that selects one app
// (app="name") gets that app's value as one sample without labels, as
// sum(...) gives; any other query gets every app's value labelled with app,
// as sum by (app) (...) gives. An unknown app gets an empty vector.
func demoQueryHandler(values map[string]float64) http.Handler {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	slices.Sort(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			writePromError(w, http.StatusMethodNotAllowed, "bad_data", "use GET or POST")
			return
		}
		if err := r.ParseForm(); err != nil {
			writePromError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		q := r.Form.Get("query")
		if strings.TrimSpace(q) == "" {
			writePromError(w, http.StatusBadRequest, "bad_data", "query: empty")
			return
		}
		ts := float64(time.Now().UnixMilli()) / 1000
		if t := r.Form.Get("time"); t != "" {
			f, err := strconv.ParseFloat(t, 64)
			if err != nil {
				tm, err := time.Parse(time.RFC3339Nano, t)
				if err != nil {
					writePromError(w, http.StatusBadRequest, "bad_data", "time: "+err.Error())
					return
				}
				f = float64(tm.UnixMilli()) / 1000
			}
			ts = f
		}
		type sample struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		result := []sample{}
		add := func(labels map[string]string, v float64) {
			result = append(result, sample{Metric: labels, Value: [2]any{ts, strconv.FormatFloat(v, 'f', -1, 64)}})
		}
		if m := promAppSelector.FindStringSubmatch(q); m != nil {
			if v, ok := values[m[1]]; ok {
				add(map[string]string{}, v)
			}
		} else {
			for _, n := range names {
				add(map[string]string{"app": n}, values[n])
			}
		}
		writePromJSON(w, http.StatusOK, map[string]any{
			"status": "success",
			"data":   map[string]any{"resultType": "vector", "result": result},
		})
	})
}

func writePromError(w http.ResponseWriter, status int, errType, msg string) {
	writePromJSON(w, status, map[string]any{"status": "error", "errorType": errType, "error": msg})
}

func writePromJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
