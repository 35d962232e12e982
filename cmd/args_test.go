package cmd

import (
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// TestPositionalArgumentsRejected: a bare word ends urfave's flag parsing,
// so "run idle --dry-run" would drop --dry-run and really scale. run and
// eval refuse any positional argument before calling anything.
func TestPositionalArgumentsRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		word string
	}{
		{"run, dry run after the word", []string{"run", "idle", "--dry-run"}, "idle"},
		{"run, word after the flags", []string{"run", "--dry-run", "idle"}, "idle"},
		{"eval", []string{"eval", "idle", "--output", "json"}, "idle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			setenv(t, "FAS_APP_NAME", "idle")
			setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_positional-test")
			setenv(t, "FAS_STARTED_MACHINE_COUNT", "0")
			code, out, stderr := runCLI(t, tc.args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d; stderr: %s", code, ExitUsage, stderr)
			}
			if want := `unexpected argument "` + tc.word + `"`; !strings.Contains(stderr, want) || !strings.Contains(stderr, "--apps") {
				t.Errorf("error %q does not say %s and name --apps", strings.TrimSpace(stderr), want)
			}
			if out != "" {
				t.Errorf("a report was printed: %s", out)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls made", n)
			}
		})
	}
}

// TestNoAppMatchedWarns: a selection that matches no app is a warning on
// stderr, not an error: exit 0.
func TestNoAppMatchedWarns(t *testing.T) {
	t.Parallel()
	for _, command := range []string{"run", "eval"} {
		t.Run(command, func(t *testing.T) {
			exitEnv(t, flytest.Options{})
			code, out, stderr := runCLI(t, command, "--org", "exit-org", "--apps", "nomatch-*", "--exclude", "x-*", "--started-machine-count", "1")
			if code != ExitOK {
				t.Fatalf("exit code %d, want 0; stderr: %s", code, stderr)
			}
			for _, want := range []string{"level=WARN", `msg="no app matched --apps"`, "apps=nomatch-*", "exclude=x-*", "org=exit-org"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not hold %q", stderr, want)
				}
			}
			if out == "" {
				t.Errorf("no report")
			}

			// A selection that matches says nothing of the kind.
			_, _, stderr = runCLI(t, command, "--org", "exit-org", "--apps", "steady", "--started-machine-count", "1")
			if strings.Contains(stderr, "no app matched") {
				t.Errorf("warned with a match: %s", stderr)
			}
		})
	}
}

// TestHelpCommandAndUnknownCommands: "help run" shows run's help; an
// unknown command, also after help, is a usage error with a suggestion;
// -v is the app's --version, not run's --verbose.
func TestHelpCommandAndUnknownCommands(t *testing.T) {
	t.Parallel()
	tripwire(t)
	code, out, stderr := runCLI(t, "help", "run")
	if code != ExitOK || !strings.Contains(out, "--dry-run") || !strings.Contains(out, "fly-autoscaler run --org my-org") {
		t.Errorf("help run: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if code, out, _ := runCLI(t, "help"); code != ExitOK || !strings.Contains(out, "COMMANDS") {
		t.Errorf("help: exit %d, %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rn"}, `unknown command "rn": did you mean "run"?`},
		{[]string{"evl", "--apps", "a"}, `unknown command "evl": did you mean "eval"?`},
		{[]string{"help", "rn"}, `unknown command "rn": did you mean "run"?`},
		{[]string{"hepl"}, `unknown command "hepl": did you mean "help"?`},
		{[]string{"help", "nothing-like-it"}, `unknown command "nothing-like-it": see fly-autoscaler --help`},
		{[]string{"run", "-v", "--apps", "a", "--api-token", "tok", "--started-machine-count", "1"}, "-v"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, error %q; want %d and %q", tc.args, code, strings.TrimSpace(stderr), ExitUsage, tc.want)
		}
	}
	if code, out, _ := runCLI(t, "-v"); code != ExitOK || !strings.HasPrefix(out, "fly-autoscaler ") {
		t.Errorf("-v: exit %d, %q", code, out)
	}
}
