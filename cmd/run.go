package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flyapi"
)

// Flag categories of the run command's help.
const (
	catSelection = "Selection"
	catTargets   = "Targets"
	catMetrics   = "Metrics"
	catSafety    = "Safety"
	catOutput    = "Output"
	catFly       = "Fly API"
	catSchedule  = "Schedule"
)

// runFlags returns the run command's flags, each bound to its FAS_*
// variable. They are built anew for every App: urfave flags keep state.
func runFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Category: catSelection, EnvVars: []string{"FAS_CONFIG"}, Usage: "YAML config `file` (the original fly-autoscaler's keys); flags and variables take precedence"},
		&cli.StringFlag{Name: "org", Category: catSelection, EnvVars: []string{"FAS_ORG"}, Usage: "Fly organization `slug` whose apps are listed (required with a wildcard)"},
		&cli.StringSliceFlag{Name: "apps", Aliases: []string{"app-name"}, Category: catSelection, EnvVars: []string{"FAS_APP_NAME"}, Usage: "app `name` or glob (*, ?, [a-c], {a,b}); repeat or comma-separate"},
		&cli.StringSliceFlag{Name: "exclude", Category: catSelection, EnvVars: []string{"FAS_EXCLUDE"}, Usage: "glob `pattern` of apps to leave alone; repeat or comma-separate"},
		&cli.StringFlag{Name: "shard", Category: catSelection, EnvVars: []string{"FAS_SHARD"}, Usage: "reconcile only shard `K/N` of the selected apps (by a stable hash of the name), e.g. 2/4: N runners split a fleet"},
		&cli.StringFlag{Name: "process-group", Category: catSelection, EnvVars: []string{"FAS_PROCESS_GROUP"}, Usage: "process `group` whose machines are scaled (default: app)"},

		&cli.StringFlag{Name: "started-machine-count", Category: catTargets, EnvVars: []string{"FAS_STARTED_MACHINE_COUNT"}, Usage: "`expression` for the number of started machines (sets min and max)"},
		&cli.StringFlag{Name: "min-started-machine-count", Category: catTargets, EnvVars: []string{"FAS_MIN_STARTED_MACHINE_COUNT"}, Usage: "`expression` for the least started machines"},
		&cli.StringFlag{Name: "max-started-machine-count", Category: catTargets, EnvVars: []string{"FAS_MAX_STARTED_MACHINE_COUNT"}, Usage: "`expression` for the most started machines"},
		&cli.StringFlag{Name: "created-machine-count", Category: catTargets, EnvVars: []string{"FAS_CREATED_MACHINE_COUNT"}, Usage: "`expression` for the number of machines (sets min and max)"},
		&cli.StringFlag{Name: "min-created-machine-count", Category: catTargets, EnvVars: []string{"FAS_MIN_CREATED_MACHINE_COUNT"}, Usage: "`expression` for the least machines"},
		&cli.StringFlag{Name: "max-created-machine-count", Category: catTargets, EnvVars: []string{"FAS_MAX_CREATED_MACHINE_COUNT"}, Usage: "`expression` for the most machines"},
		&cli.StringFlag{Name: "initial-machine-state", Category: catTargets, EnvVars: []string{"FAS_INITIAL_MACHINE_STATE"}, Usage: "`state` of new machines when no started target decides: started or stopped (default: started)"},
		&cli.StringFlag{Name: "timezone", Category: catTargets, EnvVars: []string{"FAS_TIMEZONE"}, Usage: "IANA time `zone` the time variables (hour, minute, weekday, day, month) are read in, e.g. Europe/Berlin (default: UTC)"},
		&cli.StringSliceFlag{Name: "regions", Category: catTargets, EnvVars: []string{"FAS_REGIONS"}, Usage: "`regions` new machines are spread over, round-robin (default: the cloned machine's)"},
	}
	flags = append(flags, sourceFlags()...)
	flags = append(flags, []cli.Flag{

		&cli.StringFlag{Name: "pushgateway", Category: catMetrics, EnvVars: []string{"FAS_PUSHGATEWAY_URL"}, Usage: "Prometheus Pushgateway `URL` that receives the run's figures at the end of each run"},

		&cli.BoolFlag{Name: "dry-run", Category: catSafety, EnvVars: []string{"FAS_DRY_RUN"}, Usage: "plan and report, change nothing"},
		&cli.StringFlag{Name: "concurrency", Category: catSafety, EnvVars: []string{"FAS_CONCURRENCY"}, Usage: "`N` apps reconciled at once (default: 32)"},
		&cli.StringFlag{Name: "timeout", Category: catSafety, EnvVars: []string{"FAS_TIMEOUT"}, Usage: "`duration` allowed for everything done for one app (default: 30s)"},

		&cli.StringFlag{Name: "max-scale-up", Category: catSafety, EnvVars: []string{"FAS_MAX_SCALE_UP"}, Usage: "at most `N` machines more per app and run, started and created each; 0 freezes (default: no limit)"},
		&cli.StringFlag{Name: "max-scale-down", Category: catSafety, EnvVars: []string{"FAS_MAX_SCALE_DOWN"}, Usage: "at most `N` machines fewer per app and run, started and created each; 0 freezes (default: no limit)"},
		&cli.StringFlag{Name: "max-machines", Category: catSafety, EnvVars: []string{"FAS_MAX_MACHINES"}, Usage: "`N` machines per app and process group above which a created target fails the app as implausible (default: 500)"},
		&cli.StringFlag{Name: "min-started-duration", Category: catSafety, EnvVars: []string{"FAS_MIN_STARTED_DURATION"}, Usage: "never stop, suspend or destroy a machine that started less than `duration` ago"},
		&cli.StringFlag{Name: "max-failure-ratio", Category: catSafety, EnvVars: []string{"FAS_MAX_FAILURE_RATIO"}, Usage: "abort all remaining changes once more than this `ratio` (0..1) of the apps failed (default: 1, never)"},
		&cli.StringFlag{Name: "fleet-max-started", Category: catSafety, EnvVars: []string{"FAS_FLEET_MAX_STARTED"}, Usage: "at most `N` started machines in all over the selected apps (a shard's share with --shard): growth is granted by policy priority (default: no cap)"},
		&cli.StringFlag{Name: "fleet-max-created", Category: catSafety, EnvVars: []string{"FAS_FLEET_MAX_CREATED"}, Usage: "at most `N` machines in all over the selected apps (a shard's share with --shard): growth is granted by policy priority (default: no cap)"},
		&cli.StringFlag{Name: "fallback-started", Category: catSafety, EnvVars: []string{"FAS_FALLBACK_STARTED"}, Usage: "raise an app whose metrics cannot be read to `N` started machines, never lower it (default: leave it alone)"},
		&cli.StringFlag{Name: "scale-down", Category: catSafety, EnvVars: []string{"FAS_SCALE_DOWN"}, Usage: "`mode` of taking started machines down: stop or suspend (default: stop)"},

		&cli.StringFlag{Name: "every", Category: catSchedule, EnvVars: []string{"FAS_EVERY"}, Usage: "repeat the run every `duration` (at least 1s) until SIGINT/SIGTERM (default: run once)"},

		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Category: catOutput, Value: "table", EnvVars: []string{"FAS_OUTPUT"}, Usage: "report `format`: table, json or markdown (md)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Category: catOutput, EnvVars: []string{"FAS_QUIET"}, Usage: "print only failed apps and the summary"},
		&cli.BoolFlag{Name: "wide", Category: catOutput, EnvVars: []string{"FAS_WIDE"}, Usage: "never cut the table to the terminal's width (or COLUMNS)"},
		&cli.BoolFlag{Name: "detailed-exitcode", Category: catOutput, EnvVars: []string{"FAS_DETAILED_EXITCODE"}, Usage: "exit 3 when changes were planned (dry run) or made, 0 when nothing needed to change"},
		&cli.StringFlag{Name: "log-format", Category: catOutput, Value: "text", EnvVars: []string{"FAS_LOG_FORMAT"}, Usage: "`format` of the logs on stderr: text or json"},
		&cli.BoolFlag{Name: "verbose", Category: catOutput, EnvVars: []string{"FAS_VERBOSE"}, Usage: "log each app's decisions and API calls at debug level"},

		&cli.StringFlag{Name: "api-token", Category: catFly, EnvVars: []string{"FAS_API_TOKEN", "FLY_API_TOKEN"}, Usage: "Fly API `token` (an org token: fly tokens create org)"},
	}...)
	return flags
}

