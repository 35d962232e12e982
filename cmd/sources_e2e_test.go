package cmd

// End-to-end tests of the NATS and Kafka sources: the CLI against flytest,
// an embedded NATS server with JetStream (query/natstest), franz-go's kfake
// cluster (query/kafkatest) and, for the mixed expression, a real
// Prometheus (query/promtest).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/superfly/fly-autoscaler/query/kafkatest"
	"github.com/superfly/fly-autoscaler/query/natstest"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

var sourceApps = []string{"my-app-001", "my-app-002", "my-app-003"}

// sourcesFixture builds, for the three apps: NATS backlogs 10 (pull, 3 of
// them unacked), 6 (push, 2 unacked) and 0; Kafka lags 14 (two
// partitions, one committed), 0 and 3 (a group that never committed).
func sourcesFixture(t *testing.T, natsOpts natstest.Options, kafkaPass string) (*natstest.Server, *kafkatest.Cluster) {
	t.Helper()
	nats := natstest.Start(t, natsOpts)
	nats.Backlog(t, natstest.Backlog{Stream: "jobs-my-app-001", Consumer: "workers", Published: 10, Unacked: 3})
	nats.Backlog(t, natstest.Backlog{Stream: "jobs-my-app-002", Consumer: "workers", Push: true, Published: 6, Unacked: 2})
	nats.Backlog(t, natstest.Backlog{Stream: "jobs-my-app-003", Consumer: "workers"})

	var kafka *kafkatest.Cluster
	if kafkaPass != "" {
		kafka = kafkatest.StartSCRAM(t, 1, "fas", kafkaPass)
	} else {
		kafka = kafkatest.Start(t, 1)
	}
	kafka.Topic(t, "orders-my-app-001", 2)
	kafka.Produce(t, "orders-my-app-001", 0, 10)
	kafka.Produce(t, "orders-my-app-001", 1, 9)
	kafka.Commit(t, "workers-my-app-001", "orders-my-app-001", 0, 5)
	kafka.Topic(t, "orders-my-app-002", 1)
	kafka.Produce(t, "orders-my-app-002", 0, 2)
	kafka.Commit(t, "workers-my-app-002", "orders-my-app-002", 0, 2)
	kafka.Topic(t, "orders-my-app-003", 1)
	kafka.Produce(t, "orders-my-app-003", 0, 3)
	return nats, kafka
}

// sourcesYAML is a config file with a NATS and a Kafka collector, and the
// extra collector lines given.
func sourcesYAML(t *testing.T, natsURL string, brokers []string, expr string, extra ...string) string {
	t.Helper()
	y := fmt.Sprintf(`org: my-org
app-name: [%s]
started-machine-count: %q
metric-collectors:
  - type: nats
    metric-name: pending
    url: %s
    stream: jobs-$APP_NAME
    consumer: workers
  - type: kafka
    metric-name: lag
    brokers: [%q]
    topic: orders-$APP_NAME
    group: workers-$APP_NAME
`, strings.Join(sourceApps, ", "), expr, natsURL, brokers[0])
	for _, e := range extra {
		y += e + "\n"
	}
	return writeFile(t, "config.yml", y)
}

// startedCounts returns the started machines of each app of sourceApps.
func startedCounts(srv *flytest.Server) map[string]int {
	out := map[string]int{}
	for _, app := range sourceApps {
		for _, m := range srv.Machines(app) {
			if m.State == "started" {
				out[app]++
			}
		}
	}
	return out
}

