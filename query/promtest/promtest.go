// Package promtest runs a real Prometheus server for tests, in the spirit of
// net/http/httptest.
//
// Start serves an exporter on 127.0.0.1 with one gauge vector (by default
// queue_depth{app="..."}) whose values the test sets, starts the prometheus
// binary scraping it every second, and waits until Prometheus answers with
// the values. Queries reach Prometheus through a small counting proxy, so a
// test can assert how many queries a run made:
//
//	srv := promtest.Start(t, map[string]float64{"my-app-7": 3})
//	// point the code under test at srv.URL()
//	if n := srv.Queries(); n != 1 { ... }
//
// The prometheus binary is looked up in $PROMTEST_PROMETHEUS, then $PATH,
// then /usr/bin/prometheus (Debian: apt-get install prometheus). Without it
// the test is skipped, or fails when CI=true so that CI cannot pass by
// skipping. Start skips the test under -short: a real server takes seconds.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of Config.
const (
	DefaultMetric         = "queue_depth"
	DefaultLabel          = "app"
	DefaultScrapeInterval = time.Second
	DefaultStartTimeout   = 30 * time.Second
)

// jobName is the scrape job of the exporter: its series carry job="promtest".
const jobName = "promtest"

// Config configures StartConfig.
type Config struct {
	// Metric is the name of the gauge vector (default DefaultMetric).
	Metric string
	// Label is the gauge's one label, naming the app (default DefaultLabel).
	Label string
	// Series are the initial values, by label value (app name).
	Series map[string]float64
	// ScrapeInterval is Prometheus's scrape interval (default 1s).
	ScrapeInterval time.Duration
	// StartTimeout bounds the start and every wait for values (default 30s).
	StartTimeout time.Duration
}

// Server is a running Prometheus scraping a test exporter. Its methods are
// safe for concurrent use.
type Server struct {
	cfg      Config
	bin      string
	reg      *prometheus.Registry
	gauge    *prometheus.GaugeVec
	exporter *httptest.Server
	proxy    *httptest.Server
	direct   string // Prometheus's own base URL
	stderr   *lockedBuffer

	mu     sync.Mutex
	values map[string]float64
	log    []Request
}

// Request is one query that reached Prometheus through the proxy.
type Request struct {
	// Method is GET or POST.
	Method string
	// Path is the API path, such as /api/v1/query.
	Path string
	// Query is the PromQL expression (the query parameter or form field).
	Query string
	// Authorization is the Authorization header the client sent.
	Authorization string
}

// Binary returns the path of the prometheus binary: $PROMTEST_PROMETHEUS,
// else prometheus in $PATH, else /usr/bin/prometheus.
func Binary() (string, error) {
	if p := os.Getenv("PROMTEST_PROMETHEUS"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PROMTEST_PROMETHEUS: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/prometheus"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("prometheus binary not found in $PATH or /usr/bin/prometheus (install it with: apt-get install -y prometheus)")
}

// Start starts Prometheus with the gauge DefaultMetric{DefaultLabel=app} set
// to series[app] for every app, and returns once Prometheus answers with
// those values. Everything stops when the test ends.
func Start(t testing.TB, series map[string]float64) *Server {
	t.Helper()
	return StartConfig(t, Config{Series: series})
}

// StartConfig is Start with a Config.
func StartConfig(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := requireBinary(t, "Prometheus", Binary)
	if cfg.Metric == "" {
		cfg.Metric = DefaultMetric
	}
	if cfg.Label == "" {
		cfg.Label = DefaultLabel
	}
	if cfg.ScrapeInterval <= 0 {
		cfg.ScrapeInterval = DefaultScrapeInterval
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}

	s := &Server{
		cfg:    cfg,
		bin:    bin,
		reg:    prometheus.NewRegistry(),
		stderr: &lockedBuffer{},
		values: map[string]float64{},
	}
	s.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: cfg.Metric,
		Help: "Test values set by promtest.",
	}, []string{cfg.Label})
	s.reg.MustRegister(s.gauge)
	for app, v := range cfg.Series {
		s.gauge.WithLabelValues(app).Set(v)
		s.values[app] = v
	}

	s.exporter = newLocalServer(t, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	t.Cleanup(s.exporter.Close)

	dir := t.TempDir()
	s.startPrometheus(t, dir)

	s.proxy = newLocalServer(t, s.proxyHandler(t))
	t.Cleanup(s.proxy.Close)

	s.WaitFor(t, fmt.Sprintf("up{job=%q}", jobName), func(r Result) bool {
		return len(r) == 1 && r[0].Value == 1
	})
	s.Sync(t)
	return s
}

// URL returns the base URL of the Prometheus HTTP API through the counting
// proxy. Give it to the code under test.
func (s *Server) URL() string { return s.proxy.URL }

// DirectURL returns Prometheus's own base URL; queries sent there are not
// counted.
func (s *Server) DirectURL() string { return s.direct }

// ExporterURL returns the URL of the exporter Prometheus scrapes.
func (s *Server) ExporterURL() string { return s.exporter.URL }

