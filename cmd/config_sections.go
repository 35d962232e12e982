// The sections of the run configuration that buildConfig reads in turn:
// the selection of apps, the Fly API, the limits and the output. Each
// records its problems in p and returns p.err() when it must stop (see
// problems).

package cmd

import (
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

// selection is which apps a run takes.
type selection struct {
	include, exclude []string
	sel              *scale.Selector
	org              string
	shard            scale.Shard
	group            string
}

// readSelection reads --apps, --exclude, --org, --shard and
// --process-group.
func readSelection(s settings, file *fileConfig, p *problems) (selection, error) {
	var out selection
	out.include = s.list("apps", file.AppName)
	out.exclude = s.list("exclude", file.Exclude)
	if len(out.include) == 0 && p.add(usagef("%s: no app selected: name an app or a pattern such as 'my-app-*'", s.where("apps"))) {
		return out, p.err()
	}
	alternatives := 0
	for _, g := range append(slices.Clone(out.include), out.exclude...) {
		alternatives += scale.Alternatives(g)
	}
	if alternatives > maxPolicyAlternatives {
		// Always the last problem: compiling such globs would take minutes.
		p.add(usagef("%s, %s: %d alternatives in braces in all, at most %d: list names as plain items, or use fewer, wider globs", s.where("apps"), s.where("exclude"), alternatives, maxPolicyAlternatives))
		return out, p.err()
	}
	// Each list is checked on its own, so that the error names the
	// option that holds the bad pattern.
	if _, err := scale.NewSelector(out.include, nil); err != nil && p.add(usagef("%s: malformed glob %v", s.where("apps"), err)) {
		return out, p.err()
	}
	if _, err := scale.NewSelector(nil, out.exclude); err != nil && p.add(usagef("%s: malformed glob %v", s.where("exclude"), err)) {
		return out, p.err()
	}
	sel, err := scale.NewSelector(out.include, out.exclude)
	if err != nil && p.add(usagef("--apps, --exclude: malformed glob %v", err)) {
		return out, p.err()
	}
	if sel == nil { // validate goes on: as if no app were selected
		sel, _ = scale.NewSelector(nil, nil)
	}
	out.sel = sel
	out.org = s.str("org", file.Org)
	if _, plain := sel.Names(); !plain && out.org == "" && p.add(usagef("%s: required when --apps has a wildcard (%s): name the Fly organization, e.g. --org my-org", s.where("org"), strings.Join(out.include, ","))) {
		return out, p.err()
	}
	for _, name := range out.include {
		if !scale.IsGlob(name) {
			if err := query.ValidAppName(name); err != nil && p.add(usagef("%s: %v", s.where("apps"), err)) {
				return out, p.err()
			}
		}
	}
	if v := s.str("shard", file.Shard); v != "" {
		if out.shard, err = scale.ParseShard(v); err != nil && p.add(usagef("%s: %q is not a shard (%v): use K/N with 1 ≤ K ≤ N, e.g. 2/4 for the second of four runners", s.where("shard"), v, err)) {
			return out, p.err()
		}
	}
	out.group = s.str("process-group", file.ProcessGroup)
	if err := printable(s.where("process-group"), out.group); err != nil && p.add(err) {
		return out, p.err()
	}
	return out, nil
}

// readFlyAPI reads the Fly API token and the APIs' base URLs into rc.
func readFlyAPI(s settings, file *fileConfig, rc *runConfig, p *problems) error {
	rc.token = s.str("api-token", file.APIToken)
	// validate checks what it can offline: it needs no token.
	if rc.token == "" && !p.all && p.add(usagef("%s: missing Fly API token: create one with 'fly tokens create org' and set FAS_API_TOKEN", s.where("api-token"))) {
		return p.err()
	}
	rc.apiBaseURL = strings.TrimRight(s.env.Get("FLY_API_BASE_URL"), "/")
	rc.machinesBaseURL = s.env.Get("FLY_FLAPS_BASE_URL")
	rc.noColor = s.env.Get("NO_COLOR") != ""
	for _, v := range []string{"FLY_API_BASE_URL", "FLY_FLAPS_BASE_URL"} {
		if err := baseURL(v, s.env.Get(v)); err != nil && p.add(err) {
			return p.err()
		}
	}
	return nil
}

// readPolicy reads the default policy's limits: initial state, regions,
// scale-down, step and machine limits, minimum started time, fallback.
// Its warnings name the limits by their flags.
func readPolicy(s settings, file *fileConfig, p *problems) (scale.Policy, error) {
	var err error
	policy := scale.Policy{Names: scale.LimitNames{MaxScaleUp: "--max-scale-up", MaxScaleDown: "--max-scale-down", MaxMachines: "--max-machines"}}
	if policy.InitialState, err = parseInitialState(s.str("initial-machine-state", file.InitialMachineState)); err != nil && p.add(usagef("%s: %v", s.where("initial-machine-state"), err)) {
		return policy, p.err()
	}
	policy.Regions = s.list("regions", file.Regions)
	if err := printable(s.where("regions"), policy.Regions...); err != nil && p.add(err) {
		return policy, p.err()
	}
	if policy.ScaleDown, err = parseScaleDown(s.str("scale-down", file.ScaleDown)); err != nil && p.add(usagef("%s: %v", s.where("scale-down"), err)) {
		return policy, p.err()
	}
	if policy.MaxScaleUp, err = count(s, "max-scale-up", file.MaxScaleUp); err != nil && p.add(err) {
		return policy, p.err()
	}
	if policy.MaxScaleDown, err = count(s, "max-scale-down", file.MaxScaleDown); err != nil && p.add(err) {
		return policy, p.err()
	}
	policy.MaxMachines = scale.DefaultMaxMachines
	if v := s.str("max-machines", file.MaxMachines); v != "" {
		if policy.MaxMachines, err = parseMaxMachines(v); err != nil && p.add(usagef("%s: %v", s.where("max-machines"), err)) {
			return policy, p.err()
		}
	}
	if policy.MinStartedDuration, err = duration(s, "min-started-duration", file.MinStartedDuration, 0); err != nil && p.add(err) {
		return policy, p.err()
	}
	if v := s.str("fallback-started", file.FallbackStarted); v != "" {
		if policy.FallbackStarted, err = parseFallback(v); err != nil && p.add(usagef("%s: %v", s.where("fallback-started"), err)) {
			return policy, p.err()
		}
	}
	return policy, nil
}

// runLimits are the bounds of a whole run.
type runLimits struct {
	budget          scale.Budget
	maxFailureRatio float64
	concurrency     int
	timeout         time.Duration
}

// readRunLimits reads --fleet-max-started, --fleet-max-created,
// --max-failure-ratio, --concurrency and --timeout.
func readRunLimits(s settings, file *fileConfig, p *problems) (runLimits, error) {
	out := runLimits{
		budget:          scale.Budget{Names: scale.BudgetNames{MaxStarted: "--fleet-max-started", MaxCreated: "--fleet-max-created"}},
		maxFailureRatio: 1,
		concurrency:     scale.DefaultConcurrency,
	}
	for _, b := range []struct {
		flag, val string
		dst       **int
	}{
		{"fleet-max-started", file.FleetMaxStarted, &out.budget.MaxStarted},
		{"fleet-max-created", file.FleetMaxCreated, &out.budget.MaxCreated},
	} {
		if v := s.str(b.flag, b.val); v != "" {
			n, err := parseFleetMax(v)
			if err != nil {
				if p.add(usagef("%s: %v", s.where(b.flag), err)) {
					return out, p.err()
				}
				continue
			}
			*b.dst = &n
		}
	}
	if v := s.str("max-failure-ratio", file.MaxFailureRatio); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		// NaN compares false with everything: refuse it (and infinities)
		// by name, not through the range check.
		if (err != nil || math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > 1) && p.add(usagef("%s: %q is not a ratio: use a number from 0 to 1, e.g. 0.2", s.where("max-failure-ratio"), v)) {
			return out, p.err()
		}
		out.maxFailureRatio = r
	}
	if v := s.str("concurrency", file.Concurrency); v != "" {
		n, err := wholeAtLeast(v, 1, "a number of workers", "a whole number of at least 1")
		if err != nil && p.add(usagef("%s: %v", s.where("concurrency"), err)) {
			return out, p.err()
		}
		out.concurrency = n
	}
	var err error
	if out.timeout, err = duration(s, "timeout", file.Timeout, scale.DefaultTimeout); err != nil && p.add(err) {
		return out, p.err()
	}
	return out, nil
}

