package cmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds of every hostile input of TestHostileInputIsCheap, for the whole
// child process: its CPU time (user and system), its peak resident memory
// under a GOMEMLIMIT, and its wall time, which only catches a hang (two
// cores shared by many test processes stretch it).
const (
	hostileCPU      = 2 * time.Second
	hostileMemLimit = "192MiB"
	hostileMaxRSS   = 256 << 20
	hostileWall     = 2 * time.Minute
)

// processUsage is what a child process cost.
type processUsage struct {
	code   int
	output string
	cpu    time.Duration
	maxRSS int64 // bytes
	wall   time.Duration
}

// runProcessUsage is runProcess, with the child's resources, under the
// memory limit hostileMemLimit; the child is killed after hostileWall.
func runProcessUsage(t *testing.T, args ...string) processUsage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileWall)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMainProcess$")
	cmd.Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join(args, "\x1f"), "GOMEMLIMIT="+hostileMemLimit)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	u := processUsage{output: string(out), wall: time.Since(start)}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run process: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("still running after %s: killed", hostileWall)
	}
	ps := cmd.ProcessState
	u.code = ps.ExitCode()
	u.cpu = ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	return u
}

// policiesYAML is a config file of one policy per glob, after head.
func policiesYAML(head string, globs []string) string {
	var b strings.Builder
	b.WriteString(head + "policies:\n")
	for i, g := range globs {
		fmt.Fprintf(&b, "  - {name: p%d, apps: ['%s']}\n", i, g)
	}
	return b.String()
}

