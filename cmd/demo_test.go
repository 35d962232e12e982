package cmd

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

var demoRow = regexp.MustCompile(`^((?:tenant|worker)-\d\d)\s`)

// demoSections splits the demo's output at its pass headings.
func demoSections(t *testing.T, out string) (intro string, passes []string) {
	t.Helper()
	parts := regexp.MustCompile(`(?m)^── \d/3 .*$`).Split(out, -1)
	if len(parts) != 4 {
		t.Fatalf("demo output has %d pass headings, want 3:\n%s", len(parts)-1, out)
	}
	return parts[0], parts[1:]
}

// demoResults returns the RESULT cell of each app row of one pass's table.
func demoResults(t *testing.T, section string) map[string]string {
	t.Helper()
	res := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		line = strings.TrimRight(line, " ")
		if m := demoRow.FindStringSubmatch(line); m != nil {
			switch {
			case strings.HasSuffix(line, "skipped: release in progress"):
				res[m[1]] = "skipped: release in progress"
			default:
				f := strings.Fields(line)
				res[m[1]] = f[len(f)-1]
			}
		}
	}
	return res
}

func TestDemo(t *testing.T) {
	t.Parallel()
	// The demo must contact nothing but its own loopback servers, and read
	// none of the operator's settings.
	calls := tripwire(t)
	setenv(t, "FAS_CONFIG", "/nonexistent/fly-autoscaler.yml")
	setenv(t, "FAS_EXCLUDE", "*")
	setenv(t, "FAS_DRY_RUN", "true")
	setenv(t, "FAS_OUTPUT", "json")
	setenv(t, "FAS_PROMETHEUS_ADDRESS", "http://192.0.2.1:9090")
	setenv(t, "FAS_API_TOKEN", "FlyV1 real-token-must-not-be-used")

	code, out, stderr := runCLI(t, "demo")
	if code != ExitOK {
		t.Fatalf("demo exit code %d, stderr:\n%s\nstdout:\n%s", code, stderr, out)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("demo made %d requests outside its own servers", n)
	}
	if stderr != "" {
		t.Errorf("demo wrote to stderr:\n%s", stderr)
	}
	if strings.Contains(out, "website") {
		t.Errorf("the app outside the patterns appears in the output:\n%s", out)
	}

	intro, passes := demoSections(t, out)
	if !strings.Contains(intro, "Prometheus-compatible") || !strings.Contains(intro, "fly-autoscaler run --org demo-org") {
		t.Errorf("intro does not say what runs:\n%s", intro)
	}
	// The intro's count of selected apps is the reports' count.
	if !strings.Contains(intro, "(13 apps, 12 of them matching tenant-*,worker-*)") {
		t.Errorf("intro does not count the apps the reports show (12 of 13):\n%s", intro)
	}
	for _, u := range regexp.MustCompile(`http://[^\s,]+`).FindAllString(intro, -1) {
		if pu, err := url.Parse(u); err != nil || pu.Hostname() != "127.0.0.1" {
			t.Errorf("demo server %s is not on 127.0.0.1", u)
		}
	}

	plan, run, again := passes[0], passes[1], passes[2]
	for name, sec := range map[string]string{"plan": plan, "run": run, "again": again} {
		if r := demoResults(t, sec); len(r) != 12 {
			t.Errorf("%s: %d app rows, want 12:\n%s", name, len(r), sec)
		}
	}
	if !strings.Contains(plan, "12 apps: 8 planned, 3 unchanged, 1 skipped, 0 failed") || !strings.Contains(plan, "(dry run)") {
		t.Errorf("dry run does not show the plan:\n%s", plan)
	}
	if !strings.Contains(run, "12 apps: 8 scaled, 3 unchanged, 1 skipped, 0 failed") {
		t.Errorf("run does not scale the 8 planned apps:\n%s", run)
	}
	for _, kind := range []string{"start", "stop", "create", "destroy"} {
		if !strings.Contains(run, kind+" ") {
			t.Errorf("run has no %s action:\n%s", kind, run)
		}
	}

	// Converged: every app unchanged or skipped, no planned change, no
	// count moving.
	for app, res := range demoResults(t, again) {
		want := "unchanged"
		if app == "tenant-05" {
			want = "skipped: release in progress"
		}
		if res != want {
			t.Errorf("second run: %s is %q, want %q", app, res, want)
		}
	}
	if !strings.Contains(again, "12 apps: 0 scaled, 11 unchanged, 1 skipped, 0 failed") {
		t.Errorf("second run's summary is not converged:\n%s", again)
	}
	if strings.Contains(again, "→") || strings.Contains(again, "planned") || strings.Contains(again, "(dry run)") {
		t.Errorf("second run still plans changes:\n%s", again)
	}
}