// TestSourcesE2E: one expression uses a Prometheus, a NATS and a Kafka
// value; dry run and run reach the targets those values give, and the
// table and JSON show all three.
func TestSourcesE2E(t *testing.T) {
	onRealPrometheus(t)
	skipShort(t)
	srv := fleetEnv(t, "fleet-100.json")
	prom := promtest.Start(t, map[string]float64{"my-app-001": 1, "my-app-002": 2, "my-app-003": 3})
	nats, kafka := sourcesFixture(t, natstest.Options{}, "")
	cfg := sourcesYAML(t, nats.URL(), kafka.Brokers(), "ceil((queue_depth + pending + lag) / 10)",
		"  - type: prometheus",
		"    metric-name: queue_depth",
		"    address: "+prom.URL(),
		`    query: sum(queue_depth{app="$APP_NAME"})`)
	want := map[string]struct {
		qd, pending, lag float64
		started          int
	}{
		"my-app-001": {1, 10, 14, 3},
		"my-app-002": {2, 6, 0, 1},
		"my-app-003": {3, 0, 3, 1},
	}

	code, out, stderr := runCLI(t, "run", "--config", cfg, "--dry-run", "--output", "json", "--verbose")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	rep := byApp(decodeReport(t, out))
	for app, w := range want {
		a := rep[app]
		m := a.Metrics
		if m["queue_depth"] == nil || *m["queue_depth"] != w.qd || m["pending"] == nil || *m["pending"] != w.pending ||
			m["lag"] == nil || *m["lag"] != w.lag {
			t.Errorf("%s: metrics %v, want queue_depth=%v pending=%v lag=%v", app, a.Metrics, w.qd, w.pending, w.lag)
		}
		if a.Target == nil || a.Target.Started != w.started || a.Status != "planned" {
			t.Errorf("%s: %s, target %+v, want %d started", app, a.Status, a.Target, w.started)
		}
	}
	if w := rep["my-app-003"].Warnings; len(w) == 0 || w[0] != "group workers-my-app-003 has no committed offsets" {
		t.Errorf("my-app-003: warnings %q, want the group without commits", w)
	}
	for _, want := range []string{`request="connect ` + nats.URL(), `request="consumer info jobs-my-app-001/workers"`,
		`request="fetch committed offsets of 3 groups"`, "outcome=ok"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--verbose log lacks %s:\n%s", want, stderr)
		}
	}
	assertNoScaling(t, srv)

	code, out, stderr = runCLI(t, "run", "--config", cfg)
	if code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	for _, cell := range []string{"lag=14 pending=10 queue_depth=1", "lag=0 pending=6 queue_depth=2", "lag=3 pending=0 queue_depth=3"} {
		if !strings.Contains(out, cell) {
			t.Errorf("table lacks %q:\n%s", cell, out)
		}
	}
	got := startedCounts(srv)
	for app, w := range want {
		if got[app] != w.started {
			t.Errorf("%s: %d started after the run, want %d", app, got[app], w.started)
		}
	}

	// include-ack-pending: false counts num_pending alone.
	pendingOnly := sourcesYAML(t, nats.URL(), kafka.Brokers(), "ceil(pending / 10)")
	b, _ := os.ReadFile(pendingOnly)
	os.WriteFile(pendingOnly, []byte(strings.Replace(string(b), "consumer: workers\n", "consumer: workers\n    include-ack-pending: false\n", 1)), 0o600)
	code, out, stderr = runCLI(t, "eval", "--config", pendingOnly, "--output", "json")
	if code != ExitOK {
		t.Fatalf("eval: exit %d: %s", code, stderr)
	}
	for app, v := range map[string]string{"my-app-001": `"pending": 7`, "my-app-002": `"pending": 4`, "my-app-003": `"pending": 0`} {
		i := strings.Index(out, `"app": "`+app+`"`)
		if i < 0 || !strings.Contains(out[i:], v) {
			t.Errorf("eval: %s lacks %s:\n%s", app, v, out)
		}
	}
}

