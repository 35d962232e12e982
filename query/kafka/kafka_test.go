package kafka

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/kafkatest"
	"github.com/superfly/fly-autoscaler/query/querytest"
)

func newKafka(t *testing.T, cfg Config) *Kafka {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "lag"
	}
	k, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// kafkaFixture: three partitions each for app "a" (commits on two, one of
// them past the end) and "b" (a group that never committed), and none for
// "c" (no topic).
func kafkaFixture(t *testing.T) *kafkatest.Cluster {
	c := kafkatest.Start(t, 3)
	c.Topic(t, "orders-a", 3)
	c.Produce(t, "orders-a", 0, 10)
	c.Produce(t, "orders-a", 1, 20)
	c.Produce(t, "orders-a", 2, 30)
	c.Commit(t, "workers-a", "orders-a", 0, 4)  // lag 6
	c.Commit(t, "workers-a", "orders-a", 1, 25) // past the end: lag 0
	c.DeleteRecords(t, "orders-a", 2, 5)        // no commit: 25 kept
	// A commit of the group on another topic is not a commit on this one.
	c.Topic(t, "other", 1)
	c.Produce(t, "other", 0, 3)
	c.Commit(t, "workers-b", "other", 0, 1)
	c.Topic(t, "orders-b", 2)
	c.Produce(t, "orders-b", 0, 5)
	c.Produce(t, "orders-b", 1, 7)
	return c
}

// TestKafkaLag: lag per partition, summed; partitions without a commit per
// unconsumed-from; a group that never committed is a warning, a missing
// topic an error.
func TestKafkaLag(t *testing.T) {
	c := kafkaFixture(t)
	apps := []string{"a", "b", "c"}
	for _, tc := range []struct {
		from         string
		wantA, wantB float64
	}{
		{"", 6 + 0 + 25, 5 + 7},
		{UnconsumedEarliest, 6 + 0 + 25, 5 + 7},
		{UnconsumedLatest, 6, 0},
	} {
		t.Run("from="+tc.from, func(t *testing.T) {
			src := newKafka(t, Config{Brokers: c.Brokers(), Topic: "orders-$APP_NAME", Group: "workers-$APP_NAME", UnconsumedFrom: tc.from})
			values, errs, set := runSet(t, src, apps)
			if values["a"] != tc.wantA || errs["a"] != nil {
				t.Errorf("a: %v, %v; want %v", values["a"], errs["a"], tc.wantA)
			}
			if values["b"] != tc.wantB || errs["b"] != nil {
				t.Errorf("b: %v, %v; want %v", values["b"], errs["b"], tc.wantB)
			}
			if w := set.Warnings("b"); !slices.Equal(w, []string{"group workers-b has no committed offsets"}) {
				t.Errorf("b: warnings %q", w)
			}
			if w := set.Warnings("a"); len(w) != 0 {
				t.Errorf("a: warnings %q", w)
			}
			if err := errs["c"]; err == nil || err.Error() != `metric "lag": topic orders-c does not exist` {
				t.Errorf("c: %v, want a missing-topic error", err)
			}
			if _, ok := values["c"]; ok {
				t.Errorf("c has a value")
			}
		})
	}
}

// TestKafkaRequestsDoNotGrow: a run of 300 apps makes as many requests as a
// run of 3.
func TestKafkaRequestsDoNotGrow(t *testing.T) {
	c := kafkatest.Start(t, 1)
	var apps []string
	for i := range 300 {
		app := fmt.Sprintf("app-%d", i)
		apps = append(apps, app)
		c.Topic(t, "orders-"+app, 2)
		c.Produce(t, "orders-"+app, 0, i%5+1)
		if i%3 == 0 {
			c.Commit(t, "workers-"+app, "orders-"+app, 0, 1)
		}
	}
	counts := map[int]int{}
	for _, n := range []int{3, 300} {
		c.Count()
		src := newKafka(t, Config{Brokers: c.Brokers(), Topic: "orders-$APP_NAME", Group: "workers-$APP_NAME"})
		values, errs, _ := runSet(t, src, apps[:n])
		if len(errs) > 0 || len(values) != n {
			t.Fatalf("%d apps: %d values, errors %v", n, len(values), errs)
		}
		for i, app := range apps[:n] {
			want := float64(i%5 + 1)
			if i%3 == 0 {
				want--
			}
			if values[app] != want {
				t.Errorf("%s: %v, want %v", app, values[app], want)
			}
		}
		byName, total := c.Requests()
		t.Logf("%d apps: %d requests %v", n, total, byName)
		counts[n] = total
	}
	if counts[300] != counts[3] {
		t.Errorf("300 apps took %d requests, 3 apps %d: the count grows with the apps", counts[300], counts[3])
	}
}

