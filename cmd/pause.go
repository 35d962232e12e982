package cmd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale"
	"github.com/urfave/cli/v2"
)

// markFlags are the flags of pause and resume; pause adds --for and
// --reason.
func markFlags(pause bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "org", EnvVars: []string{"FAS_ORG"}, Usage: "Fly organization `slug` whose apps are listed (required with a wildcard)"},
		&cli.StringFlag{Name: "process-group", EnvVars: []string{"FAS_PROCESS_GROUP"}, Usage: "process `group` whose machines are marked (default: app)"},
		&cli.StringFlag{Name: "api-token", EnvVars: []string{"FAS_API_TOKEN", "FLY_API_TOKEN"}, Usage: "Fly API `token` (an org token: fly tokens create org)"},
	}
	if pause {
		flags = append(flags,
			&cli.StringFlag{Name: "for", Usage: "how long the pause lasts, a `duration` such as 90m, 6h or 2d, at most 30d (default: 1h)"},
			&cli.StringFlag{Name: "reason", Usage: "`text` shown with the paused apps in a run's report"},
		)
	}
	return flags
}

func pauseCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:      "pause",
		Usage:     "pause apps: runs leave them alone until the pause ends or resume",
		UsageText: "fly-autoscaler pause APP... [--for 1h] [--reason TEXT] [--process-group G] [--org my-org]",
		Description: "Writes the machine metadata fas_paused_until (RFC 3339, UTC) and fas_paused_reason on every\n" +
			"machine of each app's process group, through the Machines API's metadata endpoint: no update,\n" +
			"no restart. APP is a name or a glob (with --org). Exit codes: 0 every machine marked, 1 a\n" +
			"machine or an app could not be marked, 2 usage error.",
		Flags:  markFlags(true),
		Action: func(c *cli.Context) error { return markAction(c, s, false) },
	}
}

func resumeCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:      "resume",
		Usage:     "end the pause of apps: delete their pause metadata",
		UsageText: "fly-autoscaler resume APP... [--process-group G] [--org my-org]",
		Description: "Deletes fas_paused_until and fas_paused_reason from every machine of each app's process\n" +
			"group. Exit codes: 0 done, 1 a machine or an app could not be changed, 2 usage error.",
		Flags:  markFlags(false),
		Action: func(c *cli.Context) error { return markAction(c, s, true) },
	}
}

// markArgs splits the command's arguments into app names and the flags
// written after them (urfave/cli stops reading flags at the first app):
// "pause app-a --for 2h" reads as "pause --for 2h app-a".
func markArgs(c *cli.Context, pause bool) (apps []string, vals map[string]string, err error) {
	vals = map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if v := strings.TrimSpace(c.String(name)); v != "" {
			vals[name] = v
		}
	}
	known := map[string]bool{"org": true, "process-group": true, "api-token": true}
	if pause {
		known["for"], known["reason"] = true, true
	}
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			apps = append(apps, splitList(a)...)
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, nil, usagef("unknown flag %s (see fly-autoscaler %s --help)", a, c.Command.Name)
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, usagef("--%s: missing value (see fly-autoscaler %s --help)", name, c.Command.Name)
			}
			i++
			v = args[i]
		}
		vals[name] = strings.TrimSpace(v)
	}
	return apps, vals, nil
}

// parsePauseFor reads --for: a positive duration, Go's units or days
// ("2d"), at most scale.MaxPause.
func parsePauseFor(v string) (time.Duration, error) {
	if v == "" {
		return scale.DefaultPause, nil
	}
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok && err != nil {
		if n, e := strconv.ParseFloat(days, 64); e == nil {
			d, err = time.Duration(n*24*float64(time.Hour)), nil
		}
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration: use e.g. 90m, 6h or 2d", v)
	}
	if d > scale.MaxPause {
		return 0, fmt.Errorf("%q is longer than the longest pause, 30d: pause again when it ends", v)
	}
	return d, nil
}