func runCommand(s *Streams) *cli.Command {
	return withRunOptions(s, runOrRepeat, &cli.Command{
		Name:      "run",
		Usage:     "reconcile every selected app once, print the report and exit",
		UsageText: "fly-autoscaler run --org my-org --apps 'my-app-*' [--dry-run] [options]",
		Description: "Each option is a flag or the variable in brackets, and most are also a key of the YAML\n" +
			"file given with --config; flags take precedence over variables, variables over the file.\n" +
			"docs/configuration.md lists them all. Exit codes: 0 done, 1 an app\n" +
			"failed or the run could not complete, 2 usage error, 3 changes made or planned (only with\n" +
			"--detailed-exitcode), 130 or 143 SIGINT or SIGTERM before the first pass started.",
	})
}

// withRunOptions makes cmd a command that takes the run options: its
// action loads and validates them, then calls fn.
func withRunOptions(s *Streams, fn func(context.Context, *Streams, *runConfig) error, cmd *cli.Command) *cli.Command {
	cmd.Flags = runFlags()
	cmd.OnUsageError = onUsageError
	cmd.Action = func(c *cli.Context) error {
		rc, err := loadRunConfig(c, s)
		if err != nil {
			return err
		}
		if testHookBeforePasses != nil {
			testHookBeforePasses()
		}
		if !beginPasses(c.Context) {
			return context.Cause(c.Context) // Main has returned already
		}
		return fn(c.Context, s, rc)
	}
	return cmd
}

