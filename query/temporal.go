package query

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
)

// Defaults of a Temporal source.
const (
	// DefaultTemporalRequestsPerSecond paces the requests of one Temporal
	// source. Visibility queries are rate-limited per namespace on the
	// server; a large fleet must not run into those limits.
	DefaultTemporalRequestsPerSecond = 10
	// DefaultTemporalConnectTimeout bounds the one connection attempt of a
	// run.
	DefaultTemporalConnectTimeout = 10 * time.Second
)

// Temporal task queue types that queue-types names.
const (
	QueueWorkflow = "workflow"
	QueueActivity = "activity"
	QueueNexus    = "nexus"
)

var queueTypes = map[string]enumspb.TaskQueueType{
	QueueWorkflow: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
	QueueActivity: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
	QueueNexus:    enumspb.TASK_QUEUE_TYPE_NEXUS,
}

// TemporalConfig configures one Temporal source. Exactly one of TaskQueue
// and Query chooses what it measures.
type TemporalConfig struct {
	// Name is the metric name, the variable scaling expressions refer to.
	Name string
	// Address is the frontend's host:port, for example
	// my-ns.a1b2c.tmprl.cloud:7233.
	Address string
	// Namespace is the Temporal namespace queried.
	Namespace string

	// TaskQueue selects the backlog measure: the approximate number of
	// tasks waiting in the task queue, summed over QueueTypes. $APP_NAME
	// in it is replaced by the app's name.
	TaskQueue string
	// QueueTypes are the task queue types summed (workflow, activity,
	// nexus); empty means workflow and activity.
	QueueTypes []string
	// Query selects the original fly-autoscaler's measure: the number of
	// running workflows that match ExecutionStatus="Running" AND (Query).
	// $APP_NAME in it is replaced by the app's name.
	Query string

	// CertData and KeyData are the PEM client certificate and private key
	// of mutual TLS.
	CertData, KeyData string
	// APIKey authenticates to Temporal Cloud (sent as a bearer token, over
	// TLS).
	APIKey string
	// TLSCA is the PEM of the certificate authorities that sign the
	// server's certificate, or the path of a file that holds it; empty
	// means the system's.
	TLSCA string
	// TLSServerName is the name checked against the server's certificate
	// (default: the host of Address).
	TLSServerName string
	// TLSInsecureSkipVerify accepts any server certificate.
	TLSInsecureSkipVerify bool

	// RequestsPerSecond paces the requests; 0 means
	// DefaultTemporalRequestsPerSecond.
	RequestsPerSecond float64
}

// String describes c without its key data or API key.
func (c TemporalConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "temporal metric %q address=%s namespace=%q", c.Name, c.Address, c.Namespace)
	if c.TaskQueue != "" {
		fmt.Fprintf(&b, " task-queue=%q queue-types=%s", c.TaskQueue, strings.Join(c.queueTypes(), ","))
	} else {
		fmt.Fprintf(&b, " query=%q", c.Query)
	}
	if c.KeyData != "" {
		b.WriteString(" key-data=" + redacted)
	}
	if c.APIKey != "" {
		b.WriteString(" api-key=" + redacted)
	}
	return b.String()
}

// GoString keeps the secrets out of %#v.
func (c TemporalConfig) GoString() string { return c.String() }

// Measure names what the source measures: "backlog" for a task queue,
// "running workflows" for a query.
func (c TemporalConfig) Measure() string {
	if c.TaskQueue != "" {
		return "backlog"
	}
	return "running workflows"
}