// markAction is pause's (resume false) and resume's action.
func markAction(c *cli.Context, s *Streams, resume bool) error {
	env := envOf(c)
	apps, vals, err := markArgs(c, !resume)
	if err != nil {
		return err
	}
	s.AddSecrets(vals["api-token"])
	verb := "pause"
	if resume {
		verb = "resume"
	}
	if len(apps) == 0 {
		return usagef("no app named: fly-autoscaler %s APP... (a name, or a glob with --org)", verb)
	}
	sel, err := scale.NewSelector(apps, nil)
	if err != nil {
		return usagef("malformed glob %v", err)
	}
	names, plain := sel.Names()
	if !plain && vals["org"] == "" {
		return usagef("--org (FAS_ORG): required when an app is a glob (%s): name the Fly organization, e.g. --org my-org", strings.Join(apps, ","))
	}
	for _, name := range apps {
		if !scale.IsGlob(name) {
			if err := query.ValidAppName(name); err != nil {
				return usagef("%v", err)
			}
		}
	}
	own := ownApp(env)
	if own != "" && plain {
		for _, n := range names {
			if n == own {
				return usagef("%s is the autoscaler's own app (FLY_APP_NAME): it never %ss itself", n, verb)
			}
		}
	}
	// A machine held by a lease (a deploy) is tried 3 times over 3s.
	cfg := scale.MarkConfig{Org: vals["org"], Selector: sel, Group: vals["process-group"], OwnApp: own, Resume: resume,
		Attempts: 3, RetryDelay: time.Second}
	if !resume {
		d, err := parsePauseFor(vals["for"])
		if err != nil {
			return usagef("--for: %v", err)
		}
		// To the minute, rounded up: the report shows minutes, and a pause
		// repeated within the minute writes nothing.
		cfg.Until = time.Now().Add(d).UTC().Add(time.Minute - time.Nanosecond).Truncate(time.Minute)
		cfg.Reason = vals["reason"]
		if strings.ContainsFunc(cfg.Reason, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return usagef("--reason: holds a control character: use one line of text")
		}
	}
	rc := &runConfig{token: vals["api-token"], apiBaseURL: strings.TrimRight(env.Get("FLY_API_BASE_URL"), "/"), machinesBaseURL: env.Get("FLY_FLAPS_BASE_URL")}
	if rc.token == "" {
		return usagef("--api-token (FAS_API_TOKEN): missing Fly API token: create one with 'fly tokens create org' and set FAS_API_TOKEN")
	}
	for _, v := range []string{"FLY_API_BASE_URL", "FLY_FLAPS_BASE_URL"} {
		if err := baseURL(v, env.Get(v)); err != nil {
			return err
		}
	}
	rc.scale.Concurrency = scale.DefaultConcurrency
	fc, err := newFlyClients(c.Context, rc)
	if err != nil {
		return err
	}
	rep := scale.MarkApps(c.Context, cfg, fc.apps, fc.machines)
	printMarks(s, rep, cfg)
	if rep.Err != nil {
		return &exitError{code: ExitFailed, msg: rep.Err.Error()}
	}
	if rep.Failed() {
		n := 0
		for _, a := range rep.Apps {
			if !a.OK() {
				n++
			}
		}
		return &exitError{code: ExitFailed, msg: fmt.Sprintf("%d of %d apps not fully %sd", n, len(rep.Apps), verb)}
	}
	return nil
}

// printMarks writes one line per app of what pause or resume did, and one
// per machine that could not be marked.
func printMarks(s *Streams, rep *scale.MarkReport, cfg scale.MarkConfig) {
	what := scale.Pause{Until: cfg.Until, Reason: cfg.Reason}.String()
	if cfg.Resume {
		what = "resumed"
	}
	for _, a := range rep.Apps {
		var line string
		switch {
		case a.Skipped != "":
			line = "skipped: " + a.Skipped
		case a.Err != nil:
			line = "failed: " + a.Err.Error()
		case len(a.Changed)+len(a.Already)+len(a.Failed) == 0:
			line = "no machine in its process group: nothing to mark"
		default:
			var parts []string
			if n := len(a.Changed); n > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", nMachinesText(n), what))
			}
			if n := len(a.Already); n > 0 {
				state := "already " + what
				if cfg.Resume {
					state = "not paused"
				}
				parts = append(parts, fmt.Sprintf("%s %s", nMachinesText(n), state))
			}
			if n := len(a.Failed); n > 0 {
				parts = append(parts, fmt.Sprintf("%s not marked", nMachinesText(n)))
			}
			line = strings.Join(parts, ", ")
		}
		fmt.Fprintf(s.Out, "%s: %s\n", oneLine(a.App), oneLine(line))
		for _, f := range a.Failed {
			fmt.Fprintf(s.Out, "  %s: %s\n", f.Machine, oneLine(f.Err.Error()))
		}
	}
	if len(rep.Apps) == 0 && rep.Err == nil {
		fmt.Fprintln(s.Out, "no app matched")
	}
}

func nMachinesText(n int) string {
	if n == 1 {
		return "1 machine"
	}
	return fmt.Sprintf("%d machines", n)
}
