package promtest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServer(t *testing.T) {
	srv := Start(t, map[string]float64{"my-app-7": 3})

	// Values are served and scraped.
	r, err := srv.Query(`queue_depth{app="my-app-7"}`)
	if err != nil || len(r) != 1 || r[0].Value != 3 || r[0].Labels["job"] != jobName {
		t.Fatalf("Query = %+v, %v", r, err)
	}

	// Queries through URL are counted, by GET and by POST, with their text
	// and Authorization header; others are not.
	srv.ResetQueries()
	get, err := http.NewRequest(http.MethodGet, srv.URL()+"/api/v1/query?query=up", nil)
	if err != nil {
		t.Fatal(err)
	}
	get.Header.Set("Authorization", "Bearer t1")
	doOK(t, get)
	post, err := http.NewRequest(http.MethodPost, srv.URL()+"/api/v1/query",
		strings.NewReader(url.Values{"query": {"sum(queue_depth)"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	doOK(t, post)
	status, err := http.NewRequest(http.MethodGet, srv.URL()+"/-/ready", nil)
	if err != nil {
		t.Fatal(err)
	}
	doOK(t, status)

	if n := srv.Queries(); n != 2 {
		t.Errorf("Queries() = %d, want 2", n)
	}
	log := srv.QueryLog()
	want := []Request{
		{Method: "GET", Path: "/api/v1/query", Query: "up", Authorization: "Bearer t1"},
		{Method: "POST", Path: "/api/v1/query", Query: "sum(queue_depth)"},
	}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Errorf("QueryLog() = %+v, want %+v", log, want)
	}
	srv.ResetQueries()
	if n := srv.Queries(); n != 0 {
		t.Errorf("Queries() after reset = %d", n)
	}

	// Set, Delete and Sync.
	srv.Set("my-app-8", 4)
	srv.Delete("my-app-7")
	srv.Sync(t)
	r, err = srv.Query("queue_depth")
	if err != nil || len(r) != 1 || r[0].Labels["app"] != "my-app-8" || r[0].Value != 4 {
		t.Errorf("after Set and Delete: %+v, %v", r, err)
	}

	// Extra collectors on the registry.
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "extra_total", Help: "x"})
	srv.Registry().MustRegister(c)
	c.Add(5)
	srv.WaitFor(t, "extra_total", func(r Result) bool { return len(r) == 1 && r[0].Value == 5 })

	if srv.Queries() != 0 {
		t.Errorf("Sync, WaitFor and Query were counted: %d", srv.Queries())
	}
}

func TestStartConfig(t *testing.T) {
	srv := StartConfig(t, Config{Metric: "inflight", Label: "fly_app_name", Series: map[string]float64{"a": 1, "b": 2}})
	r, err := srv.Query(`sum by (fly_app_name) (inflight)`)
	if err != nil || len(r) != 2 {
		t.Fatalf("Query = %+v, %v", r, err)
	}
	if srv.Metric() != "inflight" || srv.Label() != "fly_app_name" {
		t.Errorf("Metric, Label = %q, %q", srv.Metric(), srv.Label())
	}
}

// recordTB records what Start asks of the test and stops Start there.
type recordTB struct {
	testing.TB
	fatal, skip string
}

type stopped struct{}

func (r *recordTB) Helper() {}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (r *recordTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (r *recordTB) Skip(args ...any) {
	r.skip = fmt.Sprint(args...)
	panic(stopped{})
}

func startRecorded(t *testing.T) *recordTB {
	r := &recordTB{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil {
				if _, ok := v.(stopped); !ok {
					panic(v)
				}
			}
		}()
		Start(r, nil)
	}()
	return r
}

func TestMissingBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("Start skips first in -short mode")
	}
	t.Setenv("PROMTEST_PROMETHEUS", t.TempDir()+"/no-such-prometheus")

	t.Setenv("CI", "")
	if r := startRecorded(t); r.skip == "" || r.fatal != "" || !strings.Contains(r.skip, "PROMTEST_PROMETHEUS") {
		t.Errorf("without CI: skip %q, fatal %q; want a skip", r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	if r := startRecorded(t); r.fatal == "" || !strings.Contains(r.fatal, "CI=true") {
		t.Errorf("CI=true: skip %q, fatal %q; want a fatal error", r.skip, r.fatal)
	}
}

func doOK(t *testing.T, req *http.Request) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", req.Method, req.URL, resp.Status)
	}
}
