package cmd

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/temporal"
	"github.com/urfave/cli/v2"
)

// tripwire is an HTTP server that counts every request: a configuration
// error must be reported before any API is called.
func tripwire(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "unexpected call", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	setenv(t, "FLY_API_BASE_URL", srv.URL)
	setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
	return &n
}

// runCLI runs Main with args, the Env of t (setenv) and its in-memory Fly
// API if any (inMemoryFly), and returns the exit code and the output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	s, out, errOut := BufferStreams()
	err := Main(testContext(t), append([]string{"fly-autoscaler"}, args...), envFor(t), s)
	if err != nil {
		fmt.Fprintln(s.Err, err.Error())
	}
	_ = s.Flush()
	return ExitCode(err), out.String(), errOut.String()
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	base := []string{"run", "--api-token", "tok", "--org", "my-org"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		{name: "no app", args: base[:3], want: []string{"--apps (FAS_APP_NAME)", "no app selected"}},
		{name: "wildcard without org", args: []string{"run", "--api-token", "t", "--apps", "my-app-*", "--started-machine-count", "1"},
			want: []string{"--org (FAS_ORG)", "required when --apps has a wildcard"}},
		{name: "wildcard without org from env", env: map[string]string{"FAS_APP_NAME": "my-app-*", "FAS_API_TOKEN": "t", "FAS_STARTED_MACHINE_COUNT": "1"},
			args: []string{"run"}, want: []string{"--org (FAS_ORG)"}},
		{name: "malformed glob", args: append(base, "--apps", "my-app-[", "--started-machine-count", "1"), want: []string{"--apps", "malformed glob", `"my-app-["`}},
		{name: "expression does not compile", args: append(base, "--apps", "a-*", "--started-machine-count", "ceil(queue_depth / 10"),
			want: []string{"--started-machine-count (FAS_STARTED_MACHINE_COUNT)", "does not compile"}},
		{name: "expression names an unknown metric", args: append(base, "--apps", "a-*", "--started-machine-count", "ceil(queue_depth / 10)"),
			want: []string{"--started-machine-count", "unknown name queue_depth"}},
		{name: "min without max", args: append(base, "--apps", "a-*", "--min-created-machine-count", "1"),
			want: []string{"--min-created-machine-count (FAS_MIN_CREATED_MACHINE_COUNT)", "--max-created-machine-count"}},
		{name: "single count with min and max", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--max-started-machine-count", "2"),
			want: []string{"--started-machine-count", "not both"}},
		{name: "initial state", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--initial-machine-state", "paused"),
			want: []string{"--initial-machine-state (FAS_INITIAL_MACHINE_STATE)", "started or stopped"}},
		{name: "bad duration", env: map[string]string{"FAS_TIMEOUT": "thirty"}, args: append(base, "--apps", "a-*", "--started-machine-count", "1"),
			want: []string{"--timeout (FAS_TIMEOUT)", `"thirty"`}},
		{name: "concurrency below 1", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--concurrency", "0"),
			want: []string{"--concurrency (FAS_CONCURRENCY)", "at least 1"}},
		{name: "missing token", args: []string{"run", "--org", "o", "--apps", "a-*", "--started-machine-count", "1"},
			want: []string{"--api-token (FAS_API_TOKEN)", "missing"}},
		{name: "no target", args: append(base, "--apps", "a-*"), want: []string{"no target set"}},
		{name: "unknown output", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--output", "yaml"), want: []string{"--output"}},
		{name: "unknown flag", args: append(base, "--bogus"), want: []string{"defined: --bogus"}},
		{name: "invalid app name", args: append(base, "--apps", "My_App", "--started-machine-count", "1"), want: []string{"--apps", `"My_App"`}},
		{name: "metric name shadows a fleet variable", args: append(base, "--apps", "a-*", "--started-machine-count", "1",
			"--prometheus-address", "http://127.0.0.1:1", "--prometheus-metric-name", "started", "--prometheus-query", "up"),
			want: []string{"--prometheus-metric-name (FAS_PROMETHEUS_METRIC_NAME)", `"started"`}},
		{name: "scale-down mode", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--scale-down", "destroy"),
			want: []string{"--scale-down (FAS_SCALE_DOWN)", "stop or suspend"}},
		{name: "max scale up", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--max-scale-up", "-1"),
			want: []string{"--max-scale-up (FAS_MAX_SCALE_UP)", "whole number"}},
		{name: "min started duration", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--min-started-duration", "5"),
			want: []string{"--min-started-duration (FAS_MIN_STARTED_DURATION)", "duration"}},
		{name: "max failure ratio", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--max-failure-ratio", "20%"),
			want: []string{"--max-failure-ratio (FAS_MAX_FAILURE_RATIO)", "0 to 1"}},
		{name: "log format", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--log-format", "xml"),
			want: []string{"--log-format (FAS_LOG_FORMAT)", "text or json"}},
		{name: "every", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--every", "often"),
			want: []string{"--every (FAS_EVERY)", `"often"`}},
		{name: "pushgateway url", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--pushgateway", "ftp://u:pw@host"),
			want: []string{"--pushgateway (FAS_PUSHGATEWAY_URL)", "http(s) URL"}},
		{name: "shard zero", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--shard", "0/4"),
			want: []string{"--shard (FAS_SHARD)", `"0/4" is not a shard`, "K is 0, shards are numbered 1 to 4", "use K/N"}},
		{name: "shard past the count", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--shard", "5/4"),
			want: []string{"--shard (FAS_SHARD)", `"5/4" is not a shard`, "K is 5"}},
		{name: "no shards", env: map[string]string{"FAS_SHARD": "4/0"}, args: append(base, "--apps", "a-*", "--started-machine-count", "1"),
			want: []string{"--shard (FAS_SHARD)", `"4/0" is not a shard`, "at least 1"}},
		{name: "shard not numbers", args: append(base, "--apps", "a-*", "--started-machine-count", "1", "--shard", "a/b"),
			want: []string{"--shard (FAS_SHARD)", `"a/b" is not a shard`, "whole numbers"}},
		{name: "prometheus without query", args: append(base, "--apps", "a-*", "--started-machine-count", "1",
			"--prometheus-address", "http://127.0.0.1:1", "--prometheus-metric-name", "q"),
			want: []string{"--prometheus-query (FAS_PROMETHEUS_QUERY): missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := tripwire(t)
			for k, v := range tt.env {
				setenv(t, k, v)
			}
			expectUsageError(t, calls, tt.want, tt.args...)
		})
	}
}

