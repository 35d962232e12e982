// The run configuration, one concern per file: config_file.go is the YAML
// file model, config_precedence.go the order flags > variables > file,
// config_secrets.go the secrets to redact, config_expressions.go the
// target expressions, config_collectors.go the metric collectors, and this
// file builds and validates the one runConfig a command uses.

package cmd

import (
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
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

	// Selection.
	include := s.list("apps", file.AppName)
	exclude := s.list("exclude", file.Exclude)
	if len(include) == 0 && p.add(usagef("%s: no app selected: name an app or a pattern such as 'my-app-*'", s.where("apps"))) {
		return nil, p.err()
	}
	alternatives := 0
	for _, g := range append(slices.Clone(include), exclude...) {
		alternatives += scale.Alternatives(g)
	}
	if alternatives > maxPolicyAlternatives {
		// Always the last problem: compiling such globs would take minutes.
		p.add(usagef("%s, %s: %d alternatives in braces in all, at most %d: list names as plain items, or use fewer, wider globs", s.where("apps"), s.where("exclude"), alternatives, maxPolicyAlternatives))
		return nil, p.err()
	}
	// Each list is checked on its own, so that the error names the
	// option that holds the bad pattern.
	if _, err := scale.NewSelector(include, nil); err != nil && p.add(usagef("%s: malformed glob %v", s.where("apps"), err)) {
		return nil, p.err()
	}
	if _, err := scale.NewSelector(nil, exclude); err != nil && p.add(usagef("%s: malformed glob %v", s.where("exclude"), err)) {
		return nil, p.err()
	}
	sel, err := scale.NewSelector(include, exclude)
	if err != nil && p.add(usagef("--apps, --exclude: malformed glob %v", err)) {
		return nil, p.err()
	}
	if sel == nil { // validate goes on: as if no app were selected
		sel, _ = scale.NewSelector(nil, nil)
	}
	org := s.str("org", file.Org)
	if _, plain := sel.Names(); !plain && org == "" && p.add(usagef("%s: required when --apps has a wildcard (%s): name the Fly organization, e.g. --org my-org", s.where("org"), strings.Join(include, ","))) {
		return nil, p.err()
	}
	for _, name := range include {
		if !scale.IsGlob(name) {
			if err := query.ValidAppName(name); err != nil && p.add(usagef("%s: %v", s.where("apps"), err)) {
				return nil, p.err()
			}
		}
	}
	var shard scale.Shard
	if v := s.str("shard", file.Shard); v != "" {
		if shard, err = scale.ParseShard(v); err != nil && p.add(usagef("%s: %q is not a shard (%v): use K/N with 1 ≤ K ≤ N, e.g. 2/4 for the second of four runners", s.where("shard"), v, err)) {
			return nil, p.err()
		}
	}
	group := s.str("process-group", file.ProcessGroup)
	if err := printable(s.where("process-group"), group); err != nil {
		return nil, err
	}

	// Fly API.
	rc.token = s.str("api-token", file.APIToken)
	// validate checks what it can offline: it needs no token.
	if rc.token == "" && !p.all && p.add(usagef("%s: missing Fly API token: create one with 'fly tokens create org' and set FAS_API_TOKEN", s.where("api-token"))) {
		return nil, p.err()
	}
	rc.apiBaseURL = strings.TrimRight(s.env.Get("FLY_API_BASE_URL"), "/")
	rc.machinesBaseURL = s.env.Get("FLY_FLAPS_BASE_URL")
	rc.noColor = s.env.Get("NO_COLOR") != ""
	for _, v := range []string{"FLY_API_BASE_URL", "FLY_FLAPS_BASE_URL"} {
		if err := baseURL(v, s.env.Get(v)); err != nil && p.add(err) {
			return nil, p.err()
		}
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

	// Policy and limits.
	// The plan's warnings name the limits by their flags.
	policy := scale.Policy{Names: scale.LimitNames{MaxScaleUp: "--max-scale-up", MaxScaleDown: "--max-scale-down", MaxMachines: "--max-machines"}}
	if policy.InitialState, err = parseInitialState(s.str("initial-machine-state", file.InitialMachineState)); err != nil && p.add(usagef("%s: %v", s.where("initial-machine-state"), err)) {
		return nil, p.err()
	}
	policy.Regions = s.list("regions", file.Regions)
	if err := printable(s.where("regions"), policy.Regions...); err != nil && p.add(err) {
		return nil, p.err()
	}
	if policy.ScaleDown, err = parseScaleDown(s.str("scale-down", file.ScaleDown)); err != nil && p.add(usagef("%s: %v", s.where("scale-down"), err)) {
		return nil, p.err()
	}
	if policy.MaxScaleUp, err = count(s, "max-scale-up", file.MaxScaleUp); err != nil && p.add(err) {
		return nil, p.err()
	}
	if policy.MaxScaleDown, err = count(s, "max-scale-down", file.MaxScaleDown); err != nil && p.add(err) {
		return nil, p.err()
	}
	policy.MaxMachines = scale.DefaultMaxMachines
	if v := s.str("max-machines", file.MaxMachines); v != "" {
		if policy.MaxMachines, err = parseMaxMachines(v); err != nil && p.add(usagef("%s: %v", s.where("max-machines"), err)) {
			return nil, p.err()
		}
	}
	if policy.MinStartedDuration, err = duration(s, "min-started-duration", file.MinStartedDuration, 0); err != nil && p.add(err) {
		return nil, p.err()
	}
	if v := s.str("fallback-started", file.FallbackStarted); v != "" {
		if policy.FallbackStarted, err = parseFallback(v); err != nil && p.add(usagef("%s: %v", s.where("fallback-started"), err)) {
			return nil, p.err()
		}
	}
	budget := scale.Budget{Names: scale.BudgetNames{MaxStarted: "--fleet-max-started", MaxCreated: "--fleet-max-created"}}
	for _, b := range []struct {
		flag, val string
		dst       **int
	}{
		{"fleet-max-started", file.FleetMaxStarted, &budget.MaxStarted},
		{"fleet-max-created", file.FleetMaxCreated, &budget.MaxCreated},
	} {
		if v := s.str(b.flag, b.val); v != "" {
			n, err := parseFleetMax(v)
			if err != nil {
				if p.add(usagef("%s: %v", s.where(b.flag), err)) {
					return nil, p.err()
				}
				continue
			}
			*b.dst = &n
		}
	}
	maxFailureRatio := 1.0
	if v := s.str("max-failure-ratio", file.MaxFailureRatio); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		// NaN compares false with everything: refuse it (and infinities)
		// by name, not through the range check.
		if (err != nil || math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > 1) && p.add(usagef("%s: %q is not a ratio: use a number from 0 to 1, e.g. 0.2", s.where("max-failure-ratio"), v)) {
			return nil, p.err()
		}
		maxFailureRatio = r
	}
	conc := scale.DefaultConcurrency
	if v := s.str("concurrency", file.Concurrency); v != "" {
		n, err := strconv.Atoi(v)
		if (err != nil || n < 1) && p.add(usagef("%s: %q is not a number of workers: use a whole number of at least 1", s.where("concurrency"), v)) {
			return nil, p.err()
		}
		conc = n
	}
	timeout, err := duration(s, "timeout", file.Timeout, scale.DefaultTimeout)
	if err != nil && p.add(err) {
		return nil, p.err()
	}

	// Policies and time: every policy is complete and checked before
	// any client is built.
	loc, err := parseTimezone(s.str("timezone", file.Timezone))
	if err != nil && p.add(usagef("%s: %v", s.where("timezone"), err)) {
		return nil, p.err()
	}
	def := scale.AppPolicy{Name: scale.DefaultPolicyName, Group: group, Expressions: exprs, Policy: policy}
	policies, warnings, err := buildPolicies(s.path, s.env, file, def, names, sel, p)
	if err != nil && !p.all {
		return nil, err
	}
	rc.warnings = append(rc.warnings, warnings...)

	// Output and schedule.
	rc.render = RenderOptions{Format: formatAlias(c.String("output")), Quiet: c.Bool("quiet")}
	rc.columns, rc.wide = columnsVar(s.env.Get("COLUMNS")), c.Bool("wide")
	if err := ValidateFormat(rc.render.Format); err != nil && p.add(usagef("%s: %q: unknown format; choose one of %s", s.flagWhere("output"), rc.render.Format, strings.Join(Formats, ", "))) {
		return nil, p.err()
	}
	rc.detailedExitcode, rc.verbose = c.Bool("detailed-exitcode"), c.Bool("verbose") || (!s.has("verbose") && file.Verbose)
	switch rc.logFormat = strings.ToLower(strings.TrimSpace(c.String("log-format"))); rc.logFormat {
	case "":
		rc.logFormat = LogText // FAS_LOG_FORMAT= is unset
	case LogText, LogJSON:
	default:
		if p.add(usagef("%s: %q: use text or json", s.where("log-format"), rc.logFormat)) {
			return nil, p.err()
		}
	}
	if rc.every, err = duration(s, "every", "", 0); err != nil && p.add(err) {
		return nil, p.err()
	}
	if rc.every > 0 && rc.every < minEvery && p.add(usagef("%s: %s is below %s: passes would follow each other back to back; use e.g. 30s", s.where("every"), rc.every, minEvery)) {
		return nil, p.err()
	}
	if rc.pushgateway = s.str("pushgateway", file.PushgatewayURL); rc.pushgateway != "" {
		if u, err := url.Parse(rc.pushgateway); (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") && p.add(usagef("%s: %q is not an http(s) URL", s.where("pushgateway"), redact.RedactURL(rc.pushgateway))) {
			return nil, p.err()
		}
	}

	if len(p.list) > 0 {
		return nil, p.list[0]
	}
	rc.include, rc.exclude = include, exclude
	rc.scale = scale.Config{
		Org:         org,
		Selector:    sel,
		Shard:       shard,
		Group:       group,
		Expressions: exprs,
		Policy:      policy,
		Policies:    policies,
		Location:    loc,
		Concurrency: conc,
		Timeout:     timeout,
		DryRun:      c.Bool("dry-run"),

		MaxFailureRatio: maxFailureRatio,
		LimitFailures:   maxFailureRatio < 1,
		Budget:          budget,
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