// TestSourcesFailuresLeaveAppsAlone: a missing consumer or topic fails its
// app; a stopped NATS server or Kafka broker fails every app after one
// connection attempt. No failure scales anything.
func TestSourcesFailuresLeaveAppsAlone(t *testing.T) {
	t.Parallel()
	skipShort(t)
	srv := fleetEnv(t, "fleet-100.json")
	nats, kafka := sourcesFixture(t, natstest.Options{}, "")
	// 0 would stop every started machine, were absence read as 0.
	expr := "max(pending, lag)"

	t.Run("missing consumer and topic", func(t *testing.T) {
		if err := nats.JetStream().DeleteConsumer(t.Context(), "jobs-my-app-002", "workers"); err != nil {
			t.Fatal(err)
		}
		cfg := sourcesYAML(t, nats.URL(), kafka.Brokers(), expr)
		b, _ := os.ReadFile(cfg)
		os.WriteFile(cfg, []byte(strings.Replace(string(b), "topic: orders-$APP_NAME", "topic: orders-$APP_NAME-x", 1)), 0o600)
		code, out, stderr := runCLI(t, "run", "--config", cfg, "--output", "json", "--dry-run")
		if code != ExitFailed {
			t.Fatalf("exit %d, want %d: %s", code, ExitFailed, stderr)
		}
		for _, a := range decodeReport(t, out).Apps {
			if a.Status != "failed" {
				t.Errorf("%s: %s, want failed (every topic is missing)", a.App, a.Status)
			}
			if !strings.Contains(a.Reason, "topic orders-"+a.App+"-x does not exist") && !strings.Contains(a.Reason, "consumer not found") {
				t.Errorf("%s: reason %q", a.App, a.Reason)
			}
		}
		assertNoScaling(t, srv)
	})

	t.Run("servers down", func(t *testing.T) {
		cfg := sourcesYAML(t, nats.URL(), kafka.Brokers(), expr)
		nats.Stop()
		kafka.Stop()
		code, out, stderr := runCLI(t, "run", "--config", cfg, "--output", "json", "--verbose")
		if code != ExitFailed {
			t.Fatalf("exit %d, want %d: %s", code, ExitFailed, stderr)
		}
		for _, a := range decodeReport(t, out).Apps {
			if a.Status != "failed" || !strings.Contains(a.Reason, "connect to ") {
				t.Errorf("%s: %s %q, want failed to connect", a.App, a.Status, a.Reason)
			}
		}
		if n := strings.Count(stderr, `request="connect nats://`); n != 1 {
			t.Errorf("%d NATS connection attempts, want 1 per run:\n%s", n, stderr)
		}
		if n := strings.Count(stderr, `request="connect `+kafka.Brokers()[0]); n != 1 {
			t.Errorf("%d Kafka connection attempts, want 1 per run:\n%s", n, stderr)
		}
		assertNoScaling(t, srv)
	})
}

// TestSourcesSecrets: a NATS token, the keys of a NATS creds file and a
// Kafka password never appear in the output, in any format, with
// --verbose, on success or on any failure path.
func TestSourcesSecrets(t *testing.T) {
	t.Parallel()
	skipShort(t)
	const (
		natsToken = "natsTOKEN-8f3a9c2e71"
		kafkaPass = "kafkaPASS-5d1b7e04aa"
	)
	srv := fleetEnv(t, "fleet-100.json")
	nats, kafka := sourcesFixture(t, natstest.Options{Token: natsToken}, kafkaPass)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds := filepath.Join(t.TempDir(), "user.creds")
	const jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.fake-jwt-payload-1234567890"
	os.WriteFile(creds, fmt.Appendf(nil, "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", jwt, seed), 0o600)
	secrets := []string{natsToken, kafkaPass, string(seed), jwt}

	natsKeys := func(auth string) string { return auth }
	cases := []struct {
		name     string
		natsAuth string // YAML lines of the NATS collector's credentials
		kafkaPwd string
		url      string
		code     int
	}{
		{"right credentials", "    token: " + natsToken, kafkaPass, nats.URL(), ExitOK},
		{"wrong credentials", "    token: " + natsToken + "x", kafkaPass + "x", nats.URL(), ExitFailed},
		{"creds file refused", "    creds: " + creds, kafkaPass, nats.URL(), ExitFailed},
		{"token in the url", "", kafkaPass, strings.Replace(nats.URL(), "nats://", "nats://"+natsToken+"@", 1), ExitOK},
		{"server down", "    token: " + natsToken, kafkaPass, promtest.ClosedAddr(t), ExitFailed},
	}
	for _, tc := range cases {
		for _, format := range []string{"table", "json", "markdown"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				url := tc.url
				if !strings.Contains(url, "://") {
					url = "nats://" + url
				}
				y := fmt.Sprintf(`org: my-org
app-name: [%s]
started-machine-count: "max(pending, lag)"
metric-collectors:
  - type: nats
    metric-name: pending
    url: %s
    stream: jobs-$APP_NAME
    consumer: workers
%s
  - type: kafka
    metric-name: lag
    brokers: [%q]
    topic: orders-$APP_NAME
    group: workers-$APP_NAME
    sasl-mechanism: scram-sha-256
    username: fas
    password: %s
`, strings.Join(sourceApps, ", "), url, natsKeys(tc.natsAuth), kafka.Brokers()[0], tc.kafkaPwd)
				cfg := writeFile(t, "config.yml", y)
				for _, logFormat := range []string{"text", "json"} {
					code, out, stderr := runCLI(t, "run", "--config", cfg, "--dry-run", "--verbose", "--output", format, "--log-format", logFormat)
					if code != tc.code {
						t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
					}
					for _, sec := range secrets {
						for i := 0; i+8 <= len(sec); i += 4 {
							if piece := sec[i : i+8]; strings.Contains(out, piece) || strings.Contains(stderr, piece) {
								t.Errorf("a piece of a secret (%q) in the output:\n%s\n%s", piece, out, stderr)
							}
						}
					}
				}
			})
		}
	}
	assertNoScaling(t, srv)

	// A configuration error that echoes a value expanded from a secret
	// variable: the password is redacted there too.
	setenv(t, "KAFKA_SECRET", kafkaPass)
	cfg := writeFile(t, "bad.yml", fmt.Sprintf(`org: my-org
app-name: my-app-001
started-machine-count: lag
metric-collectors:
  - type: kafka
    metric-name: lag
    brokers: ["${KAFKA_SECRET}"]
    topic: orders
    sasl-mechanism: plain
    username: fas
    password: ${KAFKA_SECRET}
`))
	code, out, stderr := runCLI(t, "run", "--config", cfg)
	if code != ExitUsage || strings.Contains(out+stderr, kafkaPass) || !strings.Contains(stderr, "brokers") {
		t.Errorf("config error: exit %d, %s%s", code, out, stderr)
	}
}

