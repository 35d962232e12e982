package cmd

import (
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The help: examples first, then the flags in groups in the order a user
// sets them up, not urfave/cli's alphabetical one.

// categoryOrder is the order of the flag groups in a command's help:
// which apps, what they should have, from which metrics, within which
// limits, how it is reported, how often, and the Fly API's settings. A
// group not named here follows, by name.
var categoryOrder = []string{catSelection, catTargets, catMetrics, catTemporal, catSafety, catOutput, catSchedule, catFly}

// orderedCategories returns cats in categoryOrder.
func orderedCategories(cats []cli.VisibleFlagCategory) []cli.VisibleFlagCategory {
	out := slices.Clone(cats)
	rank := func(c cli.VisibleFlagCategory) int {
		if i := slices.Index(categoryOrder, c.Name()); i >= 0 {
			return i
		}
		return len(categoryOrder)
	}
	slices.SortStableFunc(out, func(a, b cli.VisibleFlagCategory) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.Name(), b.Name())
	})
	return out
}

// examples are the commands shown at the top of the help: the app's and
// each command's that has some.
var examples = map[string][]string{
	"": {
		"# see it work: a fake org and metrics on loopback, nothing else contacted",
		"fly-autoscaler demo",
		"# plan from a Prometheus query, changing nothing",
		"fly-autoscaler run --org my-org --apps 'my-app-*' --prometheus-address https://api.fly.io/prometheus/my-org \\",
		"  --prometheus-metric-name queue_depth --prometheus-query 'sum(queue_depth{app=\"$APP_NAME\"})' \\",
		"  --started-machine-count 'ceil(queue_depth / 10)' --dry-run",
		"# check a config file offline (CI), then scale from it every 30 seconds",
		"fly-autoscaler validate --config fas.yml && fly-autoscaler run --config fas.yml --every 30s",
	},
	"run": {
		"# plan from a Prometheus query, changing nothing",
		"fly-autoscaler run --org my-org --apps 'my-app-*' --prometheus-address https://api.fly.io/prometheus/my-org \\",
		"  --prometheus-metric-name queue_depth --prometheus-query 'sum(queue_depth{app=\"$APP_NAME\"})' \\",
		"  --started-machine-count 'ceil(queue_depth / 10)' --dry-run",
		"# the same from a config file, every 30 seconds, only failures and a summary per pass",
		"fly-autoscaler run --config fas.yml --every 30s --quiet",
		"# a plan for a pull request: Markdown, exit 3 when something would change",
		"fly-autoscaler run --config fas.yml --dry-run --output md --detailed-exitcode",
	},
	"validate": {
		"# in CI, before merging a change of the config file: every problem, exit 2",
		"fly-autoscaler validate --config fas.yml",
	},
	"eval": {
		"# the metrics and targets of each app, reading no machine",
		"fly-autoscaler eval --config fas.yml",
	},
}

// examplesOf returns the examples of the command name ("" for the app),
// indented for the help.
func examplesOf(name string) string {
	var lines []string
	for _, l := range examples[name] {
		lines = append(lines, "   "+l)
	}
	return strings.Join(lines, "\n")
}

// helpFuncs are the functions the help templates use beside urfave's.
var helpFuncs = map[string]any{
	"orderedCategories": orderedCategories,
	"examples":          examplesOf,
}

// commandHelpTemplate is urfave/cli's command help with the examples
// first and the flag groups in categoryOrder.
const commandHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}{{with examples .Name}}

EXAMPLES:
{{.}}{{end}}

USAGE:
   {{template "usageTemplate" .}}{{if .Category}}

CATEGORY:
   {{.Category}}{{end}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}{{if .VisibleFlagCategories}}

OPTIONS:{{range orderedCategories .VisibleFlagCategories}}
   {{if .Name}}{{.Name}}

   {{end}}{{$flglen := len .Flags}}{{range $i, $e := .Flags}}{{if eq (subtract $flglen $i) 1}}{{$e}}
{{else}}{{$e}}
   {{end}}{{end}}{{end}}{{else if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`

// appHelpTemplate is urfave/cli's app help with the examples first.
var appHelpTemplate = strings.Replace(cli.AppHelpTemplate, "\n\nUSAGE:", "\n\nEXAMPLES:\n"+examplesOf("")+"\n\nUSAGE:", 1)

func init() {
	// The command help goes through HelpPrinter: give it our functions.
	cli.HelpPrinter = func(w io.Writer, templ string, data any) {
		cli.HelpPrinterCustom(w, templ, data, helpFuncs)
	}
}

// withHelp gives each command the help template of examples and ordered
// groups.
func withHelp(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		if c.CustomHelpTemplate == "" {
			c.CustomHelpTemplate = commandHelpTemplate
		}
	}
	return cmds
}