func globs(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// braces is {*a<k>*,*b<k>*,...,*t<k>*}: twenty alternatives, each
// anywhere in the name.
func braces(k string) string {
	var alts []string
	for c := 'a'; c <= 't'; c++ {
		alts = append(alts, fmt.Sprintf("*%c%s*", c, k))
	}
	return "{" + strings.Join(alts, ",") + "}"
}

// TestHostileInputIsCheap: every input of a careless or hostile user that
// used to hang, take minutes or gigabytes, or be silently misread, run in
// a child process under a memory limit: refused with exit 2, naming the
// file and line or the flag, and no API call; or, for the inputs that are
// valid, validated within the bounds (--output yaml is then the error:
// checked after the policies, it shows that they passed).
func TestHostileInputIsCheap(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a child process per input")
	}
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.yml")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	credsFIFO := filepath.Join(dir, "creds.fifo")
	if err := syscall.Mkfifo(credsFIFO, 0o600); err != nil {
		t.Fatal(err)
	}
	bigCreds := file("big.creds", strings.Repeat("x", 2<<20))
	nats := []string{"run", "--org", "o", "--apps", "a-*", "--started-machine-count", "b", "--nats-url", "nats://127.0.0.1:1",
		"--nats-metric-name", "b", "--nats-stream", "s", "--nats-consumer", "c"}

	head := "org: o\napp-name: '*'\nstarted-machine-count: 1\n"
	// A 2,000-glob anchor aliased into 3,000 policies: about 100 KB that
	// expands to tens of megabytes.
	var alias strings.Builder
	alias.WriteString(head + "policies:\n  - name: p0\n    apps: &g [" + strings.Join(globs(2000, "g%04d-*"), ",") + "]\n")
	for i := 1; i < 3000; i++ {
		fmt.Fprintf(&alias, "  - {name: p%d, apps: *g}\n", i)
	}
	var braced, bracedOverlap []string
	for k := range 200 {
		braced = append(braced, braces(fmt.Sprintf("%03d", k)))
		bracedOverlap = append(bracedOverlap, braces(fmt.Sprint(k)))
	}
	coveredLast := append(globs(10000, "t%05d-*"), "t00005-x*")
	valid := []string{"unknown format"} // the --output yaml after validation

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"config a FIFO", []string{"run", "--config", fifo}, []string{fifo + ": not a regular file (a FIFO)"}},
		{"config a socket", []string{"run", "--config", sock}, []string{"not a regular file (a socket)"}},
		{"config a character device", []string{"run", "--config", "/dev/null"}, []string{"not a regular file (a character device)"}},
		{"aliases over 1 MiB", []string{"run", "--config", file("alias.yml", alias.String())},
			[]string{"alias.yml:", "with its aliases expanded the file is larger than 1 MiB"}},
		{"10,000 plain names", []string{"run", "--config", file("plain.yml", policiesYAML(head, globs(10000, "app-%05d"))), "--output", "yaml"}, valid},
		{"10,000 prefixes", []string{"run", "--config", file("prefix.yml", policiesYAML(head, globs(10000, "t%05d-*"))), "--output", "yaml"}, valid},
		{"10,000 suffixes", []string{"run", "--config", file("suffix.yml", policiesYAML(head, globs(10000, "*-%05d"))), "--output", "yaml"}, valid},
		{"10,000 overlapping infixes", []string{"run", "--config", file("mid.yml", policiesYAML(head, globs(10000, "*-m%05d-*"))), "--output", "yaml"}, valid},
		{"10,000 prefixes and a covered one", []string{"run", "--config", file("covered.yml", policiesYAML(head, coveredLast))},
			[]string{"covered.yml:10005: policy \"p10000\": can never apply", `"p5" (line 10)`}},
		{"5 identical brace sets", []string{"run", "--config", file("brace5.yml", policiesYAML(head, []string{braces("0"), braces("0"), braces("0"), braces("0"), braces("0")}))},
			[]string{"brace5.yml:6: policy \"p1\": can never apply"}},
		{"200 brace sets", []string{"run", "--config", file("brace200.yml", policiesYAML(head, braced)), "--output", "yaml"}, valid},
		{"200 overlapping brace sets", []string{"run", "--config", file("brace200o.yml", policiesYAML(head, bracedOverlap))},
			[]string{"brace200o.yml:15: policy \"p10\": can never apply"}},
		{"20,000 alternatives in one glob", []string{"run", "--config", file("bigbrace.yml", policiesYAML(head, []string{"{" + strings.Join(globs(20000, "*x%d*"), ",") + "}"}))},
			[]string{"policies in ", "20000 alternatives in braces in all, at most 4096"}},
		{"200 alternatives in --apps", []string{"run", "--org", "o", "--apps", "{" + strings.Join(globs(200, "*x%d*"), ",") + "}", "--started-machine-count", "1"},
			[]string{"--apps (FAS_APP_NAME): malformed glob pattern \"{*x0*,", "...\": 200 alternatives in braces, at most 128"}},
		{"40 globs of 128 alternatives", []string{"run", "--config", file("alt40.yml", policiesYAML(head, func() []string {
			var out []string
			for k := range 40 {
				out = append(out, "{"+strings.Join(globs(128, fmt.Sprintf("*x%d-%%d*", k)), ",")+"}")
			}
			return out
		}()))}, []string{"5120 alternatives in braces in all, at most 4096"}},
		{"32 globs of 128 alternatives", []string{"run", "--config", file("alt32.yml", policiesYAML(head, func() []string {
			var out []string
			for k := range 32 {
				out = append(out, "{"+strings.Join(globs(128, fmt.Sprintf("*x%d-%%d*", k)), ",")+"}")
			}
			return out
		}())), "--output", "yaml"}, valid},
		{"empty policy entries", []string{"run", "--config", file("empty.yml", head+"policies: [ ~, ]\n")},
			[]string{"empty.yml:4: policies[0]: empty entry"}},
		{"empty collector entry", []string{"run", "--config", file("emptyc.yml", head+"metric-collectors:\n  -\n")},
			[]string{"emptyc.yml:5: metric-collectors[0]: empty entry"}},
		{"concurrency -1", []string{"run", "--config", file("conc.yml", head+"concurrency: -1\n")}, []string{"conc.yml:4: concurrency: "}},
		{"timeout -5s", []string{"run", "--config", file("timeout.yml", head+"timeout: -5s\n")}, []string{"timeout.yml:4: timeout: "}},
		{"max-machines 0", []string{"run", "--config", file("max.yml", head+"max-machines: 0\n")}, []string{"max.yml:4: max-machines: "}},
		{"invalid UTF-8", []string{"run", "--config", file("utf8.yml", head+"process-group: \"w\xffb\"\n")}, []string{"utf8.yml:4: not valid UTF-8"}},
		{"bidi in a policy name", []string{"run", "--config", file("bidi.yml", head+"policies:\n  - {name: \"evil\u202egnp\", apps: ['x-*']}\n")},
			[]string{"bidi.yml:5: policies[0]: name: holds a control or bidirectional formatting character"}},
		{"C1 in a policy name", []string{"run", "--config", file("c1.yml", head+"policies:\n  - {name: \"a\\x9bb\", apps: ['x-*']}\n")},
			[]string{"c1.yml:5: policies[0]: name: holds a control"}},
		{"a raw control character", []string{"run", "--config", file("raw.yml", head+"process-group: \"a\u009bb\"\n")},
			[]string{"raw.yml:4: holds the control character U+009B"}},
		{"bidi in a region", []string{"run", "--config", file("region.yml", head+"regions: [\"or\u202ed\"]\n")},
			[]string{"region.yml:4: regions: holds a control or bidirectional formatting character"}},
		{"bidi in a policy's process group", []string{"run", "--config", file("group.yml", head+"policies:\n  - {name: p, apps: ['x-*'], process-group: \"w\u2066b\"}\n")},
			[]string{"group.yml:5: policy \"p\": process-group: holds a control or bidirectional formatting character"}},
		{"--nats-creds /dev/zero", append(nats, "--nats-creds", "/dev/zero"),
			[]string{"--nats-creds (FAS_NATS_CREDS): ", ": not a regular file (a character device)"}}, // the path of creds is redacted
		{"--nats-creds a FIFO", append(nats, "--nats-creds", credsFIFO),
			[]string{"--nats-creds (FAS_NATS_CREDS): ", ": not a regular file (a FIFO)"}},
		{"--nats-creds of 2 MiB", append(nats, "--nats-creds", bigCreds), []string{"--nats-creds (FAS_NATS_CREDS): ", ": 2097152 bytes, more than"}},
		{"--temporal-tls-ca /dev/zero", []string{"run", "--org", "o", "--apps", "a-*", "--started-machine-count", "w", "--temporal-address", "127.0.0.1:1",
			"--temporal-namespace", "n", "--temporal-metric-name", "w", "--temporal-task-queue", "q", "--temporal-tls-ca", "/dev/zero"},
			[]string{"--temporal-tls-ca (FAS_TEMPORAL_TLS_CA): /dev/zero: not a regular file (a character device)"}},
		{"a Kafka tls-ca that is a FIFO", []string{"run", "--config", file("kafka.yml", head+"metric-collectors:\n  - {type: kafka, metric-name: l, brokers: '127.0.0.1:1', topic: t, tls-ca: '"+credsFIFO+"'}\n")},
			[]string{"kafka.yml:5: metric-collectors[0]: kafka metric \"l\": tls-ca: " + credsFIFO + ": not a regular file (a FIFO)"}},
		{"--every 1ns", []string{"run", "--org", "o", "--apps", "a-*", "--started-machine-count", "1", "--every", "1ns"},
			[]string{"--every (FAS_EVERY): 1ns is below 1s"}},
		{"--every 999ms", []string{"run", "--org", "o", "--apps", "a-*", "--started-machine-count", "1", "--every", "999ms"},
			[]string{"--every (FAS_EVERY): 999ms is below 1s"}},
		{"eval --every", []string{"eval", "--org", "o", "--apps", "a-*", "--started-machine-count", "1", "--every", "1m"},
			[]string{"--every (FAS_EVERY): eval evaluates once"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_Hq7xW2pd")
			u := runProcessUsage(t, tc.args...)
			t.Logf("exit %d, cpu %s, peak RSS %.1f MiB, wall %s", u.code, u.cpu.Round(time.Millisecond), float64(u.maxRSS)/(1<<20), u.wall.Round(time.Millisecond))
			if u.code != ExitUsage {
				t.Errorf("exit %d, want %d; output:\n%.2000s", u.code, ExitUsage, u.output)
			}
			for _, w := range tc.want {
				if !strings.Contains(u.output, w) {
					t.Errorf("output does not say %q:\n%.2000s", w, u.output)
				}
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls", n)
			}
			// The race detector makes the child several times slower, and
			// its shadow memory counts in the peak RSS (some 1.3 GiB for any
			// input): the bounds hold for the product's build, which make
			// test checks with a run of this test without -race.
			if !raceEnabled && u.maxRSS > hostileMaxRSS {
				t.Errorf("peak RSS %d MiB, over %d MiB", u.maxRSS>>20, hostileMaxRSS>>20)
			}
			if !raceEnabled && u.cpu > hostileCPU {
				t.Errorf("%s of CPU, over %s", u.cpu, hostileCPU)
			}
		})
	}
}

