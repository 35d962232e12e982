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
			clearEnv(t)
			calls := tripwire(t)
			t.Setenv("FAS_APP_NAME", "idle")
			t.Setenv("FAS_API_TOKEN", "FlyV1 fm2_positional-test")
			t.Setenv("FAS_STARTED_MACHINE_COUNT", "0")
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
