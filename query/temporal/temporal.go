package temporal

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// Defaults of a Temporal source.
const (
	// DefaultRequestsPerSecond paces the requests of one Temporal
	// source. Visibility queries are rate-limited per namespace on the
	// server; a large fleet must not run into those limits.
	DefaultRequestsPerSecond = 10
	// DefaultConnectTimeout bounds the one connection attempt of a
	// run.
	DefaultConnectTimeout = 10 * time.Second
)

// Temporal task queue types that queue-types names.
const (
	QueueWorkflow = "workflow"
	QueueActivity = "activity"
	QueueNexus    = "nexus"
)

// queueTypes are their numbers in temporal.api.enums.v1.TaskQueueType.
var queueTypes = map[string]uint64{
	QueueWorkflow: 1,
	QueueActivity: 2,
	QueueNexus:    3,
}

// Config configures one Temporal source. Exactly one of TaskQueue
// and Query chooses what it measures.
type Config struct {
	// Address is the frontend's host:port, for example
	// my-ns.a1b2c.tmprl.cloud:7233.
	Address string `key:"address" flag:"temporal-address" defines:"true" need:"the Temporal frontend's host:port, e.g. localhost:7233" help:"Temporal frontend {HOST:PORT}, e.g. my-ns.a1b2c.tmprl.cloud:7233"`
	// Namespace is the Temporal namespace queried.
	Namespace string `key:"namespace" flag:"temporal-namespace" defines:"true" need:"the Temporal namespace" help:"Temporal {NAMESPACE} queried"`
	// Name is the metric name, the variable scaling expressions refer to.
	Name string `key:"metric-name" flag:"temporal-metric-name" defines:"true" need:"the name the expressions use for the Temporal value" help:"{NAME} of the Temporal value in expressions"`

	// TaskQueue selects the backlog measure: the approximate number of
	// tasks waiting in the task queue, summed over QueueTypes. $APP_NAME
	// in it is replaced by the app's name.
	TaskQueue string `key:"task-queue" template:"true" flag:"temporal-task-queue" defines:"true" help:"task {QUEUE} whose backlog is measured, e.g. jobs-$APP_NAME"`
	// QueueTypes are the task queue types summed (workflow, activity,
	// nexus); empty means workflow and activity.
	QueueTypes []string `key:"queue-types" flag:"temporal-queue-types" help:"task queue {TYPES} whose backlogs are summed: workflow, activity, nexus (default: workflow,activity)"`
	// Query selects the original fly-autoscaler's measure: the number of
	// running workflows that match ExecutionStatus="Running" AND (Query).
	// $APP_NAME in it is replaced by the app's name.
	Query string `key:"query" template:"true" flag:"temporal-query" defines:"true" help:"visibility {QUERY}: counts running workflows that match it (the original's measure)"`

	// CertData and KeyData are the PEM client certificate and private key
	// of mutual TLS.
	CertData string `key:"cert-data" flag:"temporal-cert-data" env:"TEMPORAL_TLS_CERT_DATA,FAS_TEMPORAL_CERT_DATA" help:"client certificate {PEM} for mutual TLS"`
	KeyData  string `key:"key-data" flag:"temporal-key-data" env:"TEMPORAL_TLS_KEY_DATA,FAS_TEMPORAL_KEY_DATA" secret:"true" help:"private key {PEM} of the client certificate"`
	// APIKey authenticates to Temporal Cloud (sent as a bearer token, over
	// TLS).
	APIKey string `key:"api-key" flag:"temporal-api-key" secret:"true" help:"Temporal Cloud API {KEY} (implies TLS)"`
	// TLSCA is the PEM of the certificate authorities that sign the
	// server's certificate, or the path of a file that holds it; empty
	// means the system's.
	TLSCA string `key:"tls-ca" flag:"temporal-tls-ca" help:"{PEM} or file of the CAs of the server's certificate (default: the system's)"`
	// TLSServerName is the name checked against the server's certificate
	// (default: the host of Address).
	TLSServerName string `key:"tls-server-name" flag:"temporal-tls-server-name" help:"{NAME} checked against the server's certificate (default: the address's host)"`
	// TLSInsecureSkipVerify accepts any server certificate.
	TLSInsecureSkipVerify bool `key:"tls-insecure-skip-verify" flag:"temporal-tls-insecure-skip-verify" help:"accept any server certificate"`

	// RequestsPerSecond paces the requests; 0 means
	// DefaultRequestsPerSecond.
	RequestsPerSecond Rate `key:"requests-per-second" flag:"temporal-requests-per-second" help:"{RATE} of Temporal requests of one run (default: 10)"`
}

// String describes c without its key data or API key.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "temporal metric %q address=%s namespace=%q", c.Name, c.Address, c.Namespace)
	if c.TaskQueue != "" {
		fmt.Fprintf(&b, " task-queue=%q queue-types=%s", c.TaskQueue, strings.Join(c.queueTypes(), ","))
	} else {
		fmt.Fprintf(&b, " query=%q", c.Query)
	}
	if c.KeyData != "" {
		b.WriteString(" key-data=" + redact.Redacted)
	}
	if c.APIKey != "" {
		b.WriteString(" api-key=" + redact.Redacted)
	}
	return b.String()
}

// GoString keeps the secrets out of %#v.
func (c Config) GoString() string { return c.String() }