// Secrets returns the strings of c that must never be printed: the private
// key and the API key, and each line of the key's PEM body.
func (c TemporalConfig) Secrets() []string {
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

func (c TemporalConfig) queueTypes() []string {
	if len(c.QueueTypes) == 0 {
		return []string{QueueWorkflow, QueueActivity}
	}
	return c.QueueTypes
}

// Validate checks c. Its errors name the field by its configuration key
// (metric-name, address, namespace, task-queue, queue-types, query,
// cert-data, key-data, api-key, tls-ca, tls-server-name,
// requests-per-second) and never hold a secret.
func (c TemporalConfig) Validate() error {
	_, _, err := c.normalize()
	return err
}

// normalize validates c and returns it with its fields trimmed and
// defaulted, and the TLS configuration it asks for (nil: plain text).
func (c TemporalConfig) normalize() (TemporalConfig, *tls.Config, error) {
	errorf, err := checkName("temporal", c.Name)
	if err != nil {
		return c, nil, err
	}
	fail := func(format string, args ...any) (TemporalConfig, *tls.Config, error) {
		return c, nil, errorf(format, args...)
	}
	c.Address, c.Namespace = strings.TrimSpace(c.Address), strings.TrimSpace(c.Namespace)
	c.TaskQueue, c.Query = strings.TrimSpace(c.TaskQueue), strings.TrimSpace(c.Query)
	if c.Address == "" {
		return fail("address: empty: give the frontend's host:port, e.g. localhost:7233")
	}
	host, port, err := net.SplitHostPort(c.Address)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return fail("address %q: want host:port, e.g. my-ns.a1b2c.tmprl.cloud:7233", RedactURL(c.Address))
	}
	if c.Namespace == "" {
		return fail("namespace: empty")
	}
	switch {
	case c.TaskQueue != "" && c.Query != "":
		return fail("task-queue and query: set one, not both (task-queue measures the backlog, query counts running workflows)")
	case c.TaskQueue == "" && c.Query == "":
		return fail("task-queue or query: set one (task-queue: jobs-$APP_NAME measures the backlog; query counts running workflows)")
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
	switch r := c.RequestsPerSecond; {
	case r == 0:
		c.RequestsPerSecond = DefaultTemporalRequestsPerSecond
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
func (c TemporalConfig) tlsConfig(host string) (*tls.Config, error) {
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
			b, err := os.ReadFile(ca)
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

// TemporalOption changes how NewTemporal builds a source.
type TemporalOption func(*temporalOptions)

type temporalOptions struct {
	connectTimeout time.Duration
	logger         *slog.Logger
}

// WithConnectTimeout bounds the connection attempt (default
// DefaultTemporalConnectTimeout).
func WithConnectTimeout(d time.Duration) TemporalOption {
	return func(o *temporalOptions) { o.connectTimeout = d }
}

// WithTemporalLogger sends the Temporal client's logs to l (default:
// discarded; the client's own default writes to stdout, where the report
// goes).
func WithTemporalLogger(l *slog.Logger) TemporalOption {
	return func(o *temporalOptions) { o.logger = l }
}

// Temporal is a Source backed by a Temporal frontend. It connects once, on
// first use, and every app of the run shares that connection, so an
// unreachable server costs one bounded attempt, not one per app. Requests
// are paced on the client side. Close it when the run is over.
type Temporal struct {
	cfg      TemporalConfig // normalized
	opts     client.Options
	types    []enumspb.TaskQueueType
	perApp   bool
	limiter  *rate.Limiter
	secrets  []string
	dialWait time.Duration

	once      sync.Once
	done      chan struct{}
	client    client.Client
	err       error
	closeOnce sync.Once
}

var _ FleetSource = (*Temporal)(nil)

// NewTemporal validates cfg and returns a source that queries it. It does
// not connect: the first Collect does.
func NewTemporal(cfg TemporalConfig, opts ...TemporalOption) (*Temporal, error) {
	o := temporalOptions{connectTimeout: DefaultTemporalConnectTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	norm, tlsConf, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	copts := client.Options{
		HostPort:  norm.Address,
		Namespace: norm.Namespace,
		Logger:    tlog.NewStructuredLogger(logger),
		ConnectionOptions: client.ConnectionOptions{
			TLS:                  tlsConf,
			GetSystemInfoTimeout: o.connectTimeout,
		},
	}
	if norm.APIKey != "" {
		copts.Credentials = client.NewAPIKeyStaticCredentials(norm.APIKey)
	}
	t := &Temporal{
		cfg:      norm,
		opts:     copts,
		limiter:  rate.NewLimiter(rate.Limit(norm.RequestsPerSecond), 1),
		secrets:  norm.Secrets(),
		dialWait: o.connectTimeout,
		done:     make(chan struct{}),
	}
	if norm.TaskQueue != "" {
		t.perApp = UsesAppName(norm.TaskQueue)
		for _, name := range norm.queueTypes() {
			t.types = append(t.types, queueTypes[name])
		}
	} else {
		t.perApp = UsesAppName(norm.Query)
	}
	return t, nil
}

// Name returns the metric name.
func (t *Temporal) Name() string { return t.cfg.Name }

// Config returns the normalized configuration.
func (t *Temporal) Config() TemporalConfig { return t.cfg }

// FleetWide reports whether the task queue or query has no $APP_NAME, so
// that one answer serves every app.
func (t *Temporal) FleetWide() bool { return !t.perApp }

// String describes the source without its secrets.
func (t *Temporal) String() string {
	return fmt.Sprintf("temporal metric %q at %s namespace %q", t.cfg.Name, t.cfg.Address, t.cfg.Namespace)
}

// GoString keeps the secrets out of %#v.
func (t *Temporal) GoString() string { return t.String() }

// Collect returns the value for app: the backlog of its task queue, or the
// number of its running workflows. Every error fails the app; none reads
// as 0.
func (t *Temporal) Collect(ctx context.Context, app string) (float64, error) {
	return collectApp(ctx, t, app, t.measure)
}

// CollectFleet measures once for a task queue or query without $APP_NAME;
// the value applies to every app.
func (t *Temporal) CollectFleet(ctx context.Context) (Lookup, error) {
	if t.perApp {
		return nil, errors.New("task queue or query uses $APP_NAME: not fleet-wide")
	}
	v, err := t.measure(ctx, "")
	if err != nil {
		return nil, err
	}
	return func(string) (float64, error) { return v, nil }, nil
}

func (t *Temporal) measure(ctx context.Context, app string) (float64, error) {
	c, err := t.connect(ctx)
	if err != nil {
		return 0, err
	}
	if t.cfg.TaskQueue != "" {
		return t.backlog(ctx, c, Expand(t.cfg.TaskQueue, app))
	}
	return t.running(ctx, c, Expand(t.cfg.Query, app))
}

// backlog sums the approximate backlog of the queue's types, one request
// each: DescribeTaskQueue has no form that answers for several.
func (t *Temporal) backlog(ctx context.Context, c client.Client, queue string) (float64, error) {
	var sum int64
	for _, typ := range t.types {
		what := fmt.Sprintf("describe task queue %q (%s)", queue, queueTypeName(typ))
		if err := t.pace(ctx); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		resp, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace:     t.cfg.Namespace,
			TaskQueue:     &taskqueuepb.TaskQueue{Name: queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: typ,
			ReportStats:   true,
		})
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, t.requestError(err))
		}
		stats := resp.GetStats()
		if stats == nil {
			return 0, fmt.Errorf("%s: the server reported no statistics (task-queue needs Temporal server 1.25 or later; use query on older ones)", what)
		}
		sum += stats.GetApproximateBacklogCount()
	}
	return float64(sum), nil
}

// running counts the running workflows that match query, as the original
// fly-autoscaler does.
func (t *Temporal) running(ctx context.Context, c client.Client, query string) (float64, error) {
	q := `ExecutionStatus="Running" AND (` + query + `)`
	if err := t.pace(ctx); err != nil {
		return 0, fmt.Errorf("count workflows: %w", err)
	}
	resp, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: t.cfg.Namespace,
		Query:     q,
	})
	if err != nil {
		return 0, fmt.Errorf("count workflows %s: %w", q, t.requestError(err))
	}
	return float64(resp.GetCount()), nil
}