// testHookBeforePasses, when set (by tests only), runs after the
// configuration is loaded and before the first pass starts.
var testHookBeforePasses func()

// runOnce builds the clients, runs one pass and renders the report.
func runOnce(ctx context.Context, s *Streams, rc *runConfig) error {
	if rc.log == nil {
		rc.log = newLogger(s.Err, rc.logFormat, rc.verbose)
	}
	log := rc.log
	deps, err := buildDeps(ctx, rc)
	if err != nil {
		return err
	}
	cfg := rc.scale
	var prog *progress
	if progressEnabled(s, rc) {
		prog = startProgress(s.Err, progressDelay, progressInterval)
		cfg.Progress = prog.Update
	}
	rep := scale.Run(ctx, cfg, deps)
	closeMetrics(deps)
	prog.Stop()
	// Redacted before anything reads it: the logs, the Pushgateway's
	// labels and the encoders of every format.
	redactReport(rep, s.Redact)
	if rep.Err == nil && rep.Matched == 0 {
		warnNoMatch(log, rc)
	}
	logReport(log, rep)
	for _, w := range rep.Warnings {
		log.Warn("fleet budget: " + w)
	}
	pushRun(ctx, log, rc, rep)
	opts := rc.render
	opts.Color, opts.Width = s.Color, tableWidth(s.Width, rc.columns, rc.wide)
	// Quiet passes of --every read as a log: each summary with its time.
	opts.Stamp = rc.every > 0 && opts.Quiet
	if err := Render(s.Out, rep, opts); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if err := outcome(rep); err != nil || !rc.detailedExitcode || !rep.Changed() {
		return err
	}
	return errChanged
}

// errChanged is a successful run's result under --detailed-exitcode when
// changes were planned (dry run) or made: exit 3, nothing printed.
var errChanged = &exitError{code: ExitChanged}

// flyClients are the Fly API clients of an invocation.
type flyClients struct {
	apps     scale.Apps
	machines scale.Machines
}

// buildDeps returns the real Fly clients, built on the first call and kept
// in rc for the passes that follow (their transport holds the client-side
// rate limiters, which must outlive a pass), and new metric sources (a
// query.Set serves one run).
func buildDeps(ctx context.Context, rc *runConfig) (scale.Deps, error) {
	var promTransport http.RoundTripper = pooledTransport(rc.scale.Concurrency)
	if rc.verbose && rc.log != nil {
		promTransport = newLogTransport(promTransport, rc.log)
	}
	if rc.fly == nil {
		fc, err := newFlyClients(ctx, rc)
		if err != nil {
			return scale.Deps{}, err
		}
		rc.fly = fc
	}
	deps := scale.Deps{Apps: rc.fly.apps, Machines: rc.fly.machines}
	if len(rc.metrics) > 0 {
		rt := query.Runtime{HTTP: promTransport}
		if rc.verbose {
			rt.Log = rc.log
		}
		var sources []query.Source
		for _, m := range rc.metrics {
			src, err := m.build(rt)
			if err != nil {
				return scale.Deps{}, err
			}
			sources = append(sources, src)
		}
		set, err := query.NewSet(sources...)
		if err != nil {
			return scale.Deps{}, &UsageError{Msg: err.Error()}
		}
		deps.Metrics = set
	}
	return deps, nil
}