// Measure names what the source measures: "backlog" for a task queue,
// "running workflows" for a query.
func (c Config) Measure() string {
	if c.TaskQueue != "" {
		return "backlog"
	}
	return "running workflows"
}

// MetricName is the name the expressions use for the Temporal value.
func (c Config) MetricName() string { return c.Name }

var _ query.SourceConfig = Config{}

// Rate is a number of requests per second. As text (a flag, a config
// file), it must be a positive number: 0 is a Config's default only.
type Rate float64

// UnmarshalText parses a positive rate; "" is the default (0).
func (r *Rate) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	if v == "" {
		*r = 0
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return fmt.Errorf("%q is not a rate: use a positive number of requests per second, e.g. 10", v)
	}
	*r = Rate(f)
	return nil
}

// Secrets returns the strings of c that must never be printed: the private
// key and the API key, and each line of the key's PEM body.
func (c Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.APIKey, c.KeyData} {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	for line := range strings.Lines(c.KeyData) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

func (c Config) queueTypes() []string {
	if len(c.QueueTypes) == 0 {
		return []string{QueueWorkflow, QueueActivity}
	}
	return c.QueueTypes
}

// Validate checks c. Its errors name the field by its configuration key
// (metric-name, address, namespace, task-queue, queue-types, query,
// cert-data, key-data, api-key, tls-ca, tls-server-name,
// requests-per-second) and never hold a secret.
func (c Config) Validate() error {
	_, _, err := c.normalize()
	return err
}

// normalize validates c and returns it with its fields trimmed and
// defaulted, and the TLS configuration it asks for (nil: plain text).
func (c Config) normalize() (Config, *tls.Config, error) {
	errorf, err := query.CheckName("temporal", c.Name)
	if err != nil {
		return c, nil, err
	}
	fail := func(format string, args ...any) (Config, *tls.Config, error) {
		return c, nil, errorf(format, args...)
	}
	c.Address, c.Namespace = strings.TrimSpace(c.Address), strings.TrimSpace(c.Namespace)
	c.TaskQueue, c.Query = strings.TrimSpace(c.TaskQueue), strings.TrimSpace(c.Query)
	if c.Address == "" {
		return fail("address: empty: give the frontend's host:port, e.g. localhost:7233")
	}
	host, port, err := net.SplitHostPort(c.Address)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return fail("address %q: want host:port, e.g. my-ns.a1b2c.tmprl.cloud:7233", redact.RedactURL(c.Address))
	}
	if c.Namespace == "" {
		return fail("namespace: empty")
	}
	switch {
	case c.TaskQueue != "" && c.Query != "":
		return fail("task-queue and query: set one, not both (task-queue measures the backlog, query counts running workflows)")
	case c.TaskQueue == "" && c.Query == "":
		return fail("task-queue or query: set one: task-queue (e.g. jobs-$APP_NAME) measures the backlog, query counts running workflows")
	case c.Query != "" && len(c.QueueTypes) > 0:
		return fail("queue-types: only with task-queue, not with query")
	}
	var types []string
	for _, t := range c.QueueTypes {
		t = strings.ToLower(strings.TrimSpace(t))
		if _, ok := queueTypes[t]; !ok {
			return fail("queue-types: %q: want workflow, activity or nexus", t)
		}
		if slices.Contains(types, t) {
			return fail("queue-types: %q given twice", t)
		}
		types = append(types, t)
	}
	c.QueueTypes = types
	switch r := float64(c.RequestsPerSecond); {
	case r == 0:
		c.RequestsPerSecond = DefaultRequestsPerSecond
	case math.IsNaN(r) || math.IsInf(r, 0) || r < 0:
		return fail("requests-per-second: %v: want a positive number", r)
	}
	c.APIKey = strings.TrimSpace(c.APIKey)
	if strings.ContainsFunc(c.APIKey, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fail("api-key: contains a control character")
	}
	tlsConf, err := c.tlsConfig(host)
	if err != nil {
		return fail("%v", err)
	}
	return c, tlsConf, nil
}

// tlsConfig returns the TLS configuration c asks for, or nil when it asks
// for none. An API key implies TLS: Temporal Cloud takes none without.
func (c Config) tlsConfig(host string) (*tls.Config, error) {
	cert, key := strings.TrimSpace(c.CertData), strings.TrimSpace(c.KeyData)
	if cert == "" && key == "" && c.APIKey == "" && c.TLSCA == "" && c.TLSServerName == "" && !c.TLSInsecureSkipVerify {
		return nil, nil
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         strings.TrimSpace(c.TLSServerName),
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // asked for by tls-insecure-skip-verify
	}
	if conf.ServerName == "" {
		conf.ServerName = host
	}
	switch {
	case cert == "" && key != "":
		return nil, errors.New("cert-data: empty while key-data is set: give the client certificate too")
	case cert != "" && key == "":
		return nil, errors.New("key-data: empty while cert-data is set: give the certificate's private key too")
	case cert != "":
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			// crypto/tls never quotes the key in its errors.
			return nil, fmt.Errorf("cert-data, key-data: %v", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if ca := strings.TrimSpace(c.TLSCA); ca != "" {
		pem := []byte(ca)
		if !strings.HasPrefix(ca, "-----BEGIN") {
			b, err := query.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("tls-ca: %v: give PEM certificates or the path of a file holding them", err)
			}
			pem = b
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls-ca: no PEM certificate found")
		}
		conf.RootCAs = pool
	}
	return conf, nil
}