// readOutput reads the output, logging and schedule options into rc.
func readOutput(s settings, c *cli.Context, file *fileConfig, rc *runConfig, p *problems) error {
	rc.render = RenderOptions{Format: formatAlias(c.String("output")), Quiet: c.Bool("quiet")}
	rc.columns, rc.wide = columnsVar(s.env.Get("COLUMNS")), c.Bool("wide")
	if err := ValidateFormat(rc.render.Format); err != nil && p.add(usagef("%s: %q: unknown format; choose one of %s", s.flagWhere("output"), rc.render.Format, strings.Join(Formats, ", "))) {
		return p.err()
	}
	rc.detailedExitcode, rc.verbose = c.Bool("detailed-exitcode"), c.Bool("verbose") || (!s.has("verbose") && file.Verbose)
	switch rc.logFormat = strings.ToLower(strings.TrimSpace(c.String("log-format"))); rc.logFormat {
	case "":
		rc.logFormat = LogText // FAS_LOG_FORMAT= is unset
	case LogText, LogJSON:
	default:
		if p.add(usagef("%s: %q: use text or json", s.where("log-format"), rc.logFormat)) {
			return p.err()
		}
	}
	var err error
	if rc.every, err = duration(s, "every", "", 0); err != nil && p.add(err) {
		return p.err()
	}
	if rc.every > 0 && rc.every < minEvery && p.add(usagef("%s: %s is below %s: passes would follow each other back to back; use e.g. 30s", s.where("every"), rc.every, minEvery)) {
		return p.err()
	}
	if rc.pushgateway = s.str("pushgateway", file.PushgatewayURL); rc.pushgateway != "" {
		if u, err := url.Parse(rc.pushgateway); (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") && p.add(usagef("%s: %q is not an http(s) URL", s.where("pushgateway"), redact.RedactURL(rc.pushgateway))) {
			return p.err()
		}
	}
	return nil
}