// Registry returns the exporter's registry, to register more collectors;
// wait for their values with WaitFor.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Metric returns the name of the gauge vector.
func (s *Server) Metric() string { return s.cfg.Metric }

// Label returns the gauge's label that names the app.
func (s *Server) Label() string { return s.cfg.Label }

// Set sets the gauge for app. Call Sync before querying.
func (s *Server) Set(app string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gauge.WithLabelValues(app).Set(v)
	s.values[app] = v
}

// Delete removes app's series from the exporter. Call Sync before querying.
func (s *Server) Delete(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gauge.DeleteLabelValues(app)
	delete(s.values, app)
}

// Values returns a copy of the values the exporter serves, by app.
func (s *Server) Values() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]float64, len(s.values))
	for k, v := range s.values {
		out[k] = v
	}
	return out
}

// Sync waits until an instant query of the gauge returns exactly the values
// the exporter serves (deleted series gone), failing the test after
// StartTimeout. Its queries bypass the proxy and are not counted.
func (s *Server) Sync(t testing.TB) {
	t.Helper()
	want := s.Values()
	s.WaitFor(t, s.cfg.Metric, func(r Result) bool {
		if len(r) != len(want) {
			return false
		}
		for _, smp := range r {
			v, ok := want[smp.Labels[s.cfg.Label]]
			if !ok || v != smp.Value {
				return false
			}
		}
		return true
	})
}

// Result is the instant vector a query returned.
type Result []Sample

// Sample is one series of a Result. A scalar result is one Sample without
// labels.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// WaitFor polls query (bypassing the proxy) until ok accepts its result,
// failing the test after StartTimeout with the last result or error.
func (s *Server) WaitFor(t testing.TB, query string, ok func(Result) bool) {
	t.Helper()
	deadline := time.Now().Add(s.cfg.StartTimeout)
	var last string
	for {
		r, err := s.instant(query)
		if err == nil && ok(r) {
			return
		}
		if err != nil {
			last = "error: " + err.Error()
		} else {
			last = fmt.Sprintf("result: %v", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s: no acceptable result after %v; last %s\nprometheus stderr:\n%s",
				query, s.cfg.StartTimeout, last, s.stderr.tail(4096))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Query runs an instant query directly against Prometheus (not counted).
func (s *Server) Query(query string) (Result, error) { return s.instant(query) }

// Queries returns how many queries (/api/v1/query and /api/v1/query_range)
// reached Prometheus through the proxy since the start or ResetQueries.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// QueryLog returns the queries counted by Queries, in arrival order.
func (s *Server) QueryLog() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetQueries sets the query count back to zero.
func (s *Server) ResetQueries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// Stderr returns what Prometheus has written to stderr so far.
func (s *Server) Stderr() string { return s.stderr.String() }

// startPrometheus starts the binary on a free loopback port, retrying with
// another port if the one picked was taken meanwhile, and waits until it is
// ready.
func (s *Server) startPrometheus(t testing.TB, dir string) {
	t.Helper()
	exp, err := url.Parse(s.exporter.URL)
	if err != nil {
		t.Fatalf("promtest: exporter URL: %v", err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: %[2]s
    static_configs:
      - targets: ['%[3]s']
`, promDuration(s.cfg.ScrapeInterval), jobName, exp.Host)
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatalf("promtest: %v", err)
	}

	attempt := 0
	s.direct = startProcess(t, "prometheus", s.bin, dir, s.stderr, s.cfg.StartTimeout, func(addr string) []string {
		attempt++
		return []string{
			"--config.file=" + configPath,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"+strconv.Itoa(attempt)),
			"--web.listen-address=" + addr,
			"--log.level=warn",
		}
	})
}

// instant runs an instant query against Prometheus directly.
func (s *Server) instant(query string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := s.direct + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode %s answer: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	switch body.Data.ResultType {
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(body.Data.Result, &pair); err != nil {
			return nil, err
		}
		v, err := parseValue(pair[1])
		if err != nil {
			return nil, err
		}
		return Result{{Labels: map[string]string{}, Value: v}}, nil
	case "vector":
		var series []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &series); err != nil {
			return nil, err
		}
		out := make(Result, 0, len(series))
		for _, sr := range series {
			v, err := parseValue(sr.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Labels: sr.Metric, Value: v})
		}
		return out, nil
	}
	return nil, fmt.Errorf("result type %q, want scalar or vector", body.Data.ResultType)
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// proxyHandler forwards everything to Prometheus and logs the queries.
func (s *Server) proxyHandler(t testing.TB) http.Handler {
	target, err := url.Parse(s.direct)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/query" || r.URL.Path == "/api/v1/query_range" {
			expr := r.URL.Query().Get("query")
			if r.Method == http.MethodPost && r.Body != nil {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				if form, err := url.ParseQuery(string(body)); err == nil && form.Has("query") {
					expr = form.Get("query")
				}
			}
			s.mu.Lock()
			s.log = append(s.log, Request{
				Method:        r.Method,
				Path:          r.URL.Path,
				Query:         expr,
				Authorization: r.Header.Get("Authorization"),
			})
			s.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})
}
