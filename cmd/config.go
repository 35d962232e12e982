// The run configuration, one concern per file: config_file.go is the YAML
// file model, config_precedence.go the order flags > variables > file,
// config_secrets.go the secrets to redact, config_sections.go the
// selection, the Fly API, the limits and the output, config_expressions.go
// the target expressions, config_collectors.go the metric sources (their
// kinds in sources.go), policies.go the policies, and this file builds and
// validates the one runConfig a command uses from them.

package cmd

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale"
)

// UsageError is bad input: a flag, variable or config key with a wrong or
// missing value. It exits with code 2, before any API call.
type UsageError struct {
	Msg string
}

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// runConfig is the validated configuration of the run command.
type runConfig struct {
	scale scale.Config
	token string
	// apiBaseURL and machinesBaseURL are the Fly APIs' base URLs
	// (FLY_API_BASE_URL, FLY_FLAPS_BASE_URL; "" for the defaults); the demo
	// sets both to its loopback server.
	apiBaseURL, machinesBaseURL string
	// noColor is NO_COLOR's: set and not empty (https://no-color.org).
	noColor bool
	metrics []metricSource
	render  RenderOptions
	// columns is COLUMNS's width (0: unset or not a number), which the
	// table fits in place of the terminal's; wide (--wide) turns fitting
	// off. See tableWidth.
	columns  int
	wide     bool
	warnings []string

	// pushgateway is the Pushgateway URL the run's figures go to ("" = none).
	pushgateway string
	// every repeats the run at this interval until a signal (0 = once).
	every time.Duration
	// detailedExitcode makes a run with changes exit 3.
	detailedExitcode bool
	logFormat        string
	verbose          bool

	// include and exclude are the app patterns, for the warning about a
	// selection that matched no app.
	include, exclude []string
	// log is the invocation's logger (newLogger), set by runOrRepeat.
	log *slog.Logger
	// fly holds the Fly clients once built: with --every they serve every
	// pass, so the rate limiters in their transport keep their state.
	fly *flyClients
	// redact replaces every secret of the run in a text (Streams.Redact),
	// for what leaves by another way than the streams: pushed labels.
	redact func(string) string
}

// minEvery is the shortest --every: a pass lists the org's apps and reads
// every metric, which no API is meant to serve many times a second.
const minEvery = time.Second

// loadRunConfig builds and validates the run configuration from flags,
// variables and the config file, in that order of precedence. Every check
// happens here, before any client is built.
//
// Every secret of the configuration is handed to the streams s (nil in
// some tests), whose writers redact them from everything printed; its
// errors are redacted here too, at the source.
func loadRunConfig(c *cli.Context, s *Streams) (*runConfig, error) {
	var file *fileConfig
	rc, err := buildRunConfig(c, &file)
	secrets := configSecrets(c, file)
	s.AddSecrets(secrets...)
	if err != nil {
		return nil, redactError(err, secrets, nil)
	}
	rc.redact = s.Redact
	return rc, nil
}

// buildRunConfig is loadRunConfig without the redaction; *loaded is set to the
// config file once it is read, for the secrets it holds.
func buildRunConfig(c *cli.Context, loaded **fileConfig) (*runConfig, error) {
	return buildConfig(c, loaded, &problems{})
}

