package cmd

import (
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/temporal"
)

// temporalEnv is a complete Temporal collector in the original's variables.
func temporalEnv() map[string]string {
	return map[string]string{"FAS_TEMPORAL_ADDRESS": "127.0.0.1:7233", "FAS_TEMPORAL_NAMESPACE": "jobs",
		"FAS_TEMPORAL_METRIC_NAME": "running", "FAS_TEMPORAL_QUERY": `WorkflowType="Job"`}
}

func TestTemporalFlagErrors(t *testing.T) {
	t.Parallel()
	checkFlagErrors(t, temporalEnv(), []flagErrorCase{
		{"no namespace", map[string]string{"FAS_TEMPORAL_NAMESPACE": ""}, "--temporal-namespace (FAS_TEMPORAL_NAMESPACE): missing: the Temporal namespace"},
		{"no address", map[string]string{"FAS_TEMPORAL_ADDRESS": ""}, "--temporal-address (FAS_TEMPORAL_ADDRESS): missing: "},
		{"no metric name", map[string]string{"FAS_TEMPORAL_METRIC_NAME": ""}, "--temporal-metric-name (FAS_TEMPORAL_METRIC_NAME): missing: "},
		{"both measures", map[string]string{"FAS_TEMPORAL_TASK_QUEUE": "jobs-$APP_NAME"},
			"--temporal-task-queue (FAS_TEMPORAL_TASK_QUEUE) and --temporal-query (FAS_TEMPORAL_QUERY): set one, not both"},
		{"no measure", map[string]string{"FAS_TEMPORAL_QUERY": ""},
			"--temporal-task-queue (FAS_TEMPORAL_TASK_QUEUE) or --temporal-query (FAS_TEMPORAL_QUERY): set one: "},
		{"bad address", map[string]string{"FAS_TEMPORAL_ADDRESS": "http://temporal:7233"}, `--temporal-address (FAS_TEMPORAL_ADDRESS): "http://temporal:7233": want host:port`},
		{"bad queue type", map[string]string{"FAS_TEMPORAL_QUERY": "", "FAS_TEMPORAL_TASK_QUEUE": "q", "FAS_TEMPORAL_QUEUE_TYPES": "workflow,signal"},
			`--temporal-queue-types (FAS_TEMPORAL_QUEUE_TYPES): "signal": want workflow, activity or nexus`},
		{"bad rate", map[string]string{"FAS_TEMPORAL_REQUESTS_PER_SECOND": "0"}, `--temporal-requests-per-second (FAS_TEMPORAL_REQUESTS_PER_SECOND): "0" is not a rate`},
		{"certificate without key", map[string]string{"TEMPORAL_TLS_CERT_DATA": "x"}, "--temporal-key-data (TEMPORAL_TLS_KEY_DATA): empty while cert-data is set"},
		{"key not PEM", map[string]string{"FAS_TEMPORAL_CERT_DATA": "x", "FAS_TEMPORAL_KEY_DATA": "y"}, "--temporal-cert-data (TEMPORAL_TLS_CERT_DATA), --temporal-key-data (TEMPORAL_TLS_KEY_DATA): tls: failed to find any PEM data"},
		{"name of a fleet variable", map[string]string{"FAS_TEMPORAL_METRIC_NAME": "started"}, `metric name "started" is taken by a fleet or time variable`},
	})
}