func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{name: "unknown key", yaml: "app-name: a\nstarted-machine-count: 1\napi-token: t\nbogus-key: 1\n", want: []string{`config.yml:4: unknown key "bogus-key"`}},
		{name: "min without max", yaml: "app-name: a\napi-token: t\nmin-started-machine-count: 1\n",
			want: []string{"config.yml:3: min-started-machine-count", "max-started-machine-count in"}},
		{name: "bad collector type", yaml: "app-name: a\napi-token: t\nstarted-machine-count: 1\nmetric-collectors:\n  - type: statsd\n    metric-name: q\n",
			want: []string{"metric-collectors[0]", `"statsd"`, "use prometheus, temporal, nats or kafka"}},
		{name: "nats without url", yaml: "app-name: a\napi-token: t\nstarted-machine-count: 1\nmetric-collectors:\n  - type: nats\n    metric-name: q\n",
			want: []string{"metric-collectors[0]", "url: empty"}},
		{name: "key of another type", yaml: "app-name: a\napi-token: t\nstarted-machine-count: q\nmetric-collectors:\n  - {type: kafka, metric-name: q, brokers: 'k:9092', topic: t, stream: s}\n",
			want: []string{"metric-collectors[0]", "stream does not apply to type kafka"}},
		{name: "duplicate metric", yaml: "app-name: a\napi-token: t\nstarted-machine-count: q\nmetric-collectors:\n" +
			"  - {type: prometheus, metric-name: q, address: 'http://127.0.0.1:1', query: up}\n" +
			"  - {type: prometheus, metric-name: q, address: 'http://127.0.0.1:2', query: up}\n",
			want: []string{"metric-collectors[1]", `"q" is already defined by metric-collectors[0] (line 5)`}},
		{name: "collector without address", yaml: "app-name: a\napi-token: t\nstarted-machine-count: q\nmetric-collectors:\n  - {type: prometheus, metric-name: q, query: up}\n",
			want: []string{"metric-collectors[0]", "address"}},
		{name: "several documents", yaml: "app-name: a\napi-token: t\nstarted-machine-count: 1\n---\nbogus: 1\n", want: []string{"more than one YAML document"}},
		{name: "bad shard", yaml: "app-name: a\napi-token: t\nstarted-machine-count: 1\nshard: 5/4\n", want: []string{"config.yml:4: shard: ", `"5/4" is not a shard`}},
		{name: "bad timeout", yaml: "app-name: a\napi-token: t\nstarted-machine-count: 1\ntimeout: soon\n", want: []string{"config.yml:4: timeout: ", `"soon"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := tripwire(t)
			path := writeFile(t, "config.yml", tt.yaml)
			expectUsageError(t, calls, tt.want, "run", "--config", path)
		})
	}
}

// expectUsageError runs the command line and checks that it exits 2 with an
// error mentioning every want, before any API call.
func expectUsageError(t *testing.T, calls *atomic.Int64, want []string, args ...string) {
	t.Helper()
	code, _, stderr := runCLI(t, args...)
	if code != ExitUsage {
		t.Errorf("exit code = %d, want %d; stderr: %s", code, ExitUsage, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("error %q does not mention %q", strings.TrimSpace(stderr), w)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d API calls made before the configuration was validated", n)
	}
}

func TestSplitList(t *testing.T) {
	t.Parallel()
	got := splitList("my-app-*, {a,b}-x", "c")
	want := []string{"my-app-*", "{a,b}-x", "c"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitList = %q, want %q", got, want)
	}
}

func TestExpandEnvKeepsAppName(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "secret-token")
	setenv(t, "REGION", "ord")
	got := envFor(t).expand("tok=${FAS_API_TOKEN} r=$REGION app=$APP_NAME app2=${APP_NAME}")
	if want := "tok=secret-token r=ord app=$APP_NAME app2=${APP_NAME}"; got != want {
		t.Errorf("expand = %q, want %q", got, want)
	}
}

func TestOriginalReferenceFileLoads(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "fly-autoscaler.yml", `app-name: "target-app"
regions: ["iad", "ord", "sjc"]
process-group: "app"
created-machine-count: "ceil(queue_depth / 10)"
started-machine-count: "ceil(queue_depth / 10)"
interval: "15s"
app-list-refresh-interval: "1m"
api-token: "${FAS_TEST_TOKEN}"
verbose: true
concurrency: 4
timeout: 10s
metric-collectors:
  - type: "prometheus"
    metric-name: "queue_depth"
    address: "https://api.fly.io/prometheus/MY_ORG"
    query: 'sum(queue_depth{app="$APP_NAME"})'
    token: "FlyV1 ..."
`)
	setenv(t, "FAS_TEST_TOKEN", "FlyV1 fm2_from-env")
	var rc *runConfig
	app := newApp(&Streams{Out: &strings.Builder{}, Err: &strings.Builder{}}, envFor(t))
	for _, c := range app.Commands {
		if c.Name == "run" {
			c.Action = func(c *cli.Context) (err error) { rc, err = loadRunConfig(c, nil); return err }
		}
	}
	err := runApp(context.Background(), app, []string{"fly-autoscaler", "run", "--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if rc.token != "FlyV1 fm2_from-env" || rc.scale.Concurrency != 4 || rc.scale.Timeout != 10*time.Second || !rc.verbose {
		t.Errorf("token %q concurrency %d timeout %v verbose %v", rc.token, rc.scale.Concurrency, rc.scale.Timeout, rc.verbose)
	}
	if got := strings.Join(rc.scale.Policy.Regions, ","); got != "iad,ord,sjc" {
		t.Errorf("regions %q", got)
	}
	if proms := configsOf[prometheus.Config](rc); len(rc.metrics) != 1 || len(proms) != 1 || proms[0].Query != `sum(queue_depth{app="$APP_NAME"})` {
		t.Errorf("collectors %v: the query must keep $APP_NAME", rc.metrics)
	}
	if len(rc.warnings) != 2 {
		t.Errorf("warnings %q, want one each for interval and app-list-refresh-interval", rc.warnings)
	}
	// The original's Temporal collector loads, with its keys as they were.
	temporalFile := writeFile(t, "temporal.yml", "app-name: a\napi-token: t\nstarted-machine-count: w\nmetric-collectors:\n"+
		"  - {type: temporal, metric-name: w, address: 'localhost:7233', namespace: '${FAS_TEST_NS}', query: 'WorkflowType=\"$APP_NAME\"'}\n")
	setenv(t, "FAS_TEST_NS", "jobs-ns")
	rc, err = loadConfig(t, "--config", temporalFile)
	if err != nil {
		t.Fatal(err)
	}
	if tcs := configsOf[temporal.Config](rc); len(rc.metrics) != 1 || len(tcs) != 1 || tcs[0].Namespace != "jobs-ns" || tcs[0].Query != `WorkflowType="$APP_NAME"` {
		t.Errorf("temporal collectors %v: want the namespace expanded and the query kept", rc.metrics)
	}
}

// loadConfig runs "fly-autoscaler run args..." up to loadRunConfig and
// returns its result: the configuration, or the error main would print.
func loadConfig(t *testing.T, args ...string) (*runConfig, error) {
	t.Helper()
	var rc *runConfig
	app := newApp(&Streams{Out: &strings.Builder{}, Err: &strings.Builder{}}, envFor(t))
	for _, c := range app.Commands {
		if c.Name == "run" {
			c.Action = func(c *cli.Context) (err error) { rc, err = loadRunConfig(c, nil); return err }
		}
	}
	err := runApp(context.Background(), app, append([]string{"fly-autoscaler", "run"}, args...))
	return rc, err
}

// TestEmptyVariablesFallBackToFile: urfave/cli counts FAS_X= as set; an
// empty value must not hide the file's.
func TestEmptyVariablesFallBackToFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "config.yml", `app-name: "*"
org: my-org
exclude: b-*
api-token: FlyV1 fm2_from-file
started-machine-count: "2"
regions: [ord, iad]
timeout: 10s
concurrency: 4
scale-down: suspend
verbose: true
`)
	for _, v := range []string{"FAS_APP_NAME", "FAS_ORG", "FAS_EXCLUDE", "FAS_API_TOKEN", "FLY_API_TOKEN", "FAS_STARTED_MACHINE_COUNT",
		"FAS_REGIONS", "FAS_TIMEOUT", "FAS_CONCURRENCY", "FAS_SCALE_DOWN", "FAS_VERBOSE", "FAS_LOG_FORMAT"} {
		setenv(t, v, "")
	}
	rc, err := loadConfig(t, "--config", path)
	if err != nil {
		t.Fatalf("empty variables hid the file's values: %v", err)
	}
	if rc.scale.Org != "my-org" {
		t.Errorf("org %q, want the file's my-org", rc.scale.Org)
	}
	if !rc.scale.Selector.Match("a") || rc.scale.Selector.Match("b-1") {
		t.Errorf("the file's app-name * and exclude b-* are not applied")
	}
	if rc.token != "FlyV1 fm2_from-file" {
		t.Errorf("token %q, want the file's", rc.token)
	}
	if rc.scale.Expressions.MinStarted == nil {
		t.Errorf("no started target: the file's started-machine-count was hidden")
	}
	if got := strings.Join(rc.scale.Policy.Regions, ","); got != "ord,iad" {
		t.Errorf("regions %q, want ord,iad", got)
	}
	if rc.scale.Timeout != 10*time.Second || rc.scale.Concurrency != 4 || !rc.verbose {
		t.Errorf("timeout %v, concurrency %d, verbose %v; want the file's 10s, 4, true", rc.scale.Timeout, rc.scale.Concurrency, rc.verbose)
	}
	if rc.logFormat != LogText {
		t.Errorf("log format %q, want the default text", rc.logFormat)
	}

	// An error about a value from the file names the file's key, not the
	// empty variable.
	bad := writeFile(t, "bad.yml", "app-name: a\napi-token: t\nstarted-machine-count: 1\ntimeout: soon\n")
	_, err = loadConfig(t, "--config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+":4: timeout: ") {
		t.Errorf("error %v, want it to name timeout at %s:4", err, bad)
	}
}

// TestStrictNumbers: --max-failure-ratio and --concurrency read the whole
// value, nothing but a number.
func TestStrictNumbers(t *testing.T) {
	t.Parallel()
	base := []string{"--api-token", "tok", "--apps", "a", "--started-machine-count", "1"}
	for _, tc := range []struct {
		flag, val string
		ok        bool
	}{
		{"max-failure-ratio", "NaN", false},
		{"max-failure-ratio", "nan", false},
		{"max-failure-ratio", "0.2abc", false},
		{"max-failure-ratio", "Inf", false},
		{"max-failure-ratio", "+Inf", false},
		{"max-failure-ratio", "1.5", false},
		{"max-failure-ratio", "-0.1", false},
		{"max-failure-ratio", "0.2 0.3", false},
		{"max-failure-ratio", "0.2", true},
		{"max-failure-ratio", "0", true},
		{"max-failure-ratio", "1", true},
		{"concurrency", "4abc", false},
		{"concurrency", "4.0", false},
		{"concurrency", "4 5", false},
		{"concurrency", "0x10", false},
		{"concurrency", "0", false},
		{"concurrency", "8", true},
	} {
		t.Run(tc.flag+"="+tc.val, func(t *testing.T) {
			rc, err := loadConfig(t, append(base, "--"+tc.flag, tc.val)...)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.flag == "max-failure-ratio" && fmt.Sprint(rc.scale.MaxFailureRatio) != tc.val {
					t.Errorf("ratio %v, want %s", rc.scale.MaxFailureRatio, tc.val)
				}
				return
			}
			if ExitCode(err) != ExitUsage || !strings.Contains(fmt.Sprint(err), "--"+tc.flag) {
				t.Errorf("accepted or wrong error: %v (rc %+v)", err, rc)
			}
		})
	}
}

// TestMalformedGlobNamesItsOption: a bad --exclude pattern is blamed on
// --exclude (or the file's exclude key), not on --apps.
func TestMalformedGlobNamesItsOption(t *testing.T) {
	t.Parallel()
	base := []string{"--api-token", "tok", "--org", "o", "--started-machine-count", "1"}
	path := writeFile(t, "config.yml", "org: o\napi-token: tok\nstarted-machine-count: 1\napp-name: a-*\nexclude: b-[\n")
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		want, not string
	}{
		{"exclude flag", nil, append(base, "--apps", "a-*", "--exclude", "b-["), "--exclude (FAS_EXCLUDE): malformed glob", "--apps"},
		{"exclude variable", map[string]string{"FAS_EXCLUDE": "ok-*,b-["}, append(base, "--apps", "a-*"), "--exclude (FAS_EXCLUDE): malformed glob", "--apps"},
		{"exclude key", nil, []string{"--config", path}, path + ":5: exclude: malformed glob", "app-name"},
		{"apps flag", nil, append(base, "--apps", "a-[", "--exclude", "b-*"), "--apps (FAS_APP_NAME): malformed glob", "--exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			_, err := loadConfig(t, tc.args...)
			msg := fmt.Sprint(err)
			if ExitCode(err) != ExitUsage || !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.not) {
				t.Errorf("error %q: want %q, without %q", msg, tc.want, tc.not)
			}
		})
	}
}

// TestConfigFileYAMLErrors: yaml.v3's errors are translated into
// "file:line: ..." messages that name keys, suggest the nearest known key
// and never quote a value.
func TestConfigFileYAMLErrors(t *testing.T) {
	t.Parallel()
	head := "org: o\napi-token: t\nstarted-machine-count: 1\n"
	for _, tc := range []struct {
		name, yaml string
		want       string
	}{
		{"key typo", head + "min-create-machine-count: 1\n",
			`config.yml:4: unknown key "min-create-machine-count" (did you mean "min-created-machine-count"?)`},
		{"unknown key, nothing close", head + "bogus-key: 1\n", `config.yml:4: unknown key "bogus-key"` + "\n"},
		{"collector key typo", head + "metric-collectors:\n  - type: prometheus\n    adress: http://x\n",
			`config.yml:6: unknown key "adress" of a metric collector (did you mean "address"?)`},
		{"wrong type", head + "verbose: [a]\n", `config.yml:4: verbose: want true or false, not a list`},
		{"collectors not a list", head + "metric-collectors: {type: prometheus}\n", `config.yml:4: metric-collectors: want a list of metric collectors, not a mapping`},
		{"app-name a mapping", head + "app-name: {a: b}\n", `config.yml:4: want a name, a comma-separated string of names or a list of names, not a mapping`},
		{"syntax", head + "app-name: [a\n", `config.yml:`},
		{"missing collector type", head + "app-name: a\nmetric-collectors:\n  - {metric-name: q, address: 'http://x', query: up}\n",
			`config.yml:6: metric-collectors[0]: `},
		{"missing collector type says so", head + "app-name: a\nmetric-collectors:\n  - {metric-name: q, address: 'http://x', query: up}\n",
			`: type: missing: use prometheus`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			path := writeFile(t, "config.yml", tc.yaml)
			code, _, stderr := runCLI(t, "run", "--config", path)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, error %q; want %d and %q", code, stderr, ExitUsage, tc.want)
			}
			if strings.Contains(stderr, "cmd.") || strings.Contains(stderr, "unmarshal") {
				t.Errorf("a raw yaml.v3 error: %q", stderr)
			}
			if calls.Load() != 0 {
				t.Errorf("API called")
			}
		})
	}

	// A value in the wrong place is not quoted: it may be a token.
	path := writeFile(t, "config.yml", head+"verbose: FlyV1 fm2_literal-secret\n")
	code, _, stderr := runCLI(t, "run", "--config", path)
	if code != ExitUsage || strings.Contains(stderr, "fm2_literal-secret") || !strings.Contains(stderr, "config.yml:4: verbose: want true or false, not a string") {
		t.Errorf("exit %d: %q", code, stderr)
	}
}

// TestConfigFileLists: app-name, exclude and regions take a YAML list or
// a comma-separated string.
func TestConfigFileLists(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml string }{
		{"strings", "app-name: 'a-*, {b,c}-x'\nexclude: 'a-1,a-2'\nregions: 'ord, iad'\n"},
		{"lists", "app-name: [a-*, '{b,c}-x']\nexclude: [a-1, a-2]\nregions: [ord, iad]\n"},
		{"block lists", "app-name:\n  - a-*\n  - '{b,c}-x'\nexclude:\n  - a-1\n  - a-2\nregions:\n  - ord\n  - iad\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "config.yml", "org: o\napi-token: t\nstarted-machine-count: 1\n"+tc.yaml)
			rc, err := loadConfig(t, "--config", path)
			if err != nil {
				t.Fatal(err)
			}
			sel := rc.scale.Selector
			for app, want := range map[string]bool{"a-0": true, "a-1": false, "a-2": false, "b-x": true, "c-x": true, "d-x": false} {
				if sel.Match(app) != want {
					t.Errorf("Match(%s) = %v, want %v", app, !want, want)
				}
			}
			if got := strings.Join(rc.scale.Policy.Regions, ","); got != "ord,iad" {
				t.Errorf("regions %q", got)
			}
		})
	}
}

// TestExpandEnvDollarDollar: $$ writes a literal $ in expanded values;
// queries are not expanded at all.
func TestExpandEnvDollarDollar(t *testing.T) {
	t.Parallel()
	setenv(t, "FAS_API_TOKEN", "secret-token")
	setenv(t, "HOME", "/home/x")
	got := envFor(t).expand("pa$$word $${HOME} $$FAS_API_TOKEN $$$HOME $5 $$APP_NAME")
	if want := "pa$word ${HOME} $FAS_API_TOKEN $/home/x $5 $APP_NAME"; got != want {
		t.Errorf("expand = %q, want %q", got, want)
	}

	resetEnv(t)
	path := writeFile(t, "config.yml", `app-name: a
api-token: "FlyV1 pa$$word"
started-machine-count: q
metric-collectors:
  - type: prometheus
    metric-name: q
    address: http://127.0.0.1:1
    query: 'sum(q{app="$APP_NAME", x="$$"})'
`)
	rc, err := loadConfig(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if rc.token != "FlyV1 pa$word" {
		t.Errorf("token %q, want FlyV1 pa$word", rc.token)
	}
	if q := configsOf[prometheus.Config](rc)[0].Query; q != `sum(q{app="$APP_NAME", x="$$"})` {
		t.Errorf("query %q: a query is not expanded", q)
	}
}

// TestPrometheusFlagErrors: errors about the collector of the
// --prometheus-* flags (FAS_PROMETHEUS_*) name the flag and its variable,
// never a YAML key, also when a config file is given.
func TestPrometheusFlagErrors(t *testing.T) {
	t.Parallel()
	file := "app-name: a\napi-token: tok\nstarted-machine-count: 1\n"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no metric name", map[string]string{"FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9", "FAS_PROMETHEUS_QUERY": "up"},
			"--prometheus-metric-name (FAS_PROMETHEUS_METRIC_NAME): missing: the name the expressions use for the query's value"},
		{"no address", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "q", "FAS_PROMETHEUS_QUERY": "up"},
			"--prometheus-address (FAS_PROMETHEUS_ADDRESS): missing: "},
		{"no query", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "q", "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9"},
			"--prometheus-query (FAS_PROMETHEUS_QUERY): missing: "},
		{"bad metric name", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "queue-depth", "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9", "FAS_PROMETHEUS_QUERY": "up"},
			"--prometheus-metric-name (FAS_PROMETHEUS_METRIC_NAME): want letters, digits and underscores"},
		{"bad address", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "q", "FAS_PROMETHEUS_ADDRESS": "ftp://127.0.0.1:9", "FAS_PROMETHEUS_QUERY": "up"},
			"--prometheus-address (FAS_PROMETHEUS_ADDRESS): ftp://127.0.0.1:9: want an http or https URL"},
		{"bad app label", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "q", "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9", "FAS_PROMETHEUS_QUERY": "up",
			"FAS_PROMETHEUS_APP_LABEL": "app-name"}, "--prometheus-app-label (FAS_PROMETHEUS_APP_LABEL): "},
		{"bad on-empty", map[string]string{"FAS_PROMETHEUS_METRIC_NAME": "q", "FAS_PROMETHEUS_ADDRESS": "http://127.0.0.1:9", "FAS_PROMETHEUS_QUERY": "up",
			"FAS_PROMETHEUS_ON_EMPTY": "skip"}, "--prometheus-on-empty (FAS_PROMETHEUS_ON_EMPTY): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, withFile := range []bool{false, true} {
				resetEnv(t)
				calls := tripwire(t)
				for k, v := range tc.env {
					setenv(t, k, v)
				}
				args := []string{"run", "--api-token", "tok", "--apps", "a", "--started-machine-count", "1"}
				if withFile {
					args = []string{"run", "--config", writeFile(t, "config.yml", file)}
				}
				code, _, stderr := runCLI(t, args...)
				if code != ExitUsage || !strings.Contains(stderr, tc.want) {
					t.Errorf("file %v: exit %d, error %q; want %q", withFile, code, strings.TrimSpace(stderr), tc.want)
				}
				for _, yamlWords := range []string{"metric-name:", "prometheus:", " in "} {
					if strings.Contains(stderr, yamlWords) {
						t.Errorf("file %v: error %q speaks of YAML keys (%q)", withFile, strings.TrimSpace(stderr), yamlWords)
					}
				}
				if calls.Load() != 0 {
					t.Errorf("API called")
				}
			}
		})
	}
}

// TestConfigErrorsRedactSecrets: a secret that ${VAR} expansion or a
// mistake put into another option is never echoed by a configuration error.
func TestConfigErrorsRedactSecrets(t *testing.T) {
	t.Parallel()
	const (
		apiToken  = "FlyV1 fm2_api-secret-value,fm2_second-part"
		promToken = "prom-secret-value"
		fileToken = "file-token-secret"
	)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		yaml    string
		args    []string
		want    string
		secrets []string
	}{
		{name: "expression from FAS_API_TOKEN", env: map[string]string{"FAS_API_TOKEN": apiToken},
			yaml: "app-name: a\nstarted-machine-count: ${FAS_API_TOKEN}\n", want: "does not compile",
			secrets: []string{apiToken, "fm2_api-secret-value", "fm2_second-part"}},
		{name: "address from FAS_PROMETHEUS_TOKEN", env: map[string]string{"FAS_API_TOKEN": apiToken, "FAS_PROMETHEUS_TOKEN": promToken},
			yaml: "app-name: a\nstarted-machine-count: q\nmetric-collectors:\n  - {type: prometheus, metric-name: q, query: up, address: '${FAS_PROMETHEUS_TOKEN}'}\n",
			want: "address", secrets: []string{promToken}},
		{name: "address from a collector token", env: map[string]string{"FAS_API_TOKEN": apiToken, "MY_TOKEN": "collector-secret"},
			yaml: "app-name: a\nstarted-machine-count: q\nmetric-collectors:\n  - {type: prometheus, metric-name: q, query: up, token: '${MY_TOKEN}', address: 'x${MY_TOKEN}'}\n",
			want: "address", secrets: []string{"collector-secret"}},
		{name: "YAML api-token in an app name", yaml: "api-token: " + fileToken + "\napp-name: a\nstarted-machine-count: 1\norg: " + fileToken + "\nexclude: '" + fileToken + "['\n",
			want: "malformed glob", secrets: []string{fileToken}},
		{name: "FLY_API_TOKEN as --apps", env: map[string]string{"FLY_API_TOKEN": "FlyV1 fly-token-secret"},
			args: []string{"--apps", "FlyV1 fly-token-secret", "--started-machine-count", "1"}, want: "invalid app name", secrets: []string{"fly-token-secret"}},
		{name: "--prometheus-token flag", env: map[string]string{"FAS_API_TOKEN": apiToken},
			args: []string{"--apps", "a", "--prometheus-token", "flag-prom-secret", "--prometheus-metric-name", "q", "--prometheus-query", "up",
				"--prometheus-address", "flag-prom-secret", "--started-machine-count", "q"}, want: "--prometheus-address", secrets: []string{"flag-prom-secret"}},
		{name: "--api-token flag", args: []string{"--api-token", "flag-api-secret", "--apps", "a", "--started-machine-count", "flag-api-secret +"},
			want: "does not compile", secrets: []string{"flag-api-secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			args := append([]string{"run"}, tc.args...)
			if tc.yaml != "" {
				args = append(args, "--config", writeFile(t, "config.yml", tc.yaml))
			}
			code, _, stderr := runCLI(t, args...)
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, error %q; want %d and %q", code, strings.TrimSpace(stderr), ExitUsage, tc.want)
			}
			for _, sec := range tc.secrets {
				if strings.Contains(stderr, sec) {
					t.Errorf("the error holds the secret %q: %s", sec, stderr)
				}
			}
			if !strings.Contains(stderr, "REDACTED") {
				t.Errorf("nothing redacted: %s", stderr)
			}
			if calls.Load() != 0 {
				t.Errorf("API called")
			}
		})
	}

	// A token shorter than redact.MinSecretLen is redacted where it stands
	// as a whole word, and only there: "apps" and "my-app-*" stay.
	tripwire(t)
	code, _, stderr := runCLI(t, "run", "--api-token", "app", "--org", "o")
	if code != ExitUsage || !strings.Contains(stderr, "--apps (FAS_APP_NAME): no REDACTED selected: name an REDACTED or a pattern such as 'my-app-*'") {
		t.Errorf("exit %d: %q", code, stderr)
	}
}

func TestEmptyFirstVariableDoesNotHideTheSecond(t *testing.T) {
	t.Parallel()
	calls := tripwire(t)
	setenv(t, "FAS_API_TOKEN", "")
	setenv(t, "FLY_API_TOKEN", "FlyV1 fm2_from-fly-api-token")
	// The token is found: the run gets past validation to the (tripwire) API.
	code, _, stderr := runCLI(t, "run", "--apps", "app-a", "--started-machine-count", "1")
	if strings.Contains(stderr, "missing Fly API token") || calls.Load() == 0 {
		t.Errorf("exit %d, %d calls: FLY_API_TOKEN was not used: %s", code, calls.Load(), stderr)
	}
}

func TestConfigErrorsRedactTokenPieces(t *testing.T) {
	t.Parallel()
	tripwire(t)
	tok := "FlyV1 fm2_lJPECAAAAAAAAMTIxqfK3ZeBPabcd+xyzPIECEAWEFGHijkl/zz==,fm2_secondPIECEofTHEtoken"
	setenv(t, "FAS_API_TOKEN", tok)
	path := writeFile(t, "c.yml", "app-name: a\napi-token: ${FAS_API_TOKEN}\nstarted-machine-count: ${FAS_API_TOKEN}\n")
	code, out, stderr := runCLI(t, "run", "--config", path)
	if code != ExitUsage {
		t.Errorf("exit %d", code)
	}
	for _, piece := range []string{"lJPECAAAAAAAAMTIxqfK3ZeBPabcd", "xyzPIECEAWEFGHijkl", "secondPIECEofTHEtoken"} {
		if strings.Contains(out+stderr, piece) {
			t.Errorf("a piece of the token (%s) appears: %s", piece, stderr)
		}
	}
}

// TestConfigErrorsNeverQuoteValues: an error about the config file names
// the file, the line and the key, never the value: a token given a tag, a
// list or a mapping, or pasted in key position, is not printed.
func TestConfigErrorsNeverQuoteValues(t *testing.T) {
	t.Parallel()
	const token = "fo1_Zx8cVb7nM6qW5eR4"
	head := "app-name: a\nstarted-machine-count: 1\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"api-token !!int", head + "api-token: !!int " + token + "\n", "config.yml:3: api-token: want a single value, not a value tagged !!int"},
		{"api-token !!seq", head + "api-token: !!seq " + token + "\n", "config.yml:3: api-token: want a single value, not a value tagged !!seq"},
		{"api-token list", head + "api-token: [" + token + "]\n", "config.yml:3: api-token: want a single value, not a list"},
		{"api-token mapping", head + "api-token: {" + token + ": x}\n", "config.yml:3: api-token: want a single value, not a mapping"},
		{"collector password !!binary", head + "metric-collectors:\n  - type: kafka\n    password: !!binary " + token + "\n",
			"config.yml:5: password: want a single value, not a value tagged !!binary"},
		{"concurrency !!float", head + "concurrency: !!float " + token + "\n", "config.yml:3: concurrency: the value is not a valid !!float"},
		{"token as a key", head + token + ": x\n", "config.yml:3: unknown key (not shown"},
		{"token as a key with a space", head + "'FlyV1 " + token + "': x\n", "config.yml:3: unknown key (not shown"},
		{"token as a policy key", head + "policies:\n  - name: p\n    apps: [a]\n    " + token + ": 1\n", "config.yml:6: unknown key of a policy (not shown"},
		{"typo still quoted", head + "verbos: true\n", `config.yml:3: unknown key "verbos" (did you mean "verbose"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			code, out, stderr := runCLI(t, "run", "--api-token", "FlyV1 fm2_other", "--config", writeFile(t, "config.yml", tc.yaml))
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, %q; want %d and %q", code, stderr, ExitUsage, tc.want)
			}
			if strings.Contains(out+stderr, token[4:10]) {
				t.Errorf("the error holds the value: %s", stderr)
			}
			if calls.Load() != 0 {
				t.Errorf("API called")
			}
		})
	}
}