// TestKafkaBrokerDown: every app fails with the connection error, and no
// value is made up.
func TestKafkaBrokerDown(t *testing.T) {
	c := kafkatest.Start(t, 1)
	brokers := c.Brokers()
	c.Stop()
	values, errs, _ := runSet(t, newKafka(t, Config{Brokers: brokers, Topic: "orders-$APP_NAME"}), appNames(10))
	if len(values) != 0 || len(errs) != 10 {
		t.Fatalf("values %v, %d errors", values, len(errs))
	}
	for app, err := range errs {
		if !strings.Contains(err.Error(), "connect to "+brokers[0]) {
			t.Errorf("%s: %v", app, err)
		}
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	ok := Config{Name: "lag", Brokers: []string{"k:9092, k2:9092"}, Topic: "orders-$APP_NAME"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	norm, _ := ok.normalize()
	if !slices.Equal(norm.Brokers, []string{"k:9092", "k2:9092"}) || norm.Group != "$APP_NAME" || norm.UnconsumedFrom != UnconsumedEarliest {
		t.Errorf("normalized: %#v %q %q", norm.Brokers, norm.Group, norm.UnconsumedFrom)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Brokers = nil }, "brokers: empty"},
		{func(c *Config) { c.Brokers = []string{"k"} }, `brokers: "k": want host:port`},
		{func(c *Config) { c.Topic = "" }, "topic: empty"},
		{func(c *Config) { c.UnconsumedFrom = "oldest" }, `unconsumed-from "oldest": want earliest or latest`},
		{func(c *Config) { c.SASLMechanism = "gssapi" }, `sasl-mechanism "gssapi"`},
		{func(c *Config) { c.SASLMechanism = "plain" }, "set username and password"},
		{func(c *Config) { c.Username, c.Password = "u", "p" }, "set sasl-mechanism too"},
		{func(c *Config) { c.TLSCert = "/nonexistent.pem" }, "tls-cert: /nonexistent.pem: no such file"},
		{func(c *Config) { off := false; c.TLS, c.TLSInsecureSkipVerify = &off, true }, "tls: false, but tls-ca, tls-cert or tls-insecure-skip-verify is set"},
	} {
		c := ok
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", c, err, tc.want)
		}
	}
	// TLS: on when asked, or implied by a TLS option; off otherwise.
	on, off := true, false
	for _, tc := range []struct {
		change func(*Config)
		want   bool
	}{
		{func(c *Config) {}, false},
		{func(c *Config) { c.TLS = &off }, false},
		{func(c *Config) { c.TLS = &on }, true},
		{func(c *Config) { c.TLSInsecureSkipVerify = true }, true},
	} {
		c := ok
		tc.change(&c)
		if norm, err := c.normalize(); err != nil || norm.useTLS != tc.want {
			t.Errorf("%v: TLS %v (%v), want %v", c, norm.useTLS, err, tc.want)
		}
	}
}

// runSet collects every app through a Set as scale does.
func runSet(t *testing.T, src query.Source, apps []string) (map[string]float64, map[string]error, *query.Set) {
	t.Helper()
	return querytest.RunSet(t, src, apps)
}

func appNames(n int) []string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fmt.Sprintf("app-%d", i)
	}
	return apps
}