// TestTangledPoliciesAreLetThroughWithAWarning: policies whose globs the
// check cannot decide within its bound are let through, and the run says
// which.
func TestTangledPoliciesAreLetThroughWithAWarning(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_Tz4kV9me")
	calls := tripwire(t)
	path := writeFile(t, "mid.yml", policiesYAML("org: o\napp-name: '*'\nstarted-machine-count: 1\n", globs(10000, "*-m%05d-*")))
	rc, err := loadConfig(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	var warned string
	for _, w := range rc.warnings {
		if strings.Contains(w, "not checked for reachability") {
			warned = w
		}
	}
	if !strings.Contains(warned, "mid.yml at line ") || !strings.Contains(warned, "more") {
		t.Errorf("no warning names the policies let through: %q", rc.warnings)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d API calls", n)
	}
}

// TestSignalBeforeTheFirstPassEndsAtOnce: a SIGINT or SIGTERM that comes
// before the first pass (the configuration read, nothing called yet) ends
// the command at once, with the shell's status of the signal; a real
// process, signalled while it is held between its configuration and its
// first pass.
func TestSignalBeforeTheFirstPassEndsAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		says string
	}{
		{syscall.SIGTERM, 143, "terminated signal received before the first pass: stopped, nothing was changed"},
		{syscall.SIGINT, 130, "interrupt signal received before the first pass: stopped, nothing was changed"},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			calls := tripwire(t)
			setenv(t, "FAS_API_TOKEN", "FlyV1 fm2_Sg3bN8qw")
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := exec.Command(os.Args[0], "-test.run=^TestMainProcess$")
			cmd.Env = childEnv(t, "FAS_TEST_MAIN_ARGS="+strings.Join([]string{"run", "--apps", "web", "--started-machine-count", "1"}, "\x1f"),
				"FAS_TEST_BLOCK_BEFORE_PASSES="+ready)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			waitFor(t, time.Minute, "the child to load its configuration", func() bool { _, err := os.Stat(ready); return err == nil })
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			// The child is held for a minute before its first pass:
			// ending within 20 s is ending at once, not after the hold.
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20s after %s:\n%s", tc.sig, out.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(out.String(), tc.says) {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out.String())
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("%d API calls", n)
			}
		})
	}
}
