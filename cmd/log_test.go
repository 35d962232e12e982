package cmd

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func TestLogFormats(t *testing.T) {
	t.Parallel()
	cfg := "interval: 15s\n" // a warning: interval is ignored
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, stderr string)
	}{
		{name: "text", check: func(t *testing.T, stderr string) {
			if !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, "interval is ignored") {
				t.Errorf("no text warning:\n%s", stderr)
			}
			if strings.Contains(stderr, "level=DEBUG") {
				t.Errorf("debug lines without --verbose:\n%s", stderr)
			}
		}},
		{name: "json", args: []string{"--log-format", "json"}, check: func(t *testing.T, stderr string) {
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, l := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("not a JSON line: %q: %v", l, err)
				}
			}
			if !strings.Contains(stderr, `"level":"WARN"`) {
				t.Errorf("no JSON warning:\n%s", stderr)
			}
		}},
		{name: "verbose", args: []string{"--verbose", "--log-format", "json"}, check: func(t *testing.T, stderr string) {
			var http, app, action int
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("not a JSON line: %q: %v", l, err)
				}
				switch rec["msg"] {
				case "http":
					http++
					if rec["level"] != "DEBUG" || rec["method"] == nil || rec["status"] == nil {
						t.Errorf("http line: %v", rec)
					}
				case "app":
					app++
				case "action":
					action++
				}
			}
			// GraphQL org and apps, one list per app, a lease, start and
			// release per start: many; at least one per app.
			if http < 4 || app != 2 || action != 1 {
				t.Errorf("%d http, %d app, %d action lines; want >= 4, 2, 1:\n%s", http, app, action, stderr)
			}
			if strings.Contains(stderr, "test-token") {
				t.Errorf("a token was logged:\n%s", stderr)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exitEnv(t, flytest.Options{})
			path := writeFile(t, "fas.yml", cfg)
			args := append([]string{"run", "--config", path, "--org", "exit-org", "--apps", "*", "--started-machine-count", "started + stopped"}, tc.args...)
			code, _, stderr := runCLI(t, args...)
			if code != ExitOK {
				t.Fatalf("exit code %d:\n%s", code, stderr)
			}
			tc.check(t, stderr)
		})
	}
}

func TestLogTransportVerboseMetrics(t *testing.T) {
	t.Parallel()
	prom := httptest.NewServer(&promfake.Handler{Values: map[string]float64{"steady": 1, "grow": 2}})
	defer prom.Close()
	exitEnv(t, flytest.Options{})
	code, _, stderr := runCLI(t, "run", "--apps", "steady", "--verbose",
		"--prometheus-address", prom.URL, "--prometheus-metric-name", "q", "--prometheus-token", "prom-secret",
		"--prometheus-query", `q{app="$APP_NAME"}`, "--started-machine-count", "q")
	if code != ExitOK {
		t.Fatalf("exit code %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "/api/v1/query") {
		t.Errorf("the metrics query is not logged:\n%s", stderr)
	}
	if strings.Contains(stderr, "prom-secret") {
		t.Errorf("the Prometheus token was logged:\n%s", stderr)
	}
}

// TestJSONLogDurations: durations are Go duration strings in both log
// formats, never JSON nanoseconds.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	for _, format := range []string{LogJSON, LogText} {
		var b strings.Builder
		newLogger(&b, format, false).Info("x", "elapsed", 10*time.Millisecond, "wait", 1500*time.Millisecond)
		for _, want := range map[string][]string{
			LogJSON: {`"elapsed":"10ms"`, `"wait":"1.5s"`},
			LogText: {"elapsed=10ms", "wait=1.5s"},
		}[format] {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: %q does not hold %q", format, b.String(), want)
			}
		}
	}

	// A verbose JSON run: every elapsed field of the http and app lines
	// reads as a duration.
	exitEnv(t, flytest.Options{})
	code, _, stderr := runCLI(t, "run", "--org", "exit-org", "--apps", "*", "--started-machine-count", "1", "--verbose", "--log-format", "json")
	if code != ExitOK {
		t.Fatalf("exit code %d:\n%s", code, stderr)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if v, ok := rec["elapsed"]; ok {
			n++
			if s, ok := v.(string); !ok {
				t.Errorf("elapsed %v (%T) in %s, want a duration string", v, v, l)
			} else if _, err := time.ParseDuration(s); err != nil {
				t.Errorf("elapsed %q: %v", s, err)
			}
		}
	}
	if n == 0 {
		t.Errorf("no elapsed field logged:\n%s", stderr)
	}
}

// TestVerbosePushIsLogged: with --verbose the Pushgateway's requests are
// logged like the other HTTP requests, without the URL's credentials.
func TestVerbosePushIsLogged(t *testing.T) {
	t.Parallel()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer gw.Close()
	exitEnv(t, flytest.Options{})
	pushURL := strings.Replace(gw.URL, "http://", "http://user:push-secret@", 1)
	code, _, stderr := runCLI(t, "run", "--apps", "steady", "--started-machine-count", "1", "--verbose", "--pushgateway", pushURL)
	if code != ExitOK {
		t.Fatalf("exit code %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "msg=http method=PUT url="+gw.URL+"/metrics/job/fly-autoscaler") {
		t.Errorf("the push is not logged:\n%s", stderr)
	}
	if strings.Contains(stderr, "push-secret") {
		t.Errorf("the gateway's password was logged:\n%s", stderr)
	}
}
