package cmd

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// Env is the environment a command reads: its FAS_* variables, the API
// base URLs, the secrets it must redact. The program passes the process's
// (SystemEnv); a test passes its own, so that tests need not change the
// process's environment and can run in parallel.
type Env map[string]string

// SystemEnv returns the process's environment.
func SystemEnv() Env {
	env := Env{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Lookup returns a variable's value and whether it is set.
func (e Env) Lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

// Get returns a variable's value, "" when unset.
func (e Env) Get(name string) string { return e[name] }

// envKey is where an App keeps the Env it runs with (cli.App.Metadata).
const envKey = "env"

// envOf returns the Env the command runs with.
func envOf(c *cli.Context) Env {
	if c != nil && c.App != nil {
		if env, ok := c.App.Metadata[envKey].(Env); ok {
			return env
		}
	}
	return Env{}
}

// Flags bound to variables. urfave/cli reads a flag's EnvVars from the
// process's environment only, while a command reads the Env it is given.
// So every flag of a command is wrapped: its Apply hides the variables
// from urfave/cli, and the command's Before (bindEnv) sets, from the Env,
// each flag the command line left unset, exactly as urfave/cli would have
// (the first variable that exists wins, even if empty; a boolean's value
// is parsed, "" meaning false). The flags keep their EnvVars, so the help
// lists them as before.
//
// The wrappers also remember their names: urfave/cli looks flags up by
// name, all flags for each, and builds each flag's names anew (through a
// regular expression) every time, which cost a run a noticeable share of
// its CPU time with a hundred flags.

type stringFlag struct {
	*cli.StringFlag
	names []string
}

type sliceFlag struct {
	*cli.StringSliceFlag
	names []string
}

type boolFlag struct {
	*cli.BoolFlag
	names []string
}

func (f stringFlag) Names() []string { return f.names }
func (f sliceFlag) Names() []string  { return f.names }
func (f boolFlag) Names() []string   { return f.names }

func (f stringFlag) Apply(set *flag.FlagSet) error {
	c := *f.StringFlag
	c.EnvVars = nil
	return c.Apply(set)
}

func (f sliceFlag) Apply(set *flag.FlagSet) error {
	c := *f.StringSliceFlag
	c.EnvVars = nil
	return c.Apply(set)
}

func (f boolFlag) Apply(set *flag.FlagSet) error {
	c := *f.BoolFlag
	c.EnvVars = nil
	return c.Apply(set)
}

// envFlags wraps a command's flags (see above). Flags of other types are
// left as they are: the commands have none.
func envFlags(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			out[i] = stringFlag{f, f.Names()}
		case *cli.StringSliceFlag:
			out[i] = sliceFlag{f, f.Names()}
		case *cli.BoolFlag:
			out[i] = boolFlag{f, f.Names()}
		default:
			out[i] = f
		}
	}
	return out
}

// flagVars returns the variables of a flag, wrapped or not.
func flagVars(f cli.Flag) []string {
	if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
		return ev.GetEnvVars()
	}
	return nil
}

// bindEnv sets each flag of the command that the command line left unset
// from the first of its variables that the Env holds.
func bindEnv(c *cli.Context) error {
	env := envOf(c)
	for _, f := range c.Command.Flags {
		vars := flagVars(f)
		if len(vars) == 0 {
			continue
		}
		name := f.Names()[0]
		if c.IsSet(name) {
			continue
		}
		for _, v := range vars {
			val, ok := env.Lookup(strings.TrimSpace(v))
			if !ok {
				continue
			}
			switch f.(type) {
			case boolFlag:
				if val == "" {
					val = "false"
				} else if _, err := strconv.ParseBool(val); err != nil {
					return onUsageError(c, fmt.Errorf("could not parse %q as bool value from environment variable %q for flag %s: %w", val, v, name, err), false)
				}
			case sliceFlag:
				val = strings.TrimSpace(val)
			}
			if err := c.Set(name, val); err != nil {
				return onUsageError(c, fmt.Errorf("could not parse %q from environment variable %q for flag %s: %w", val, v, name, err), false)
			}
			break
		}
	}
	return nil
}
