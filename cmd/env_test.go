package cmd

import (
	"strings"
	"testing"
)

// TestEnvBindsFlagsAsUrfaveDid: the variables of the Env given to Main set
// the flags the command line left unset, with urfave/cli's rules (the
// first variable that exists, a boolean parsed, "" a false boolean), and
// the process's environment is not read.
func TestEnvBindsFlagsAsUrfaveDid(t *testing.T) {
	t.Parallel()
	base := []string{"--apps", "a", "--started-machine-count", "1"}
	for _, tc := range []struct {
		name string
		env  Env
		args []string
		want func(rc *runConfig) string // "" when right
	}{
		{name: "variable sets the flag", env: Env{"FAS_API_TOKEN": "t1", "FAS_DRY_RUN": "true"},
			want: func(rc *runConfig) string {
				if rc.token != "t1" || !rc.scale.DryRun {
					return "token " + rc.token + ", dry run not set"
				}
				return ""
			}},
		{name: "flag beats variable", env: Env{"FAS_API_TOKEN": "t1", "FAS_DRY_RUN": "true"}, args: []string{"--api-token", "t2", "--dry-run=false"},
			want: func(rc *runConfig) string {
				if rc.token != "t2" || rc.scale.DryRun {
					return "token " + rc.token + ", or dry run set"
				}
				return ""
			}},
		{name: "second variable when the first is unset", env: Env{"FLY_API_TOKEN": "t3"},
			want: func(rc *runConfig) string {
				if rc.token != "t3" {
					return "token " + rc.token
				}
				return ""
			}},
		{name: "empty boolean is false", env: Env{"FAS_API_TOKEN": "t1", "FAS_DRY_RUN": ""},
			want: func(rc *runConfig) string {
				if rc.scale.DryRun {
					return "dry run set"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			rc, err := loadConfig(t, append(append([]string{}, base...), tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(rc); msg != "" {
				t.Error(msg)
			}
		})
	}

	t.Run("bad boolean", func(t *testing.T) {
		setenv(t, "FAS_API_TOKEN", "t1")
		setenv(t, "FAS_DRY_RUN", "maybe")
		code, _, stderr := runCLI(t, append([]string{"run"}, base...)...)
		want := `could not parse "maybe" as bool value from environment variable "FAS_DRY_RUN" for flag dry-run: strconv.ParseBool: parsing "maybe": invalid syntax (see --help)`
		if code != ExitUsage || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, ExitUsage, want)
		}
	})
}

// TestMainReadsOnlyItsEnv: a variable of the process is not seen by a Main
// given another Env.
func TestMainReadsOnlyItsEnv(t *testing.T) {
	t.Setenv("FAS_API_TOKEN", "from-the-process")
	code, _, stderr := runCLI(t, "run", "--apps", "a", "--started-machine-count", "1")
	if code != ExitUsage || !strings.Contains(stderr, "missing Fly API token") {
		t.Errorf("exit %d, stderr %q: the process's FAS_API_TOKEN was read", code, stderr)
	}
}