func TestTemporalFileErrors(t *testing.T) {
	t.Parallel()
	head := "app-name: a\napi-token: tok\nstarted-machine-count: w\nmetric-collectors:\n"
	for _, tc := range []struct {
		name, collector, want string
	}{
		{"both measures", "{type: temporal, metric-name: w, address: 'h:7233', namespace: n, query: q, task-queue: t}",
			`CONFIG:5: metric-collectors[0]: temporal metric "w": task-queue and query: set one, not both`},
		{"no measure", "{type: temporal, metric-name: w, address: 'h:7233', namespace: n}",
			`CONFIG:5: metric-collectors[0]: temporal metric "w": task-queue or query: set one`},
		{"no namespace", "{type: temporal, metric-name: w, address: 'h:7233', query: q}", `temporal metric "w": namespace: empty`},
		{"bad rate", "{type: temporal, metric-name: w, address: 'h:7233', namespace: n, query: q, requests-per-second: fast}",
			`CONFIG:5: metric-collectors[0]: requests-per-second: "fast" is not a rate`},
		{"Prometheus key on Temporal", "{type: temporal, metric-name: w, address: 'h:7233', namespace: n, query: q, token: t}",
			"CONFIG:5: metric-collectors[0]: token does not apply to type temporal (its keys: address, namespace, task-queue,"},
		{"Temporal key on Prometheus", "{type: prometheus, metric-name: w, address: 'http://h:9090', query: up, namespace: n}",
			"CONFIG:5: metric-collectors[0]: namespace does not apply to type prometheus (its keys: address, query, token, app-label, on-empty)"},
		{"unknown type", "{type: nomad, metric-name: w}", `type "nomad" is not supported: use prometheus, temporal, nats or kafka`},
		{"same name twice", "{type: temporal, metric-name: w, address: 'h:7233', namespace: n, query: q}\n" +
			"  - {type: prometheus, metric-name: w, address: 'http://h:9090', query: up}",
			`CONFIG:6: metric-collectors[1]: metric name "w" is already defined by metric-collectors[0] (line 5)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			path := writeFile(t, "config.yml", head+"  - "+tc.collector+"\n")
			code, _, stderr := runCLI(t, "run", "--config", path)
			if want := strings.ReplaceAll(tc.want, "CONFIG", path); code != ExitUsage || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, error %q; want %q", code, strings.TrimSpace(stderr), want)
			}
			if calls.Load() != 0 {
				t.Errorf("API called")
			}
		})
	}
}

// TestTemporalVariables: the original's variables, its TEMPORAL_TLS_* names
// first, and this tool's additions.
func TestTemporalVariables(t *testing.T) {
	t.Parallel()
	pki := promtest.NewPKI(t)
	cert, key := pki.Issue(t, "client")
	otherCert, otherKey := pki.Issue(t, "other")
	for k, v := range temporalEnv() {
		setenv(t, k, v)
	}
	setenv(t, "TEMPORAL_TLS_CERT_DATA", cert)
	setenv(t, "TEMPORAL_TLS_KEY_DATA", key)
	setenv(t, "FAS_TEMPORAL_CERT_DATA", otherCert)
	setenv(t, "FAS_TEMPORAL_KEY_DATA", otherKey)
	setenv(t, "FAS_TEMPORAL_API_KEY", "tmprl-api-key-value")
	setenv(t, "FAS_TEMPORAL_TLS_SERVER_NAME", "ns.acct.tmprl.cloud")
	setenv(t, "FAS_TEMPORAL_REQUESTS_PER_SECOND", "2.5")
	rc, err := loadConfig(t, "--api-token", "tok", "--apps", "a", "--started-machine-count", "running")
	if err != nil {
		t.Fatal(err)
	}
	if tcs := configsOf[temporal.Config](rc); len(rc.metrics) != 1 || len(tcs) != 1 {
		t.Fatalf("collectors %v, want 1 of Temporal", rc.metrics)
	}
	tc := configsOf[temporal.Config](rc)[0]
	if tc.CertData != strings.TrimSpace(cert) || tc.KeyData != strings.TrimSpace(key) {
		t.Error("TEMPORAL_TLS_CERT_DATA and TEMPORAL_TLS_KEY_DATA must win over the FAS_TEMPORAL_* names, as in the original")
	}
	if tc.Name != "running" || tc.Address != "127.0.0.1:7233" || tc.Namespace != "jobs" || tc.Query != `WorkflowType="Job"` ||
		tc.APIKey != "tmprl-api-key-value" || tc.TLSServerName != "ns.acct.tmprl.cloud" || tc.RequestsPerSecond != 2.5 {
		t.Errorf("collector %v", tc)
	}

	// The FAS_TEMPORAL_* names alone work too.
	setenv(t, "TEMPORAL_TLS_CERT_DATA", "")
	setenv(t, "TEMPORAL_TLS_KEY_DATA", "")
	if rc, err = loadConfig(t, "--api-token", "tok", "--apps", "a", "--started-machine-count", "running"); err != nil {
		t.Fatal(err)
	}
	if configsOf[temporal.Config](rc)[0].CertData != strings.TrimSpace(otherCert) {
		t.Error("FAS_TEMPORAL_CERT_DATA not read")
	}

	// TLS variables alone define no collector: a worker's environment may
	// hold them for its own use.
	for k := range temporalEnv() {
		setenv(t, k, "")
	}
	if rc, err = loadConfig(t, "--api-token", "tok", "--apps", "a", "--started-machine-count", "1"); err != nil || len(rc.metrics) != 0 {
		t.Errorf("TLS variables alone: %v collectors, %v", rc, err)
	}
}

// TestTemporalSecretsRedacted: an API key or private key that a mistake
// puts into another option never shows in a configuration error.
func TestTemporalSecretsRedacted(t *testing.T) {
	t.Parallel()
	_, key := promtest.NewPKI(t).Issue(t, "client")
	keyLine := strings.Split(key, "\n")[1]
	const apiKey = "tmprl-api-key-secret-value"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		yaml    string
		secrets []string
	}{
		{"API key as address", map[string]string{"FAS_TEMPORAL_API_KEY": apiKey, "FAS_TEMPORAL_ADDRESS": apiKey}, "", []string{apiKey}},
		{"key line as address", map[string]string{"TEMPORAL_TLS_KEY_DATA": key, "FAS_TEMPORAL_ADDRESS": keyLine}, "", []string{keyLine}},
		{"file API key in an expression", map[string]string{"MY_KEY": apiKey},
			"metric-collectors:\n  - {type: temporal, metric-name: w, address: 'h:7233', namespace: n, query: q, api-key: '${MY_KEY}'}\nstarted-machine-count: '" + apiKey + " +'\n",
			[]string{apiKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tripwire(t)
			for k, v := range temporalEnv() {
				setenv(t, k, v)
			}
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			args := []string{"run", "--api-token", "tok", "--apps", "a", "--started-machine-count", "1"}
			if tc.yaml != "" {
				for k := range temporalEnv() {
					setenv(t, k, "")
				}
				args = []string{"run", "--api-token", "tok", "--apps", "a", "--config", writeFile(t, "c.yml", tc.yaml)}
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != ExitUsage {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, s := range tc.secrets {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("output shows a secret: %s", stderr)
				}
			}
			if !strings.Contains(stderr, "REDACTED") {
				t.Errorf("error %q: want the secret replaced by REDACTED", stderr)
			}
		})
	}
}

// flagErrorCase is a change to a base environment ("" unsets) and the
// error it must give.
type flagErrorCase struct {
	name string
	env  map[string]string
	want string
}

// checkFlagErrors runs run with base overlaid by each case's variables: it
// must exit 2, say want, and call no API.
func checkFlagErrors(t *testing.T, base map[string]string, cases []flagErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := tripwire(t)
			for k, v := range base {
				setenv(t, k, v)
			}
			for k, v := range tc.env {
				setenv(t, k, v)
			}
			code, _, stderr := runCLI(t, "run", "--api-token", "tok", "--apps", "a", "--started-machine-count", "1")
			if code != ExitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, error %q; want %q", code, strings.TrimSpace(stderr), tc.want)
			}
			if calls.Load() != 0 {
				t.Errorf("API called")
			}
		})
	}
}
