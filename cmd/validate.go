package cmd

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query"
)

// validateCommand checks a configuration offline, for CI: it reads the
// flags, variables and config file as run does and reports every problem
// that can be found without a token or a network.
func validateCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check the configuration offline and list every problem (for CI, before merging)",
		UsageText: "fly-autoscaler validate [--config FILE] [options]",
		Description: "Reads the flags, variables and config file as run does and checks everything that can be\n" +
			"checked without a token or a network: keys, types, ranges, expressions (against the metric\n" +
			"names they may use), globs, policies (that each can apply), shard, time zone and the metric\n" +
			"sources' settings. Lists every problem, each with its flag, variable or file:line, and\n" +
			"exits 2; or prints a one-line summary and exits 0. Needs no FAS_API_TOKEN; calls nothing.",
		Flags:        runFlags(),
		OnUsageError: onUsageError,
		Action:       func(c *cli.Context) error { return validate(c, s) },
	}
}

// validate runs the collecting pass of the configuration (buildConfig with
// problems.all), then builds each metric source, which reads its files
// (TLS, credentials) but connects to nothing.
func validate(c *cli.Context, s *Streams) error {
	var file *fileConfig
	p := &problems{all: true}
	rc, _ := buildConfig(c, &file, p)
	secrets := configSecrets(c, file)
	s.AddSecrets(secrets...)
	if len(p.list) == 0 {
		for _, err := range checkSources(rc) {
			p.add(err)
		}
	}
	if n := len(p.list); n > 0 {
		count := 0
		for _, err := range p.list {
			for _, line := range strings.Split(redactError(err, secrets, nil).Error(), "\n") {
				fmt.Fprintln(s.Err, line)
				count++
			}
		}
		return &exitError{code: ExitUsage, msg: fmt.Sprintf("config invalid: %s", plural(count, "problem", "problems"))}
	}
	st := settings{c: c, env: envOf(c), file: file, path: c.String("config")}
	collectors := len(rc.metrics)
	_, err := fmt.Fprintf(s.Out, "config ok: %s, %s, %s\n",
		plural(len(rc.scale.Policies), "policy", "policies"),
		plural(collectors, "collector", "collectors"),
		plural(countSettings(st), "setting", "settings"))
	return err
}

// plural is "1 policy" or "3 policies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// countSettings counts the options given a value, by a flag, a variable or
// a top-level key of the file (metric-collectors and policies are counted
// on their own), each once.
func countSettings(s settings) int {
	set := map[string]bool{}
	for _, f := range s.c.Command.Flags {
		if name := f.Names()[0]; s.has(name) {
			set[name] = true
		}
	}
	if s.file != nil {
		v := reflect.ValueOf(*s.file)
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "metric-collectors" || key == "policies" || v.Field(i).IsZero() {
				continue
			}
			if key == "app-name" {
				key = "apps"
			}
			set[key] = true
		}
	}
	return len(set)
}

// errOffline is the answer of noNetwork: validate calls nothing.
var errOffline = errors.New("validate makes no network call")

// noNetwork is the transport of the sources validate builds: any request
// fails, without a connection.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) { return nil, errOffline }

// checkSources builds each metric source of rc as run would, without
// starting it: what the sources check on building (addresses, TLS and
// credentials files) is checked, and nothing is connected to.
func checkSources(rc *runConfig) []error {
	var errs []error
	for _, m := range rc.metrics {
		if _, err := m.build(query.Runtime{HTTP: noNetwork{}}); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
