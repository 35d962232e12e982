package temporal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// Option changes how New builds a source.
type Option func(*options)

type options struct {
	connectTimeout time.Duration
	logger         *slog.Logger
}

// WithConnectTimeout bounds the connection attempt (default
// DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.connectTimeout = d }
}

// WithLogger sends the source's connection log to l, at debug
// level: the server reached and its version (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Temporal is a Source backed by a Temporal frontend, called through its
// gRPC WorkflowService (wire.go). It connects once, on first use, and every app of
// the run shares that connection, so an unreachable server costs one
// bounded attempt, not one per app. Requests are paced on the client side.
// Close it when the run is over.
type Temporal struct {
	cfg      Config // normalized
	dialOpts []grpc.DialOption
	types    []uint64 // temporal.api.enums.v1.TaskQueueType
	perApp   bool
	limiter  *rate.Limiter
	red      *redact.Redactor // its keys, in every form
	dialWait time.Duration
	logger   *slog.Logger

	once      sync.Once
	done      chan struct{}
	conn      *grpc.ClientConn
	err       error
	closeOnce sync.Once
}

var _ query.FleetSource = (*Temporal)(nil)

// New validates cfg and returns a source that queries it. It does
// not connect: the first Collect does.
func New(cfg Config, opts ...Option) (*Temporal, error) {
	o := options{connectTimeout: DefaultConnectTimeout}
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
	t := &Temporal{
		cfg:      norm,
		limiter:  rate.NewLimiter(rate.Limit(norm.RequestsPerSecond), 1),
		red:      redact.ForSecrets(norm.Secrets()...),
		dialWait: o.connectTimeout,
		logger:   logger,
		done:     make(chan struct{}),
	}
	t.dialOpts = temporalDialOptions(tlsConf)
	if norm.TaskQueue != "" {
		t.perApp = query.UsesAppName(norm.TaskQueue)
		for _, name := range norm.queueTypes() {
			t.types = append(t.types, queueTypes[name])
		}
	} else {
		t.perApp = query.UsesAppName(norm.Query)
	}
	return t, nil
}

// Build is New for a run: logging its connection to rt's log.
func Build(cfg Config, rt query.Runtime) (query.Source, error) {
	var opts []Option
	if rt.Log != nil {
		opts = append(opts, WithLogger(rt.Log))
	}
	return New(cfg, opts...)
}

// temporalDialOptions are the gRPC options of a connection to a Temporal
// frontend, those of Temporal's Go SDK: round robin over the addresses the
// name resolves to, reconnection backoff from 200ms to 10s, keepalive pings
// every 30s.
func temporalDialOptions(tlsConf *tls.Config) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	cp := grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: 20 * time.Second}
	cp.Backoff.BaseDelay, cp.Backoff.MaxDelay = 200*time.Millisecond, 10*time.Second
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin":{}}]}`),
		grpc.WithConnectParams(cp),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 15 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(wireCodec{})),
	}
}

// call makes one request of the WorkflowService with the headers Temporal
// expects: the namespace, for the calls that name one, and the API key as
// a bearer token. A failure is a *requestFailure.
func (t *Temporal) call(ctx context.Context, conn *grpc.ClientConn, method string, req []byte, namespaced bool) ([]byte, error) {
	var md []string
	if namespaced {
		md = append(md, "temporal-namespace", t.cfg.Namespace)
	}
	if t.cfg.APIKey != "" {
		md = append(md, "authorization", "Bearer "+t.cfg.APIKey)
	}
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var resp wireMessage
	if err := conn.Invoke(ctx, method, &wireMessage{b: req}, &resp); err != nil {
		return nil, &requestFailure{status.Convert(err)}
	}
	return resp.b, nil
}

// requestFailure is a failed request: its gRPC status, worded by the
// server's message alone, as Temporal's SDK words it.
type requestFailure struct{ st *status.Status }

func (e *requestFailure) Error() string { return e.st.Message() }

// GRPCStatus makes status.Code see the failure's code.
func (e *requestFailure) GRPCStatus() *status.Status { return e.st }

// Name returns the metric name.
func (t *Temporal) Name() string { return t.cfg.Name }

