package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/natstest"
	"github.com/superfly/fly-autoscaler/query/querytest"
)

// countingDialer counts connection attempts.
type countingDialer struct {
	net.Dialer
	mu       sync.Mutex
	attempts int
}

func (d *countingDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.attempts++
	d.mu.Unlock()
	return d.Dialer.Dial(network, address)
}

func (d *countingDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attempts
}

// runSet collects every app through a Set as scale does.
func runSet(t *testing.T, src query.Source, apps []string) (map[string]float64, map[string]error, *query.Set) {
	t.Helper()
	return querytest.RunSet(t, src, apps)
}

func newNATS(t *testing.T, cfg Config) *NATS {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "pending"
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNATSBacklog: pull and push consumers on a stream per app, some
// messages fetched and left unacked; each app's consumer is read on its
// own, once.
func TestNATSBacklog(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	srv.Backlog(t, natstest.Backlog{Stream: "jobs-pull-a", Consumer: "workers", Published: 10, Unacked: 3})
	srv.Backlog(t, natstest.Backlog{Stream: "jobs-push-b", Consumer: "workers", Push: true, Published: 7, Unacked: 2})
	srv.Backlog(t, natstest.Backlog{Stream: "jobs-idle-c", Consumer: "workers"})
	apps := []string{"pull-a", "push-b", "idle-c"}

	for _, tc := range []struct {
		pendingOnly bool
		want        map[string]float64
	}{
		{false, map[string]float64{"pull-a": 10, "push-b": 7, "idle-c": 0}},
		{true, map[string]float64{"pull-a": 7, "push-b": 5, "idle-c": 0}},
	} {
		t.Run(fmt.Sprintf("pending-only=%v", tc.pendingOnly), func(t *testing.T) {
			srv.ResetRequests()
			src := newNATS(t, Config{URL: srv.URL(), Stream: "jobs-$APP_NAME", Consumer: "workers", PendingOnly: tc.pendingOnly})
			values, errs, _ := runSet(t, src, apps)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			for app, want := range tc.want {
				if values[app] != want {
					t.Errorf("%s: %v, want %v", app, values[app], want)
				}
			}
			if n := srv.Requests("CONSUMER.INFO."); n != len(apps) {
				t.Errorf("%d consumer info requests, want one per app (%d)", n, len(apps))
			}
			if n := srv.Requests("CONSUMER.LIST."); n != 0 {
				t.Errorf("%d consumer listings for streams of one app each, want 0", n)
			}
		})
	}
}

// TestNATSSharedStream: apps whose consumers share a stream take one
// listing of it per run; a consumer missing from the listing is read on
// its own and is an error, never 0.
func TestNATSSharedStream(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	want := map[string]float64{}
	var apps []string
	for i := range 6 {
		app := fmt.Sprintf("app-%d", i)
		apps = append(apps, app)
		// Five messages, seen by every consumer of the stream; the push
		// consumers have one of them delivered and unacked, the pull
		// consumers none or two.
		b := natstest.Backlog{Stream: "shared", Consumer: "w-" + app, Unacked: i % 3}
		if i == 0 {
			b.Published = 5
		}
		if i%2 == 1 {
			b.Push, b.Unacked = true, 1
		}
		srv.Backlog(t, b)
		want[app] = 5
	}
	missing := "app-6"
	apps = append(apps, missing)

	srv.ResetRequests()
	src := newNATS(t, Config{URL: srv.URL(), Stream: "shared", Consumer: "w-$APP_NAME"})
	values, errs, _ := runSet(t, src, apps)
	for app, w := range want {
		if errs[app] != nil || values[app] != w {
			t.Errorf("%s: %v, %v; want %v", app, values[app], errs[app], w)
		}
	}
	if err := errs[missing]; err == nil || !errors.Is(err, jetstream.ErrConsumerNotFound) ||
		!strings.Contains(err.Error(), "stream shared consumer w-app-6") {
		t.Errorf("missing consumer: %v, want a consumer-not-found error naming it", err)
	}
	if _, ok := values[missing]; ok {
		t.Errorf("missing consumer has a value: %v", values[missing])
	}
	if n := srv.Requests("CONSUMER.LIST.shared"); n != 1 {
		t.Errorf("%d listings of the shared stream, want 1", n)
	}
	if n := srv.Requests("CONSUMER.INFO."); n != 1 {
		t.Errorf("%d consumer info requests, want 1 (the consumer missing from the listing)", n)
	}
}

// TestNATSListingPages: a stream with more consumers than one page of the
// listing (256) is read in two pages, still once per run.
func TestNATSListingPages(t *testing.T) {
	if testing.Short() {
		t.Skip("300 consumers: skipped in -short mode")
	}
	srv := natstest.Start(t, natstest.Options{})
	var apps []string
	for i := range 300 {
		app := fmt.Sprintf("app-%d", i)
		apps = append(apps, app)
		srv.Backlog(t, natstest.Backlog{Stream: "big", Consumer: app})
	}
	if _, err := srv.JetStream().Publish(context.Background(), "big.jobs", []byte("x")); err != nil {
		t.Fatal(err)
	}
	srv.WaitBacklog(t, "big", "app-299", 1, 0)
	srv.ResetRequests()
	values, errs, _ := runSet(t, newNATS(t, Config{URL: srv.URL(), Stream: "big", Consumer: "$APP_NAME"}), apps)
	if len(errs) > 0 || len(values) != 300 {
		t.Fatalf("%d values, errors %v", len(values), errs)
	}
	for app, v := range values {
		if v != 1 {
			t.Errorf("%s: %v, want 1", app, v)
		}
	}
	if n := srv.Requests("CONSUMER.LIST.big"); n != 2 {
		t.Errorf("%d listing pages, want 2 (256 + 44)", n)
	}
	if n := srv.Requests("CONSUMER.INFO."); n != 0 {
		t.Errorf("%d consumer info requests, want 0", n)
	}
}

// TestNATSDeleted: a deleted consumer or stream is a clear error for its
// app alone, shared stream or not.
func TestNATSDeleted(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	ctx := context.Background()
	for _, app := range []string{"a", "b", "c"} {
		srv.Backlog(t, natstest.Backlog{Stream: "jobs-" + app, Consumer: "workers", Published: 2})
		srv.Backlog(t, natstest.Backlog{Stream: "shared", Consumer: app, Published: 1})
	}
	js := srv.JetStream()
	if err := js.DeleteConsumer(ctx, "jobs-b", "workers"); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "jobs-c"); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, "shared", "b"); err != nil {
		t.Fatal(err)
	}

	values, errs, _ := runSet(t, newNATS(t, Config{URL: srv.URL(), Stream: "jobs-$APP_NAME", Consumer: "workers"}), []string{"a", "b", "c"})
	if values["a"] != 2 || errs["a"] != nil {
		t.Errorf("a: %v, %v; want 2", values["a"], errs["a"])
	}
	if err := errs["b"]; !errors.Is(err, jetstream.ErrConsumerNotFound) || !strings.Contains(err.Error(), `metric "pending": stream jobs-b consumer workers: consumer not found`) {
		t.Errorf("b: %v", err)
	}
	if err := errs["c"]; !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "stream jobs-c consumer workers: stream not found") {
		t.Errorf("c: %v", err)
	}

	values, errs, _ = runSet(t, newNATS(t, Config{URL: srv.URL(), Stream: "shared", Consumer: "$APP_NAME"}), []string{"a", "b", "c"})
	if values["a"] != 3 || values["c"] != 3 || len(errs) != 1 || !errors.Is(errs["b"], jetstream.ErrConsumerNotFound) {
		t.Errorf("shared stream: %v, %v; want a and c at 3, b not found", values, errs)
	}
}

