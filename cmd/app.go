// Package cmd is fly-autoscaler's command line: it reads flags, variables
// and the config file into one validated configuration, builds the real
// clients, calls scale.Run, renders the report and maps the outcome to an
// exit code. It holds no scaling logic.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
)

// Build information, set by the Makefile through -ldflags -X.
var (
	Version = ""
	Commit  = ""
	// Built is the build date (make build: UTC, YYYY-MM-DD).
	Built = ""
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	ExitChanged = 3
)

// exitError carries an exit code; an empty message prints nothing.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// ExitCode maps an error returned by Main to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitFailed
}

// Main runs the command line args (args[0] is the program name) with the
// given environment and streams. Errors are returned, not printed: main
// prints them once.
//
// The secrets of the environment are known to the streams from the start,
// so that even urfave/cli's own messages (a bad FAS_DRY_RUN value, an
// unknown flag) cannot print one; the returned error is redacted too.
func Main(ctx context.Context, args []string, env Env, s *Streams) (err error) {
	// A bug must not print a Go stack trace (which may quote a value):
	// it is reported as one line.
	defer func() {
		if r := recover(); r != nil {
			err = redactError(fmt.Errorf("internal error: %v", r), nil, s)
		}
	}()
	s.AddSecrets(envSecrets(env)...)
	app := newApp(s, env)
	// A signal before the first pass ends the command at once: reading
	// the configuration is no work to finish.
	err = runGated(ctx, func(ctx context.Context) error { return runApp(ctx, app, args) })
	// "help NAME" of an unknown command: urfave's exit 3 ("No help topic
	// for 'NAME'") would read as --detailed-exitcode's "changes made".
	if m := noHelpTopic.FindStringSubmatch(fmt.Sprint(err)); m != nil {
		err = unknownCommand(app, m[1])
	}
	if err != nil {
		err = redactError(err, nil, s)
	}
	return err
}

// appMu is held while an App sets itself up and parses its command line:
// urfave/cli v2 writes package variables then (fields of its help command
// and help flag), so two Apps in one process must not do it at once. The
// program runs one at a time but for the demo, whose passes run inside its
// command; tests run many. It is released as the command's own work
// begins (the command's Before), so that Apps' actions may overlap.
var appMu sync.Mutex

// appLock is one App's hold of appMu, released once.
type appLock struct{ once sync.Once }

func (l *appLock) release() { l.once.Do(appMu.Unlock) }

type appLockKey struct{}

// runApp runs app with args under appMu, released by the command's Before
// (releaseApp) or, at the latest, when app returns.
func runApp(ctx context.Context, app *cli.App, args []string) error {
	l := &appLock{}
	appMu.Lock()
	defer l.release()
	return app.RunContext(context.WithValue(ctx, appLockKey{}, l), args)
}

// releaseApp releases the hold of appMu of the App c runs in, if any.
func releaseApp(c *cli.Context) {
	if c.Context == nil {
		return
	}
	if l, ok := c.Context.Value(appLockKey{}).(*appLock); ok {
		l.release()
	}
}

// PrintError prints the error Main returned, if it has a message, on the
// streams' stderr, and flushes the streams: the one place an error is
// printed.
func PrintError(s *Streams, err error) {
	if err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(s.Err, "fly-autoscaler:", msg)
		}
	}
	_ = s.Flush()
}

var noHelpTopic = regexp.MustCompile(`^No help topic for '(.*)'`)

// unknownCommand is the usage error for a command that does not exist,
// with the nearest command name when one is close.
func unknownCommand(app *cli.App, name string) error {
	var names []string
	for _, c := range app.VisibleCommands() {
		names = append(names, c.Names()...)
	}
	if s := closest(name, names); s != "" {
		return usagef("unknown command %q: did you mean %q? (see fly-autoscaler --help)", name, s)
	}
	return usagef("unknown command %q: see fly-autoscaler --help", name)
}

// onUsageError turns urfave/cli's flag parsing errors (an unknown flag, a
// missing value) into usage errors.
func onUsageError(_ *cli.Context, err error, _ bool) error {
	// Go's flag package names flags with one dash; ours are written --name.
	msg := flagDash.ReplaceAllString(err.Error(), ": --$1")
	return &UsageError{Msg: msg + " (see --help)"}
}