// buildConfig is buildRunConfig, which stops at the first problem, and
// validate's collecting pass, which records each in p and goes on (see
// problems).
func buildConfig(c *cli.Context, loaded **fileConfig, p *problems) (*runConfig, error) {
	// urfave/cli stops parsing flags at the first bare word, so a flag
	// after one would be silently dropped ("run idle --dry-run" would
	// really scale): no positional argument is accepted.
	if c.Args().Present() && p.add(usagef("unexpected argument %q: name apps with --apps (flags go before or after, but no bare words)", c.Args().First())) {
		return nil, p.err()
	}
	s := settings{c: c, env: envOf(c)}
	if err := s.blankFlags(); err != nil && p.add(err) {
		return nil, p.err()
	}
	rc := &runConfig{}
	if path := c.String("config"); path != "" {
		fc, warnings, err := loadFile(path, s.env)
		if fc != nil {
			*loaded = fc // for its secrets, even with a problem
		}
		// A file that could not be read at all stops even validate:
		// what it would set cannot be checked, and the rest would be
		// checked as if it were not there.
		if err != nil && (p.add(err) || fc == nil) {
			return nil, p.err()
		}
		s.file, s.path = fc, path
		rc.warnings = append(rc.warnings, warnings...)
	}
	file := s.file
	if file == nil {
		file = &fileConfig{}
	}
	for _, v := range []string{"FAS_INTERVAL", "FAS_APP_LIST_REFRESH_INTERVAL"} {
		if s.env.Get(v) != "" {
			rc.warnings = append(rc.warnings, v+" is ignored: each invocation is one run (use --every, cron or a scheduled machine)")
		}
	}

	sel, err := readSelection(s, file, p)
	if err != nil {
		return nil, err
	}
	if err := readFlyAPI(s, file, rc, p); err != nil {
		return nil, err
	}

	// Metrics.
	before := len(p.list)
	rc.metrics, err = collectors(s, file, p)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range rc.metrics {
		names = append(names, m.cfg.MetricName())
	}
	if len(p.list) > before {
		// A collector with a problem still names its metric: the
		// expressions that use it are checked as if it had none.
		names = appendNew(names, declaredMetrics(s, file)...)
	}

	// Targets.
	exprs, err := expressions(s, file, names, p)
	if err != nil && !p.all {
		return nil, err
	}

	policy, err := readPolicy(s, file, p)
	if err != nil {
		return nil, err
	}
	limits, err := readRunLimits(s, file, p)
	if err != nil {
		return nil, err
	}

	// Policies and time: every policy is complete and checked before
	// any client is built.
	loc, err := parseTimezone(s.str("timezone", file.Timezone))
	if err != nil && p.add(usagef("%s: %v", s.where("timezone"), err)) {
		return nil, p.err()
	}
	def := scale.AppPolicy{Name: scale.DefaultPolicyName, Group: sel.group, Expressions: exprs, Policy: policy}
	policies, warnings, err := buildPolicies(s.path, s.env, file, def, names, sel.sel, p)
	if err != nil && !p.all {
		return nil, err
	}
	rc.warnings = append(rc.warnings, warnings...)

	if err := readOutput(s, c, file, rc, p); err != nil {
		return nil, err
	}

	if len(p.list) > 0 {
		return nil, p.list[0]
	}
	rc.include, rc.exclude = sel.include, sel.exclude
	rc.scale = scale.Config{
		Org:         sel.org,
		Selector:    sel.sel,
		Shard:       sel.shard,
		Group:       sel.group,
		Expressions: exprs,
		Policy:      policy,
		Policies:    policies,
		Location:    loc,
		Concurrency: limits.concurrency,
		Timeout:     limits.timeout,
		DryRun:      c.Bool("dry-run"),

		MaxFailureRatio: limits.maxFailureRatio,
		LimitFailures:   limits.maxFailureRatio < 1,
		Budget:          limits.budget,
		OwnApp:          ownApp(s.env),
	}
	return rc, nil
}

// problems are the problems of a configuration. Run stops at the first:
// add reports that it must. validate sets all: each problem is recorded and
// the build goes on with a neutral value in place of the bad one, so that
// it lists every problem, not only the first.
type problems struct {
	all  bool
	list []error
}

// add records err, when it is not nil, and reports whether the build must
// stop.
func (p *problems) add(err error) bool {
	if err == nil {
		return false
	}
	p.list = append(p.list, err)
	return !p.all
}

// err is the problem recorded last: the one to stop at.
func (p *problems) err() error { return p.list[len(p.list)-1] }

// baseURL checks the endpoint variable v, when set (to raw): an http(s)
// URL with a host, nothing the clients would silently misread.
func baseURL(v, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return usagef("%s: %q is not an http(s) base URL: use e.g. https://api.machines.dev, or unset it", v, redact.RedactURL(raw))
	}
	return nil
}

// blankFlags refuses a flag given on the command line with a value of
// only whitespace: it would otherwise count as unset and silently let the
// variable or the file decide.
func (s settings) blankFlags() error {
	for _, f := range s.c.Command.Flags {
		name := f.Names()[0]
		blank := false
		switch f := f.(type) {
		case stringFlag:
			v := s.c.String(name)
			blank = v != "" && strings.TrimSpace(v) == "" && !s.fromEnv(f, v)
		case sliceFlag:
			// urfave trims the items: " " arrives as "".
			vals := s.c.StringSlice(name)
			blank = s.c.IsSet(name) && len(splitList(vals...)) == 0 && !s.fromEnv(f, strings.Join(vals, ","))
		}
		if blank {
			return usagef("%s: the value is only whitespace: give a value, or leave the flag out", s.flagWhere(name))
		}
	}
	return nil
}

// fromEnv reports whether v is the value of one of f's variables (which
// may be blank: an empty or blank variable counts as unset).
func (s settings) fromEnv(f cli.Flag, v string) bool {
	for _, name := range flagVars(f) {
		if e, set := s.env.Lookup(name); set && (e == v || strings.TrimSpace(e) == strings.TrimSpace(v)) {
			return true
		}
	}
	return false
}

// count reads a step limit: a whole number of machines, at least 0 (which
// freezes that direction); nil when unset, which is no limit.
func count(s settings, flag, fileVal string) (*int, error) {
	v := s.str(flag, fileVal)
	if v == "" {
		return nil, nil
	}
	n, err := parseCount(v)
	if err != nil {
		return nil, usagef("%s: %v", s.where(flag), err)
	}
	return &n, nil
}

func duration(s settings, flag, fileVal string, def time.Duration) (time.Duration, error) {
	v := s.str(flag, fileVal)
	if v == "" {
		return def, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, usagef("%s: %v", s.where(flag), err)
	}
	return d, nil
}

// ownApp is the autoscaler's own app: FLY_APP_NAME, set on every Fly
// machine. A run never changes it, pause refuses it.
func ownApp(env Env) string {
	return strings.TrimSpace(env.Get("FLY_APP_NAME"))
}