// TestNATSServerDown: a stopped server fails every app with the error of
// one connection attempt.
func TestNATSServerDown(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	url := srv.URL()
	srv.Stop()
	src := newNATS(t, Config{URL: url, Stream: "jobs-$APP_NAME", Consumer: "workers"})
	d := &countingDialer{}
	src.dialer = d
	apps := appNames(20)
	values, errs, _ := runSet(t, src, apps)
	if len(values) != 0 || len(errs) != len(apps) {
		t.Fatalf("values %v, %d errors; want every app failed", values, len(errs))
	}
	for _, app := range apps {
		if err := errs[app]; !strings.Contains(err.Error(), "connect to "+url) {
			t.Errorf("%s: %v", app, err)
		}
	}
	if n := d.count(); n != 1 {
		t.Errorf("%d connection attempts, want 1 per run", n)
	}
}

// TestNATSSecrets: a wrong token is refused, and the token (or a password
// in the URL) never shows in an error.
func TestNATSSecrets(t *testing.T) {
	const token = "s3cret-nats-token-xyz"
	srv := natstest.Start(t, natstest.Options{Token: token})
	srv.Backlog(t, natstest.Backlog{Stream: "jobs-a", Consumer: "workers", Published: 4, Unacked: 1})

	values, errs, _ := runSet(t, newNATS(t, Config{URL: srv.URL(), Token: token, Stream: "jobs-$APP_NAME", Consumer: "workers"}), []string{"a"})
	if values["a"] != 4 || errs["a"] != nil {
		t.Fatalf("with the token: %v, %v", values, errs)
	}
	withUser := strings.Replace(srv.URL(), "nats://", "nats://"+token+"x@", 1)
	for _, cfg := range []Config{
		{URL: srv.URL(), Token: token + "x"},
		{URL: withUser},
	} {
		cfg.Stream, cfg.Consumer = "jobs-$APP_NAME", "workers"
		_, errs, _ := runSet(t, newNATS(t, cfg), []string{"a"})
		err := errs["a"]
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("wrong token: %v, want an authorization error", err)
			continue
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("token in error: %v", err)
		}
	}
}

func TestNATSConfigValidate(t *testing.T) {
	ok := Config{Name: "pending", URL: "nats://h:4222", Stream: "jobs-$APP_NAME", Consumer: "workers"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.URL = "" }, "url: empty"},
		{func(c *Config) { c.URL = "http://h:4222" }, "url: http://h:4222: want nats://"},
		{func(c *Config) { c.Stream = "" }, "stream: empty"},
		{func(c *Config) { c.Consumer = "a.b" }, `consumer "a.b": character '.' not allowed`},
		{func(c *Config) { c.Token, c.User, c.Password = "t", "u", "p" }, "set one kind of credentials"},
		{func(c *Config) { c.User = "u" }, "user, password: set both"},
		{func(c *Config) { c.Creds = "/nonexistent.creds" }, "creds: /nonexistent.creds: no such file"},
		{func(c *Config) { c.Name = "1x" }, "metric-name: want letters"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
	withPass := ok
	withPass.URL = "nats://user:hunter2pass@h:4222"
	if err := withPass.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %#v", withPass, withPass); strings.Contains(s, "hunter2pass") {
		t.Errorf("password printed: %s", s)
	}
	if sec := withPass.Secrets(); len(sec) == 0 || !strings.Contains(strings.Join(sec, " "), "hunter2pass") {
		t.Errorf("Secrets() = %q, want the URL's password", sec)
	}
}

func appNames(n int) []string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fmt.Sprintf("app-%d", i)
	}
	return apps
}
