package cmd

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// exitOrg has an app on target (steady: one started machine) and one that
// a started target of 2 changes (grow: one started, one stopped).
var exitOrg = &flytest.Org{Slug: "exit-org", Apps: []flytest.AppSpec{
	{Name: "steady", Machines: []flytest.MachineSpec{{State: "started"}}},
	{Name: "grow", Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}},
}}

// exitEnv starts flytest with exitOrg and points the CLI at it.
func exitEnv(t *testing.T, opts flytest.Options) *flytest.Server {
	t.Helper()
	opts.Token = testToken
	srv := flytest.New(exitOrg, opts)
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	setenv(t, "FAS_API_TOKEN", testToken)
	return srv
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		fault *flytest.Fault
		setup func(*flytest.Server)
		want  int
		// mutations says whether machines must have been changed.
		mutations bool
	}{
		{name: "unchanged", args: []string{"--apps", "steady", "--started-machine-count", "1"}, want: ExitOK},
		{name: "unchanged detailed", args: []string{"--apps", "steady", "--started-machine-count", "1", "--detailed-exitcode"}, want: ExitOK},
		{name: "unchanged dry run detailed", args: []string{"--apps", "steady", "--started-machine-count", "1", "--dry-run", "--detailed-exitcode"}, want: ExitOK},
		{name: "skipped detailed", args: []string{"--org", "exit-org", "--apps", "*", "--started-machine-count", "2", "--detailed-exitcode"},
			setup: func(srv *flytest.Server) {
				srv.SetReleaseStatus("grow", "running")
				srv.SetReleaseStatus("steady", "pending")
			}, want: ExitOK},
		{name: "changed", args: []string{"--apps", "grow", "--started-machine-count", "2"}, want: ExitOK, mutations: true},
		{name: "changed detailed", args: []string{"--apps", "grow", "--started-machine-count", "2", "--detailed-exitcode"}, want: ExitChanged, mutations: true},
		{name: "changed detailed variable", args: []string{"--apps", "grow", "--started-machine-count", "2", "FAS_DETAILED_EXITCODE=true"}, want: ExitChanged, mutations: true},
		{name: "planned dry run", args: []string{"--apps", "grow", "--started-machine-count", "2", "--dry-run"}, want: ExitOK},
		{name: "planned dry run detailed", args: []string{"--apps", "grow", "--started-machine-count", "2", "--dry-run", "--detailed-exitcode"}, want: ExitChanged},
		{name: "planned dry run detailed json", args: []string{"--apps", "grow", "--started-machine-count", "2", "--dry-run", "--detailed-exitcode", "--output", "json"}, want: ExitChanged},
		{name: "failed", args: []string{"--apps", "steady", "--started-machine-count", "1"},
			fault: &flytest.Fault{Op: flytest.OpList, App: "steady", Status: 404}, want: ExitFailed},
		{name: "failed detailed", args: []string{"--apps", "steady", "--started-machine-count", "1", "--detailed-exitcode"},
			fault: &flytest.Fault{Op: flytest.OpList, App: "steady", Status: 404}, want: ExitFailed},
		{name: "failed and changed detailed", args: []string{"--apps", "steady,grow", "--started-machine-count", "2", "--detailed-exitcode"},
			fault: &flytest.Fault{Op: flytest.OpList, App: "steady", Status: 404}, want: ExitFailed, mutations: true},
		{name: "failed dry run detailed", args: []string{"--apps", "steady,grow", "--started-machine-count", "2", "--dry-run", "--detailed-exitcode"},
			fault: &flytest.Fault{Op: flytest.OpList, App: "steady", Status: 404}, want: ExitFailed},
		{name: "run incomplete detailed", args: []string{"--org", "exit-org", "--apps", "*", "--started-machine-count", "1", "--detailed-exitcode"},
			fault: &flytest.Fault{Op: flytest.OpGraphQLApps, Status: 400}, want: ExitFailed},
		{name: "usage no target", args: []string{"--apps", "steady"}, want: ExitUsage},
		{name: "usage no target detailed", args: []string{"--apps", "steady", "--detailed-exitcode"}, want: ExitUsage},
		{name: "usage unknown flag", args: []string{"--apps", "steady", "--started-machine-count", "1", "--detailed-exit-code"}, want: ExitUsage},
		{name: "usage bad log format", args: []string{"--apps", "steady", "--started-machine-count", "1", "--log-format", "xml"}, want: ExitUsage},
		{name: "usage bad every", args: []string{"--apps", "steady", "--started-machine-count", "1", "--every", "0s"}, want: ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := exitEnv(t, flytest.Options{})
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			if tc.setup != nil {
				tc.setup(srv)
			}
			var args []string
			for _, a := range tc.args {
				if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "FAS_") {
					setenv(t, k, v)
					continue
				}
				args = append(args, a)
			}
			code, out, stderr := runCLI(t, append([]string{"run"}, args...)...)
			if code != tc.want {
				t.Fatalf("exit code %d, want %d\nstderr: %s\nstdout: %s", code, tc.want, stderr, out)
			}
			if got := len(srv.Mutations()) > 0; got != tc.mutations {
				t.Errorf("machines changed: %v, want %v", got, tc.mutations)
			}
			if tc.want == ExitUsage && len(srv.Calls()) > 0 {
				t.Errorf("a usage error called the API: %+v", srv.Calls()[0])
			}
			// Exit 3 is a success: main prints nothing for it.
			if tc.want == ExitChanged && strings.TrimSpace(stderr) != "" {
				t.Errorf("exit 3 printed %q", stderr)
			}
			if tc.want == ExitOK || tc.want == ExitChanged {
				if out == "" {
					t.Errorf("no report")
				}
			}
		})
	}
}

func TestExitCodeMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailed},
		{&UsageError{Msg: "bad"}, ExitUsage},
		{errChanged, ExitChanged},
		{&exitError{code: ExitFailed, msg: "1 of 2 apps failed"}, ExitFailed},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if errChanged.Error() != "" {
		t.Errorf("errChanged has a message, main would print it: %q", errChanged.Error())
	}
}

func TestExitCodeCommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, ExitOK},
		{[]string{"--version"}, ExitOK},
		{[]string{"--help"}, ExitOK},
		{[]string{"run", "--help"}, ExitOK},
		{[]string{"nosuchcommand"}, ExitUsage},
		{[]string{"--nosuchflag"}, ExitUsage},
		{[]string{"demo", "extra"}, ExitUsage},
	} {
		s, _, _ := BufferStreams()
		err := Main(context.Background(), append([]string{"fly-autoscaler"}, tc.args...), envFor(t), s)
		if got := ExitCode(err); got != tc.want {
			t.Errorf("%v: exit code %d (%v), want %d", tc.args, got, err, tc.want)
		}
	}
}