// TestEvalShowsKafkaWarnings: eval, the command that checks the metrics,
// shows the Kafka source's warning about a group that never committed, in
// every format, for that app alone, as run does; a warning fails nothing.
func TestEvalShowsKafkaWarnings(t *testing.T) {
	t.Parallel()
	inMemoryFly(t, &flytest.Org{Slug: "kq-org", Apps: []flytest.AppSpec{{Name: "kq-%d", Count: 2}}}, flytest.Options{Token: testToken})
	kafka := kafkatest.Start(t, 1)
	// kq-1's group committed (lag 6); kq-2's never did (lag 3, the whole
	// topic, and a warning).
	kafka.Topic(t, "orders-kq-1", 1)
	kafka.Produce(t, "orders-kq-1", 0, 10)
	kafka.Commit(t, "workers-kq-1", "orders-kq-1", 0, 4)
	kafka.Topic(t, "orders-kq-2", 1)
	kafka.Produce(t, "orders-kq-2", 0, 3)
	const warning = "group workers-kq-2 has no committed offsets"
	args := []string{"eval", "--org", "kq-org", "--apps", "kq-*", "--started-machine-count", "ceil(lag / 10)",
		"--kafka-brokers", kafka.Brokers()[0], "--kafka-topic", "orders-$APP_NAME", "--kafka-group", "workers-$APP_NAME",
		"--kafka-metric-name", "lag"}

	code, out, stderr := runCLI(t, append(args, "--output", "json")...)
	if code != ExitOK {
		t.Fatalf("eval: exit %d: %s\n%s", code, stderr, out)
	}
	var rep jsonEval
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	want := map[string]struct {
		lag  float64
		warn []string
	}{"kq-1": {6, []string{}}, "kq-2": {3, []string{warning}}}
	if len(rep.Apps) != len(want) {
		t.Fatalf("%d apps, want %d:\n%s", len(rep.Apps), len(want), out)
	}
	for _, a := range rep.Apps {
		w := want[a.App]
		if v := a.Metrics["lag"]; v == nil || *v != w.lag {
			t.Errorf("%s: lag %v, want %v", a.App, v, w.lag)
		}
		if a.Warnings == nil || !slices.Equal(a.Warnings, w.warn) {
			t.Errorf("%s: warnings %q, want %q", a.App, a.Warnings, w.warn)
		}
	}

	for format, line := range map[string]string{"table": "  kq-2: " + warning, "markdown": "- kq-2: " + warning} {
		code, out, stderr := runCLI(t, append(args, "--output", format)...)
		if code != ExitOK {
			t.Fatalf("eval --output %s: exit %d: %s\n%s", format, code, stderr, out)
		}
		if !slices.Contains(strings.Split(out, "\n"), line) || strings.Count(out, "no committed offsets") != 1 {
			t.Errorf("eval --output %s: want the one line %q:\n%s", format, line, out)
		}
	}
}