// pace waits for the limiter's next slot, or fails when ctx ends first.
func (t *Temporal) pace(ctx context.Context) error {
	if err := t.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("wait for the next request slot (requests-per-second %g): %w", t.cfg.RequestsPerSecond, err)
	}
	return nil
}

// connect returns the run's client, dialling it on first use. The attempt
// is detached from the caller's ctx, so that one app's deadline cannot fail
// it for the others, and bounded by the connect timeout; each caller waits
// for it only as long as its own ctx allows. A failed attempt is kept: every
// later caller gets its error.
func (t *Temporal) connect(ctx context.Context) (client.Client, error) {
	t.once.Do(func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.dialWait)
		go func() {
			defer close(t.done)
			defer cancel()
			c, err := client.DialContext(dctx, t.opts)
			if err != nil {
				t.err = fmt.Errorf("connect to %s: %w", t.cfg.Address, t.requestError(err))
				return
			}
			t.client = c
		}()
	})
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the connection to %s: %w", t.cfg.Address, ctx.Err())
	}
	return t.client, t.err
}

// errClosed is the error of a source used after Close.
var errClosed = errors.New("temporal source closed")

// Close closes the connection, once any attempt in progress is over. A
// closed source fails every later Collect.
func (t *Temporal) Close() error {
	t.once.Do(func() {
		t.err = errClosed
		close(t.done)
	})
	<-t.done
	if t.client != nil {
		t.closeOnce.Do(t.client.Close)
	}
	return nil
}

// requestKinds names the failures of a request by their gRPC code, with
// the fix where there is one.
var requestKinds = map[codes.Code]string{
	codes.NotFound:          "not found",
	codes.InvalidArgument:   "invalid argument",
	codes.PermissionDenied:  "permission denied (check api-key or the client certificate)",
	codes.Unauthenticated:   "unauthenticated (check api-key or the client certificate)",
	codes.Unavailable:       "unavailable",
	codes.DeadlineExceeded:  "deadline exceeded",
	codes.ResourceExhausted: "rate limited by the server (lower requests-per-second)",
}

// requestError names the kind of a failed request (not found, invalid
// argument, permission denied, unavailable, deadline exceeded) before the
// server's message, with the secrets taken out. It unwraps to err.
func (t *Temporal) requestError(err error) error {
	err = redactError(err, t.secrets)
	if kind, ok := requestKinds[serviceerror.ToStatus(err).Code()]; ok {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return err
}

func queueTypeName(typ enumspb.TaskQueueType) string {
	for name, t := range queueTypes {
		if t == typ {
			return name
		}
	}
	return typ.String()
}
