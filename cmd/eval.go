package cmd

import (
	"context"
	"fmt"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/urfave/cli/v2"
)

func evalCommand(s *Streams) *cli.Command {
	return withRunOptions(s, evalOnce, &cli.Command{
		Name:      "eval",
		Usage:     "collect the metrics and evaluate the target expressions of every selected app; no machine is read or changed",
		UsageText: "fly-autoscaler eval --org my-org --apps 'my-app-*' [options]",
		Description: "Takes the run command's options. The org's apps are listed when a pattern needs it, but the\n" +
			"Machines API is never called: the fleet variables started, stopped, suspended and created are 0\n" +
			"in the expressions. Options about changes (--dry-run, --scale-down, --max-scale-*,\n" +
			"--pushgateway, ...) are accepted and ignored; --every is refused: eval evaluates once.",
	})
}

// evalOnce builds the clients, evaluates every selected app and renders the
// values and targets.
func evalOnce(ctx context.Context, s *Streams, rc *runConfig) error {
	if rc.every > 0 {
		return usagef("--every (FAS_EVERY): eval evaluates once and does not repeat: leave --every out, or unset FAS_EVERY")
	}
	if rc.log == nil {
		rc.log = newLogger(s.Err, rc.logFormat, rc.verbose)
	}
	for _, w := range rc.warnings {
		rc.log.Warn(w)
	}
	deps, err := buildDeps(ctx, rc)
	if err != nil {
		return err
	}
	// eval never reads machines: without a Machines client it cannot.
	deps.Machines = nil
	rep := scale.Eval(ctx, rc.scale, deps)
	closeMetrics(deps)
	redactEvalReport(rep, s.Redact)
	if rep.Err == nil && rep.Matched == 0 {
		warnNoMatch(rc.log, rc)
	}
	if err := renderEval(s.Out, rep, rc.render.Format, s.Color); err != nil {
		return fmt.Errorf("render evaluation: %w", err)
	}
	if rep.Err != nil {
		return &exitError{code: ExitFailed, msg: rep.Err.Error()}
	}
	if failed := evalFailed(rep); failed > 0 {
		return &exitError{code: ExitFailed, msg: fmt.Sprintf("%d of %d apps failed", failed, len(rep.Apps))}
	}
	return nil
}