// Config returns the normalized configuration.
func (t *Temporal) Config() Config { return t.cfg }

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
	return query.CollectApp(ctx, t, app, t.measure)
}

// CollectFleet measures once for a task queue or query without $APP_NAME;
// the value applies to every app.
func (t *Temporal) CollectFleet(ctx context.Context) (query.Lookup, error) {
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
	conn, err := t.connect(ctx)
	if err != nil {
		return 0, err
	}
	if t.cfg.TaskQueue != "" {
		return t.backlog(ctx, conn, query.Expand(t.cfg.TaskQueue, app))
	}
	return t.running(ctx, conn, query.Expand(t.cfg.Query, app))
}

// backlog sums the approximate backlog of the queue's types, one request
// each: DescribeTaskQueue has no form that answers for several.
func (t *Temporal) backlog(ctx context.Context, conn *grpc.ClientConn, queue string) (float64, error) {
	var sum int64
	for _, typ := range t.types {
		what := fmt.Sprintf("describe task queue %q (%s)", queue, queueTypeName(typ))
		if err := t.pace(ctx); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		resp, err := t.call(ctx, conn, methodDescribeTaskQueue, describeTaskQueueRequest(t.cfg.Namespace, queue, typ), true)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, t.requestError(err))
		}
		n, ok, err := backlogCount(resp)
		switch {
		case err != nil:
			return 0, fmt.Errorf("%s: %w", what, err)
		case !ok:
			return 0, fmt.Errorf("%s: the server reported no statistics (task-queue needs Temporal server 1.25 or later; use query on older ones)", what)
		}
		sum += n
	}
	return float64(sum), nil
}

// running counts the running workflows that match query, as the original
// fly-autoscaler does.
func (t *Temporal) running(ctx context.Context, conn *grpc.ClientConn, query string) (float64, error) {
	q := `ExecutionStatus="Running" AND (` + query + `)`
	if err := t.pace(ctx); err != nil {
		return 0, fmt.Errorf("count workflows: %w", err)
	}
	resp, err := t.call(ctx, conn, methodCountWorkflowExecutions, countWorkflowExecutionsRequest(t.cfg.Namespace, q), true)
	if err != nil {
		return 0, fmt.Errorf("count workflows %s: %w", q, t.requestError(err))
	}
	n, err := workflowCount(resp)
	if err != nil {
		return 0, fmt.Errorf("count workflows %s: %w", q, err)
	}
	return float64(n), nil
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
func (t *Temporal) connect(ctx context.Context) (*grpc.ClientConn, error) {
	t.once.Do(func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.dialWait)
		go func() {
			defer close(t.done)
			defer cancel()
			if err := t.dial(dctx); err != nil {
				t.err = fmt.Errorf("connect to %s: %w", t.cfg.Address, t.requestError(err))
			}
		}()
	})
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the connection to %s: %w", t.cfg.Address, ctx.Err())
	}
	return t.conn, t.err
}

// dial opens the connection and makes sure the server answers, as
// Temporal's SDK does: a GetSystemInfo request (a server too old to know it
// answers Unimplemented, which counts as reached).
func (t *Temporal) dial(ctx context.Context) error {
	conn, err := grpc.NewClient(t.cfg.Address, t.dialOpts...)
	if err != nil {
		return err
	}
	info, err := t.call(ctx, conn, methodGetSystemInfo, nil, false)
	if err != nil && status.Code(err) != codes.Unimplemented {
		_ = conn.Close()
		return fmt.Errorf("failed reaching server: %w", err)
	}
	t.logger.Debug("temporal server reached", "metric", t.cfg.Name, "address", t.cfg.Address,
		"namespace", t.cfg.Namespace, "server_version", serverVersion(info))
	t.conn = conn
	return nil
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
	if t.conn != nil {
		t.closeOnce.Do(func() { _ = t.conn.Close() })
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
	err = query.RedactError(err, t.red)
	if kind, ok := requestKinds[status.Code(err)]; ok {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return err
}

func queueTypeName(typ uint64) string {
	for name, t := range queueTypes {
		if t == typ {
			return name
		}
	}
	return fmt.Sprintf("type %d", typ)
}
