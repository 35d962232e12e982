package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/urfave/cli/v2"
)

func evalCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "collect the metrics and evaluate the target expressions of every selected app; no machine is read or changed",
		UsageText: "fly-autoscaler eval --org my-org --apps 'my-app-*' [options]\n\n" +
			"Takes the run command's options. The org's apps are listed when a pattern needs it, but the\n" +
			"Machines API is never called: the fleet variables started, stopped, suspended and created are 0\n" +
			"in the expressions. Options about changes (--dry-run, --scale-down, --max-scale-*, --every,\n" +
			"--pushgateway, ...) are accepted and ignored.",
		Flags:        runFlags(),
		OnUsageError: onUsageError,
		Action:       withRunConfig(s, evalOnce),
	}
}

// evalOnce builds the clients, evaluates every selected app and renders the
// values and targets.
func evalOnce(ctx context.Context, s *Streams, rc *runConfig) error {
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
	if rep.Err == nil && rep.Matched == 0 {
		warnNoMatch(rc.log, rc)
	}
	if err := renderEval(s.Out, rep, rc.render.Format, s.Color); err != nil {
		return fmt.Errorf("render evaluation: %w", err)
	}
	if rep.Err != nil {
		return &exitError{code: ExitFailed, msg: rep.Err.Error()}
	}
	failed := 0
	for _, a := range rep.Apps {
		if a.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: ExitFailed, msg: fmt.Sprintf("%d of %d apps failed", failed, len(rep.Apps))}
	}
	return nil
}

// evalColumns are the columns of the eval table.
var evalColumns = []string{"APP", "METRICS", "STARTED", "CREATED", "RESULT"}

// renderEval writes the evaluation as a table, Markdown or JSON.
func renderEval(w io.Writer, r *scale.EvalReport, format string, color bool) error {
	apps := slices.Clone(r.Apps)
	slices.SortStableFunc(apps, func(a, b scale.EvalResult) int { return strings.Compare(a.App, b.App) })
	switch format {
	case FormatJSON:
		return renderEvalJSON(w, r, apps)
	case FormatMarkdown:
		return renderEvalMarkdown(w, r, apps)
	default:
		return renderEvalTable(w, r, apps, newRenderer(w, color))
	}
}

func evalRow(r *scale.EvalReport, a scale.EvalResult) []string {
	result := "ok"
	if a.Err != nil {
		result = "failed: " + a.Err.Error()
	}
	return withPolicy(r.HasPolicies, []string{
		oneLine(a.App),
		metricsCell(a.Metrics),
		rangeCell(a.Targets.Started),
		rangeCell(a.Targets.Created),
		oneLine(result),
	}, oneLine(a.Policy))
}

// rangeCell renders a target range: "3" when min and max agree, "1..8",
// "≥ 1", "≤ 8", or "-" when no expression sets it.
func rangeCell(r scale.Range) string {
	switch {
	case r.Min != nil && r.Max != nil && *r.Min == *r.Max:
		return strconv.Itoa(*r.Min)
	case r.Min != nil && r.Max != nil:
		return fmt.Sprintf("%d..%d", *r.Min, *r.Max)
	case r.Min != nil:
		return fmt.Sprintf("≥ %d", *r.Min)
	case r.Max != nil:
		return fmt.Sprintf("≤ %d", *r.Max)
	}
	return "-"
}

// evalSummary is "3 apps: 2 evaluated, 1 failed in 120ms".
func evalSummary(r *scale.EvalReport) string {
	failed := 0
	for _, a := range r.Apps {
		if a.Err != nil {
			failed++
		}
	}
	matched := max(r.Matched, len(r.Apps))
	noun := "apps"
	if matched == 1 {
		noun = "app"
	}
	return fmt.Sprintf("%d %s: %d evaluated, %d failed in %s (machines not read: started, stopped, suspended and created are 0)",
		matched, noun, len(r.Apps)-failed, failed, formatElapsed(r.Elapsed))
}

func renderEvalTable(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult, re *lipgloss.Renderer) error {
	bw := bufio.NewWriter(w)
	if len(apps) > 0 {
		rows := make([][]string, len(apps))
		for i, a := range apps {
			rows[i] = evalRow(r, a)
		}
		failed := re.NewStyle().Foreground(colorFailed)
		writeTable(bw, re, withPolicy(r.HasPolicies, evalColumns, policyColumn), rows, func(i int) lipgloss.Style {
			if apps[i].Err != nil {
				return failed
			}
			return re.NewStyle()
		})
		bw.WriteByte('\n')
	}
	bw.WriteString(evalSummary(r) + "\n")
	if r.Err != nil {
		bw.WriteString(re.NewStyle().Foreground(colorFailed).Render("evaluation incomplete: "+oneLine(r.Err.Error())) + "\n")
	}
	return bw.Flush()
}

func renderEvalMarkdown(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "**%s**\n", mdEscape(evalSummary(r)))
	if r.Err != nil {
		fmt.Fprintf(bw, "\n**%s**\n", mdEscape("evaluation incomplete: "+r.Err.Error()))
	}
	if len(apps) > 0 {
		headers := withPolicy(r.HasPolicies, evalColumns, policyColumn)
		bw.WriteString("\n| " + strings.Join(headers, " | ") + " |\n|")
		for range headers {
			bw.WriteString(" --- |")
		}
		bw.WriteByte('\n')
		for _, a := range apps {
			cells := evalRow(r, a)
			for i, c := range cells {
				cells[i] = mdEscape(c)
			}
			bw.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	return bw.Flush()
}

// jsonEval is the JSON form of an evaluation: stable snake_case fields, a
// null target bound when no expression sets it, a null metric for NaN or an
// infinity.
type jsonEval struct {
	Org            string        `json:"org"`
	StartedAt      string        `json:"started_at"`
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	AppsMatched    int           `json:"apps_matched"`
	Failed         int           `json:"failed"`
	Error          string        `json:"error,omitempty"`
	Apps           []jsonEvalApp `json:"apps"`
}

type jsonEvalApp struct {
	App     string              `json:"app"`
	Policy  string              `json:"policy"`
	Metrics map[string]*float64 `json:"metrics"`
	Targets jsonTargets         `json:"targets"`
	Error   string              `json:"error,omitempty"`
}

type jsonTargets struct {
	MinStarted *int `json:"min_started"`
	MaxStarted *int `json:"max_started"`
	MinCreated *int `json:"min_created"`
	MaxCreated *int `json:"max_created"`
}

func renderEvalJSON(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult) error {
	out := jsonEval{
		Org:            r.Org,
		StartedAt:      r.StartedAt.UTC().Format(jsonTimeLayout),
		ElapsedSeconds: seconds(r.Elapsed),
		AppsMatched:    max(r.Matched, len(r.Apps)),
		Apps:           make([]jsonEvalApp, 0, len(apps)),
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	for _, a := range apps {
		ja := jsonEvalApp{
			App:     a.App,
			Policy:  policyName(a.Policy),
			Metrics: make(map[string]*float64, len(a.Metrics)),
			Targets: jsonTargets{
				MinStarted: a.Targets.Started.Min, MaxStarted: a.Targets.Started.Max,
				MinCreated: a.Targets.Created.Min, MaxCreated: a.Targets.Created.Max,
			},
		}
		for name, v := range a.Metrics {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				ja.Metrics[name] = nil
				continue
			}
			ja.Metrics[name] = &v
		}
		if a.Err != nil {
			ja.Error = a.Err.Error()
			out.Failed++
		}
		out.Apps = append(out.Apps, ja)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}
