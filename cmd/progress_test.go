package cmd

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func TestProgressLine(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	p := startProgress(&buf, 0, 2*time.Millisecond)
	p.Update(3, 10)
	waitFor(t, 5*time.Second, "3/10", func() bool { return strings.Contains(buf.String(), "reconciling 3/10 apps") })
	p.Update(2, 10) // a late worker reporting a lower count changes nothing
	p.Update(10, 10)
	waitFor(t, 5*time.Second, "10/10", func() bool { return strings.Contains(buf.String(), "reconciling 10/10 apps") })
	p.Stop()
	p.Stop() // idempotent
	got := buf.String()
	if !strings.HasPrefix(got, "\rreconciling 3/10 apps\x1b[K") {
		t.Errorf("line not drawn from the start of the line: %q", got)
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("line not cleared at the end: %q", got)
	}
	if strings.Contains(got, "2/10") {
		t.Errorf("count went backwards: %q", got)
	}
	if strings.Count(got, "3/10") != 1 {
		t.Errorf("an unchanged line was redrawn: %q", got)
	}
	if strings.Contains(got, "\n") {
		t.Errorf("the progress line wrote a newline: %q", got)
	}
}

func TestProgressShortRunDrawsNothing(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	p := startProgress(&buf, time.Hour, time.Millisecond)
	p.Update(1, 1)
	p.Stop()
	if buf.String() != "" {
		t.Errorf("a run shorter than the delay drew %q", buf.String())
	}
	var nilp *progress
	nilp.Update(1, 2)
	nilp.Stop()
}

func TestProgressEnabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		terminal bool
		noColor  string
		quiet    bool
		verbose  bool
		want     bool
	}{
		{name: "terminal", terminal: true, want: true},
		{name: "NO_COLOR empty", terminal: true, noColor: "", want: true},
		{name: "piped", terminal: false},
		{name: "NO_COLOR", terminal: true, noColor: "1"},
		{name: "quiet", terminal: true, quiet: true},
		{name: "verbose", terminal: true, verbose: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Streams{ErrIsTerminal: tc.terminal}
			rc := &runConfig{verbose: tc.verbose, noColor: tc.noColor != ""}
			rc.render.Quiet = tc.quiet
			if got := progressEnabled(s, rc); got != tc.want {
				t.Errorf("progressEnabled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunProgressOnTerminal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// On fake time: the line is drawn after progressDelay, while one app
		// lags, so it shows the others done before the run ends.
		srv := repeatEnv(t, 20*time.Millisecond)
		srv.Inject(flytest.Fault{Op: flytest.OpList, App: "rep-4", Latency: 2 * progressDelay})
		setenv(t, "NO_COLOR", "")
		out, errOut := &syncBuffer{}, &syncBuffer{}
		s := &Streams{Out: out, Err: errOut, ErrIsTerminal: true}
		err := Main(testContext(t), []string{"fly-autoscaler", "run", "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3"}, envFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		e := errOut.String()
		if !strings.Contains(e, "\rreconciling 3/4 apps\x1b[K") {
			t.Errorf("no progress line on a terminal's stderr: %q", e)
		}
		if !strings.HasSuffix(e, "\r\x1b[K") {
			t.Errorf("progress line not cleared: %q", e)
		}
		if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "reconciling") {
			t.Errorf("progress went to stdout: %q", out.String())
		}
	})
}

func TestRunProgressPiped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		s    func(s *Streams)
		env  string
	}{
		{name: "piped", s: func(s *Streams) {}},
		{name: "NO_COLOR", s: func(s *Streams) { s.ErrIsTerminal = true }, env: "1"},
		{name: "quiet", s: func(s *Streams) { s.ErrIsTerminal = true }, args: []string{"--quiet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// A run long enough for a progress line, were it drawn.
				srv := repeatEnv(t, 20*time.Millisecond)
				srv.Inject(flytest.Fault{Op: flytest.OpList, App: "rep-4", Latency: 2 * progressDelay})
				setenv(t, "NO_COLOR", tc.env)
				s, _, errOut := BufferStreams()
				tc.s(s)
				args := append([]string{"fly-autoscaler", "run", "--org", "rep-org", "--apps", "rep-*", "--started-machine-count", "3"}, tc.args...)
				err := Main(testContext(t), args, envFor(t), s)
				if err != nil {
					t.Fatal(err)
				}
				if e := errOut.String(); e != "" {
					t.Errorf("stderr: %q, want nothing", e)
				}
			})
		})
	}
}