// closeMetrics closes the connections of the run's metric sources.
func closeMetrics(deps scale.Deps) {
	if c, ok := deps.Metrics.(io.Closer); ok {
		_ = c.Close()
	}
}

// A query.Set is a scale.MetricStarter: a run sends its fleet-wide queries
// while it lists the org's apps.
var _ scale.MetricStarter = (*query.Set)(nil)

// newFlyClients builds the Fly clients over a transport that retries what
// cannot duplicate a create and keeps the Machines API's published rate
// limits on our side.
func newFlyClients(ctx context.Context, rc *runConfig) (*flyClients, error) {
	var transport http.RoundTripper = pooledTransport(rc.scale.Concurrency)
	if rt, ok := ctx.Value(flyTransportKey{}).(http.RoundTripper); ok {
		transport = rt
	}
	if rc.verbose && rc.log != nil {
		transport = newLogTransport(transport, rc.log)
	}
	transport = flyapi.NewTransport(transport, flyapi.TransportOptions{RateLimit: true, OnRetry: rc.onRetry()})
	apps, machines, err := flyapi.NewClients(ctx, flyapi.Options{
		Token:           rc.token,
		APIBaseURL:      rc.apiBaseURL,
		MachinesBaseURL: rc.machinesBaseURL,
		UserAgent:       "fly-autoscaler/" + Version,
		Transport:       transport,
		Unauthorized:    unauthorizedAdvice,
	})
	if err != nil {
		return nil, err
	}
	return &flyClients{apps: apps, machines: machines}, nil
}

// flyTransportKey keys, in a test's context, the transport the Fly
// clients use in place of the network: scale/flytest served in memory, so
// that a test can run whole commands on fake time (testing/synctest),
// where no real socket may be used. The program never sets it.
type flyTransportKey struct{}

// withFlyTransport returns ctx carrying rt for the Fly clients.
func withFlyTransport(ctx context.Context, rt http.RoundTripper) context.Context {
	return context.WithValue(ctx, flyTransportKey{}, rt)
}

// unauthorizedAdvice follows "401 unauthorized: " when either Fly API
// refuses the token.
const unauthorizedAdvice = "check the Fly API token (FAS_API_TOKEN; create one with fly tokens create org)"

// outcome maps a report to the command's error: nil when every app was
// reconciled, unchanged or skipped.
func outcome(rep *scale.Report) error {
	if rep.Err != nil {
		return &exitError{code: ExitFailed, msg: rep.Err.Error()}
	}
	failed, fallback := 0, 0
	for _, a := range rep.Apps {
		switch a.Status {
		case scale.StatusFailed:
			failed++
		case scale.StatusFallback:
			fallback++
		}
	}
	var msgs []string
	if failed > 0 {
		msgs = append(msgs, fmt.Sprintf("%d of %d apps failed", failed, len(rep.Apps)))
	}
	if fallback > 0 {
		// Their metrics could not be read: a source failed.
		msgs = append(msgs, fmt.Sprintf("%d of %d apps fell back to their fallback started count (metrics not read)", fallback, len(rep.Apps)))
	}
	if len(msgs) > 0 {
		return &exitError{code: ExitFailed, msg: strings.Join(msgs, ", ")}
	}
	return nil
}

// warnNoMatch warns that the selection matched no app. It is not an error
// (the exit code stays 0): an org may have no matching app yet.
func warnNoMatch(log *slog.Logger, rc *runConfig) {
	attrs := []any{"apps", strings.Join(rc.include, ",")}
	if len(rc.exclude) > 0 {
		attrs = append(attrs, "exclude", strings.Join(rc.exclude, ","))
	}
	if rc.scale.Org != "" {
		attrs = append(attrs, "org", rc.scale.Org)
	}
	log.Warn("no app matched --apps", attrs...)
}

// onRetry logs the transport's retries at debug level (never headers).
func (rc *runConfig) onRetry() func(method, path string, status int, wait time.Duration) {
	if rc.log == nil {
		return nil
	}
	log := rc.log
	return func(method, path string, status int, wait time.Duration) {
		log.Debug("retrying", "method", method, "path", path, "status", status, "wait", wait)
	}
}