var flagDash = regexp.MustCompile(`: -([a-z][a-z0-9-]+)`)

func init() {
	cli.FlagStringer = plainPlaceholders(cli.FlagStringer)
	// --version prints what the version command prints.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintf(c.App.Writer, "fly-autoscaler %s\n", versionString()) }
}

// plainPlaceholders shows a flag's placeholder in capitals and its usage in
// plain words: "Fly API `token`" reads "--api-token TOKEN  Fly API token".
func plainPlaceholders(stringer cli.FlagStringFunc) cli.FlagStringFunc {
	return func(f cli.Flag) string {
		head, usage, ok := strings.Cut(stringer(f), "\t")
		if !ok {
			return head
		}
		words := strings.Split(head, " ")
		for i, w := range words {
			if !strings.HasPrefix(w, "-") {
				words[i] = strings.ToUpper(w)
			}
		}
		return strings.Join(words, " ") + "\t" + usage
	}
}

// newApp is the command line that Main runs, reading its variables from
// env.
func newApp(s *Streams, env Env) *cli.App {
	return &cli.App{
		Metadata:                  map[string]any{envKey: env},
		Name:                      "fly-autoscaler",
		Usage:                     "scale a fleet of Fly.io apps from metrics, one run at a time",
		Version:                   versionString(),
		Writer:                    s.Out,
		ErrWriter:                 s.Err,
		DisableSliceFlagSeparator: true,
		Suggest:                   true,
		// Errors are returned to main, which prints them once and exits.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c.App, c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		CustomAppHelpTemplate: appHelpTemplate,
		Commands: withHelp(withUsageErrors([]*cli.Command{
			runCommand(s),
			evalCommand(s),
			pauseCommand(s),
			resumeCommand(s),
			validateCommand(s),
			demoCommand(s),
			versionCommand(s),
		})),
	}
}

// withUsageErrors gives every command onUsageError (urfave's default
// prints the whole help on stdout and exits 1 for a mistyped flag), and
// binds its flags to the App's Env (envFlags, bindEnv).
func withUsageErrors(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		c.Flags = envFlags(c.Flags)
		before := c.Before
		c.Before = func(ctx *cli.Context) error {
			if err := bindEnv(ctx); err != nil {
				return err
			}
			releaseApp(ctx)
			if before != nil {
				return before(ctx)
			}
			return nil
		}
	}
	return cmds
}

// describeCommit is the commit part of a version: git describe's
// "-gabc1234", a Go pseudo-version's "-abcdef123456".
var describeCommit = regexp.MustCompile(`-g?([0-9a-f]{7,40})`)

// versionString is "v1.2.3 (commit abc1234, built 2026-12-05 with
// go1.26.0)": each part once (the date when make build stamped it). git describe without a tag names the commit
// (abc1234) and after a tag adds it (v1.2.3-4-gabc1234): the version then
// leaves it to the commit part.
func versionString() string {
	v, c, built, goVersion := Version, Commit, Built, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" && c == "" {
				c = st.Value
			}
		}
	}
	if c != "" {
		short := c[:min(len(c), 7)]
		switch {
		case v == c || strings.HasPrefix(c, strings.TrimSuffix(v, "-dirty")) && len(v) >= 7:
			v = "dev" // the version was the commit
		default:
			for _, m := range describeCommit.FindAllStringSubmatchIndex(v, -1) {
				if strings.HasPrefix(v[m[2]:m[3]], short) {
					v = v[:m[0]] + v[m[1]:]
					break
				}
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	b := "built"
	if built != "" {
		b += " " + built
	}
	if goVersion != "" {
		b += " with " + goVersion
	}
	return fmt.Sprintf("%s (commit %s, %s)", v, c, b)
}

func versionCommand(s *Streams) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, build date and Go version",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("version takes no arguments (see fly-autoscaler --help)")
			}
			_, err := fmt.Fprintf(s.Out, "fly-autoscaler %s\n", versionString())
			return err
		},
	}
}
