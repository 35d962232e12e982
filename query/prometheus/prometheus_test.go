package prometheus

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/superfly/fly-autoscaler/query"
)

const perAppQuery = `sum(queue_depth{app="$APP_NAME"})`

func newProm(t *testing.T, cfg Config, opts ...Option) *Prometheus {
	t.Helper()
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestPrometheusPerApp(t *testing.T) {
	const app = "my-app-7"
	expanded := `sum(queue_depth{app="my-app-7"})`
	tests := []struct {
		name    string
		reply   reply
		onEmpty query.OnEmpty
		want    float64
		wantErr string // substring; "" means success
		wantIs  error
	}{
		{name: "scalar", reply: reply{File: "scalar.json"}, want: 42.5},
		{name: "one sample", reply: reply{File: "vector_one.json"}, want: 7},
		{name: "warnings ignored", reply: reply{File: "vector_warnings.json"}, want: 11},
		{name: "empty vector", reply: reply{File: "vector_empty.json"}, wantErr: "query returned no series " + NoSeriesHint, wantIs: query.ErrNoData},
		{name: "empty vector zero", reply: reply{File: "vector_empty.json"}, onEmpty: query.OnEmptyZero, want: 0},
		{name: "several series", reply: reply{File: "vector_many.json"}, wantErr: "query returned 3 series, want 1", wantIs: query.ErrManySeries},
		{name: "several series zero policy", reply: reply{File: "vector_many.json"}, onEmpty: query.OnEmptyZero, wantErr: "query returned 3 series, want 1", wantIs: query.ErrManySeries},
		{name: "nan", reply: reply{File: "vector_nan.json"}, wantErr: "query returned NaN", wantIs: query.ErrNoData},
		{name: "nan zero", reply: reply{File: "vector_nan.json"}, onEmpty: query.OnEmptyZero, want: 0},
		{name: "scalar nan", reply: reply{File: "scalar_nan.json"}, wantErr: "query returned NaN", wantIs: query.ErrNoData},
		{name: "inf", reply: reply{File: "vector_inf.json"}, onEmpty: query.OnEmptyZero, wantErr: "query returned +Inf"},
		{name: "matrix", reply: reply{File: "matrix.json"}, wantErr: "query returned a matrix, want a scalar or an instant vector", wantIs: query.ErrResultType},
		// client_golang itself refuses to decode a string result.
		{name: "string", reply: reply{File: "string.json"}, wantErr: `unexpected value type "string"`},
		{name: "bad data", reply: reply{File: "error_bad_data.json", Status: http.StatusBadRequest}, wantErr: "query: bad_data: invalid parameter"},
		{name: "server error", reply: reply{Body: "overloaded", Status: http.StatusInternalServerError}, wantErr: "query: server_error: server error: 500: overloaded"},
		{name: "not json", reply: reply{Body: "<html>", Status: http.StatusOK}, wantErr: "query: bad_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, map[string]reply{expanded: tt.reply})
			p := newProm(t, Config{Name: "queue_depth", Address: srv.URL, Query: perAppQuery, OnEmpty: tt.onEmpty})
			if p.FleetWide() {
				t.Fatal("FleetWide() = true for a query with $APP_NAME")
			}
			got, err := p.Collect(context.Background(), app)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Collect = %v, want error %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			if got != tt.want {
				t.Errorf("Collect = %v, want %v", got, tt.want)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestPrometheusAPIErrorType(t *testing.T) {
	srv := newFakeProm(t, map[string]reply{"up": {Body: "boom", Status: http.StatusServiceUnavailable}})
	p := newProm(t, Config{Name: "up", Address: srv.URL, Query: "up"})
	_, err := p.Collect(context.Background(), "my-app")
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrServer {
		t.Fatalf("error %v: want a *v1.Error of type server_error", err)
	}
}

func TestPrometheusGETFallback(t *testing.T) {
	srv := newFakeProm(t, map[string]reply{"up": {File: "scalar.json"}})
	srv.RejectPost = true
	p := newProm(t, Config{Name: "up", Address: srv.URL, Query: "up"})
	got, err := p.Collect(context.Background(), "my-app")
	if err != nil || got != 42.5 {
		t.Fatalf("Collect = %v, %v; want 42.5", got, err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Method != http.MethodPost || reqs[1].Method != http.MethodGet {
		t.Errorf("requests %+v, want POST then GET", reqs)
	}
}

func TestPrometheusAddressPathPrefix(t *testing.T) {
	// Fly's managed Prometheus lives under a path: /prometheus/<org>.
	paths := make(chan string, 1)
	srv := newLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}`))
	}))
	p := newProm(t, Config{Name: "up", Address: srv.URL + "/prometheus/my-org/", Query: "up"})
	if _, err := p.Collect(context.Background(), "my-app"); err != nil {
		t.Fatal(err)
	}
	if gotPath := <-paths; gotPath != "/prometheus/my-org/api/v1/query" {
		t.Errorf("path %q, want /prometheus/my-org/api/v1/query", gotPath)
	}
}

func TestPrometheusAuthorization(t *testing.T) {
	tests := []struct {
		name    string
		address func(base string) string
		token   string
		want    string
	}{
		{name: "no token", want: ""},
		{name: "plain token", token: "fo1_abcdef", want: "Bearer fo1_abcdef"},
		{name: "macaroon", token: "FlyV1 fm2_lJPECAAAAAAAA,fm2_abc", want: "FlyV1 fm2_lJPECAAAAAAAA,fm2_abc"},
		{name: "already bearer", token: "Bearer abc", want: "Bearer abc"},
		{name: "surrounding space trimmed", token: " tok\n", want: "Bearer tok"},
		{name: "userinfo as basic auth", address: func(b string) string { return strings.Replace(b, "http://", "http://user:pass@", 1) }, want: "Basic dXNlcjpwYXNz"},
		{name: "token beats userinfo", address: func(b string) string { return strings.Replace(b, "http://", "http://user:pass@", 1) }, token: "tok", want: "Bearer tok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, map[string]reply{"up": {File: "scalar.json"}})
			addr := srv.URL
			if tt.address != nil {
				addr = tt.address(addr)
			}
			p := newProm(t, Config{Name: "up", Address: addr, Query: "up", Token: tt.token})
			if _, err := p.Collect(context.Background(), "my-app"); err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if reqs[0].Authorization != tt.want {
				t.Errorf("Authorization %q, want %q", reqs[0].Authorization, tt.want)
			}
		})
	}
}

func TestPrometheusPerAppTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv := newFakeProm(t, map[string]reply{`sum(queue_depth{app="my-app"})`: {Block: block}})
	p := newProm(t, Config{Name: "q", Address: srv.URL, Query: perAppQuery})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Collect(ctx, "my-app")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Collect took %v: the caller's ctx did not bound it", d)
	}
}

func TestPrometheusRejectsInvalidAppName(t *testing.T) {
	srv := newFakeProm(t, nil)
	p := newProm(t, Config{Name: "q", Address: srv.URL, Query: perAppQuery})
	for _, app := range []string{"", `x"} or vector(1) #`, "My-App", "-app"} {
		if _, err := p.Collect(context.Background(), app); err == nil || !strings.Contains(err.Error(), "invalid app name") {
			t.Errorf("Collect(%q) error %v, want invalid app name", app, err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid app names, want 0", n)
	}
}

func TestPrometheusFleet(t *testing.T) {
	const q = "sum by (app) (queue_depth)"
	type want struct {
		v   float64
		err string
		is  error
	}
	tests := []struct {
		name     string
		reply    reply
		label    string
		onEmpty  query.OnEmpty
		fleetErr string
		apps     map[string]want
	}{
		{
			name:  "split by app",
			reply: reply{File: "fleet_by_app.json"},
			apps: map[string]want{
				"app-a":       {v: 1},
				"app-b":       {v: 2.5},
				"app-c":       {v: 0},
				"app-nan":     {err: "query returned NaN", is: query.ErrNoData},
				"app-missing": {err: `query returned no series with app="app-missing"`, is: query.ErrNoData},
			},
		},
		{
			name:    "split by app, zero policy",
			reply:   reply{File: "fleet_by_app.json"},
			onEmpty: query.OnEmptyZero,
			apps: map[string]want{
				"app-b":       {v: 2.5},
				"app-nan":     {v: 0},
				"app-missing": {v: 0},
			},
		},
		{
			name:  "custom label",
			reply: reply{File: "fleet_custom_label.json"},
			label: "fly_app_name",
			apps: map[string]want{
				"app-a":   {v: 10},
				"app-b":   {v: 20},
				"ignored": {err: `no series with fly_app_name="ignored"`, is: query.ErrNoData},
			},
		},
		{
			name:  "two series for one app",
			reply: reply{File: "fleet_dup.json"},
			apps: map[string]want{
				"app-a": {err: `query returned 2 series with app="app-a", want 1`, is: query.ErrManySeries},
				"app-b": {v: 3},
			},
		},
		{
			name:  "a native histogram for one app",
			reply: reply{File: "fleet_histogram.json"},
			apps: map[string]want{
				"app-a": {v: 4},
				"app-h": {err: "query returned a native histogram sample, want a float", is: query.ErrResultType},
			},
		},
		{
			name:  "scalar applies to every app",
			reply: reply{File: "scalar.json"},
			apps:  map[string]want{"app-a": {v: 42.5}, "app-z": {v: 42.5}},
		},
		{
			name:  "one unlabeled series applies to every app",
			reply: reply{File: "fleet_unlabeled_one.json"},
			apps:  map[string]want{"app-a": {v: 5}, "app-z": {v: 5}},
		},
		{
			name:     "several unlabeled series",
			reply:    reply{File: "fleet_unlabeled_many.json"},
			fleetErr: `query returned 2 series without label "app", want 1 or one per app`,
		},
		{
			name:  "empty vector",
			reply: reply{File: "vector_empty.json"},
			apps:  map[string]want{"app-a": {err: "query returned no series", is: query.ErrNoData}},
		},
		{
			name:    "empty vector zero policy",
			reply:   reply{File: "vector_empty.json"},
			onEmpty: query.OnEmptyZero,
			apps:    map[string]want{"app-a": {v: 0}},
		},
		{
			name:     "matrix",
			reply:    reply{File: "matrix.json"},
			fleetErr: "query returned a matrix",
		},
		{
			name:     "server error",
			reply:    reply{Body: "down", Status: http.StatusInternalServerError},
			fleetErr: "query: server_error: server error: 500",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, map[string]reply{q: tt.reply})
			p := newProm(t, Config{Name: "queue_depth", Address: srv.URL, Query: q, AppLabel: tt.label, OnEmpty: tt.onEmpty})
			if !p.FleetWide() {
				t.Fatal("FleetWide() = false for a query without $APP_NAME")
			}
			lookup, err := p.CollectFleet(context.Background())
			if tt.fleetErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fleetErr) {
					t.Fatalf("CollectFleet error %v, want %q", err, tt.fleetErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CollectFleet: %v", err)
			}
			for app, w := range tt.apps {
				got, err := lookup(app)
				switch {
				case w.err != "" && (err == nil || !strings.Contains(err.Error(), w.err)):
					t.Errorf("%s: error %v, want %q", app, err, w.err)
				case w.err != "" && w.is != nil && !errors.Is(err, w.is):
					t.Errorf("%s: errors.Is(%v, %v) = false", app, err, w.is)
				case w.err == "" && (err != nil || got != w.v):
					t.Errorf("%s: %v, %v; want %v", app, got, err, w.v)
				}
			}
		})
	}
}

func TestCollectFleetOnPerAppQuery(t *testing.T) {
	p := newProm(t, Config{Name: "q", Address: "http://127.0.0.1:1", Query: perAppQuery})
	if _, err := p.CollectFleet(context.Background()); err == nil {
		t.Fatal("CollectFleet on a per-app query: no error")
	}
}

func TestNewPrometheusValidation(t *testing.T) {
	ok := Config{Name: "queue_depth", Address: "https://api.fly.io/prometheus/my-org", Query: "up"}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{name: "valid"},
		{name: "no name", modify: func(c *Config) { c.Name = "" }, want: "metric-name: empty"},
		{name: "bad name", modify: func(c *Config) { c.Name = "queue-depth" }, want: "metric-name: want letters"},
		{name: "no query", modify: func(c *Config) { c.Query = "  " }, want: `prometheus metric "queue_depth": query: empty`},
		{name: "no address", modify: func(c *Config) { c.Address = "" }, want: "address: empty"},
		{name: "no scheme", modify: func(c *Config) { c.Address = "localhost:9090" }, want: "want an http or https URL"},
		{name: "ftp", modify: func(c *Config) { c.Address = "ftp://host" }, want: "want an http or https URL"},
		{name: "no host", modify: func(c *Config) { c.Address = "http:///path" }, want: "no host"},
		{name: "query string", modify: func(c *Config) { c.Address = "http://host/?x=1" }, want: "want no query or fragment"},
		{name: "unparsable", modify: func(c *Config) { c.Address = "http://host:port/" }, want: "address http://host:port/: invalid port"},
		{name: "bad label", modify: func(c *Config) { c.AppLabel = "fly-app" }, want: `app-label "fly-app": not a valid label name`},
		{name: "bad on-empty", modify: func(c *Config) { c.OnEmpty = 7 }, want: "on-empty"},
		{name: "control char in token", modify: func(c *Config) { c.Token = "a\nb" }, want: "token: contains a control character"},
		{name: "API path", modify: func(c *Config) { c.Address += "/api/v1/query" }, want: "address: give the base URL without /api/v1/query"},
		{name: "API path, slash", modify: func(c *Config) { c.Address += "/api/v1/query/" }, want: "address: give the base URL without /api/v1/query"},
		{name: "API version path", modify: func(c *Config) { c.Address += "/api/v1" }, want: "address: give the base URL without /api/v1/query"},
		{name: "range API path", modify: func(c *Config) { c.Address = "http://localhost:9090/api/v1/query_range" }, want: "address: give the base URL without /api/v1/query"},
		{name: "path that only looks alike", modify: func(c *Config) { c.Address = "http://localhost:9090/api/v1-proxy" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			_, err := New(cfg)
			if verr := cfg.Validate(); (verr == nil) != (err == nil) {
				t.Errorf("Validate() = %v but New error %v", verr, err)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOnEmptyText(t *testing.T) {
	for _, s := range []string{"error", "zero", "ZERO", ""} {
		var o query.OnEmpty
		if err := o.UnmarshalText([]byte(s)); err != nil {
			t.Errorf("UnmarshalText(%q): %v", s, err)
		}
	}
	var o query.OnEmpty
	if err := o.UnmarshalText([]byte("ignore")); err == nil {
		t.Error("UnmarshalText(ignore): no error")
	}
	b, err := query.OnEmptyZero.MarshalText()
	if err != nil || string(b) != "zero" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
}