func TestDemoOrgIsValid(t *testing.T) {
	t.Parallel()
	org, err := flytest.ParseOrg(demoOrgJSON)
	if err != nil {
		t.Fatal(err)
	}
	srv := flytest.New(org, flytest.Options{})
	defer srv.Close()
	apps := srv.Apps()
	if len(apps) != len(demoQueueDepth) {
		t.Errorf("demo org has %d apps, demoQueueDepth %d", len(apps), len(demoQueueDepth))
	}
	for _, a := range apps {
		if _, ok := demoQueueDepth[a]; !ok {
			t.Errorf("app %s has no queue_depth", a)
		}
	}
}

// TestDemoMetricsSpeaksPrometheus queries the demo's endpoint with the
// same Prometheus client a run uses: per app and fleet-wide, GET and POST.
func TestDemoMetricsSpeaksPrometheus(t *testing.T) {
	t.Parallel()
	m, err := startDemoMetrics(map[string]float64{"a": 1.5, "b": 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.HasPrefix(m.URL, "http://127.0.0.1:") {
		t.Errorf("metrics endpoint at %s, want 127.0.0.1", m.URL)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, query string
		want        map[string]float64
	}{
		{"per app", `sum(depth{app="$APP_NAME"})`, map[string]float64{"a": 1.5, "b": 20}},
		{"fleet-wide", `sum by (app) (depth)`, map[string]float64{"a": 1.5, "b": 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := prometheus.New(prometheus.Config{Name: "depth", Address: m.URL, Query: tc.query})
			if err != nil {
				t.Fatal(err)
			}
			set, err := query.NewSet(p)
			if err != nil {
				t.Fatal(err)
			}
			set.Prefetch(ctx, []string{"a", "b", "missing"})
			for app, want := range tc.want {
				got, err := set.Collect(ctx, app)
				if err != nil {
					t.Fatalf("%s: %v", app, err)
				}
				if got["depth"] != want {
					t.Errorf("%s: depth %v, want %v", app, got["depth"], want)
				}
			}
			if _, err := set.Collect(ctx, "missing"); err == nil {
				t.Errorf("an app without a value collected no error")
			}
		})
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/query?query=up", http.StatusOK},
		{http.MethodGet, "/api/v1/query", http.StatusBadRequest},
		{http.MethodDelete, "/api/v1/query?query=up", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1/query_range?query=up", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, m.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
}

func TestShellCommand(t *testing.T) {
	t.Parallel()
	got := shellCommand([]string{"fly-autoscaler", "run", "--org", "o", "--apps", "a-*", "--query", `x{app="$APP_NAME"}`, "--q", "it's"})
	want := "fly-autoscaler run --org o \\\n    --apps 'a-*' \\\n    --query 'x{app=\"$APP_NAME\"}' \\\n    --q 'it'\\''s'"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestDemoFitsColumns: with COLUMNS=80 every line of the demo, its intro
// and its three reports, fits 80 columns, and the reports still count 12
// apps.
func TestDemoFitsColumns(t *testing.T) {
	t.Parallel()
	setenv(t, "COLUMNS", "80")
	code, out, stderr := runCLI(t, "demo")
	if code != ExitOK {
		t.Fatalf("demo exit code %d, stderr:\n%s", code, stderr)
	}
	for i, line := range strings.Split(out, "\n") {
		if w := lipgloss.Width(line); w > 80 {
			t.Errorf("line %d is %d columns wide: %q", i+1, w, line)
		}
	}
	if n := strings.Count(out, "12 apps: "); n != 3 {
		t.Errorf("%d reports of 12 apps, want 3:\n%s", n, out)
	}
}
