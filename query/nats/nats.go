package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// Config configures one NATS JetStream source: the backlog of a
// consumer, num_pending + num_ack_pending.
type Config struct {
	// URL is the server address, or several separated by commas
	// (nats://host:4222, tls://host:4222, or host:port). Credentials in it
	// (nats://user:pass@host, nats://token@host) are used to connect.
	URL string `key:"url" flag:"nats-url" defines:"true" need:"the NATS server, e.g. nats://nats.internal:4222" help:"NATS server {URL}s, comma-separated, e.g. nats://nats.internal:4222"`
	// Name is the metric name, the variable scaling expressions refer to.
	Name string `key:"metric-name" flag:"nats-metric-name" defines:"true" need:"the name the expressions use for the backlog" help:"{NAME} of the consumer's backlog in expressions"`
	// Stream and Consumer name the consumer; $APP_NAME is replaced by the
	// app's name.
	Stream   string `key:"stream" template:"true" flag:"nats-stream" defines:"true" need:"the JetStream stream, e.g. jobs-$APP_NAME" help:"JetStream {STREAM}; $APP_NAME is replaced by the app's name"`
	Consumer string `key:"consumer" template:"true" flag:"nats-consumer" defines:"true" need:"the consumer, e.g. workers" help:"{CONSUMER} whose backlog (pending + ack pending) is the value; $APP_NAME is replaced"`
	// PendingOnly counts only num_pending: messages delivered but not yet
	// acknowledged (num_ack_pending) are left out. Off by default: those
	// are still work. The config file says it the other way round:
	// include-ack-pending: false (negate:"true": the key is the field's
	// opposite).
	PendingOnly bool `key:"include-ack-pending" negate:"true"`
	// Credentials: at most one of Creds (a .creds file), NKeySeedFile,
	// Token, and User with Password. The files' keys are secrets too
	// (Secrets reads them).
	Token        string `key:"token" flag:"nats-token" secret:"true" defines:"true" help:"{TOKEN} for the NATS server"`
	Creds        string `key:"creds" flag:"nats-creds" defines:"true" help:"NATS credentials {FILE} (.creds)"`
	NKeySeedFile string `key:"nkey-seed-file"`
	User         string `key:"user"`
	Password     string `key:"password" secret:"true"`
	// TLSCA is a CA bundle file; TLSCert and TLSKey a client certificate.
	TLSCA   string `key:"tls-ca"`
	TLSCert string `key:"tls-cert"`
	TLSKey  string `key:"tls-key"`
	// Domain is the JetStream domain ("" for the server's own).
	Domain string `key:"domain"`
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("nats metric %q url=%s stream=%q consumer=%q", c.Name, redact.RedactURL(c.URL), c.Stream, c.Consumer)
}

// GoString keeps the secrets out of %#v.
func (c Config) GoString() string { return c.String() }

// Validate checks c. Its errors name the field by its configuration key.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

func (c Config) normalize() (Config, error) {
	errorf, err := query.CheckName("nats", c.Name)
	if err != nil {
		return c, err
	}
	fail := func(format string, args ...any) (Config, error) {
		return c, errorf(format, args...)
	}
	urls, err := natsURLs(c.URL)
	if err != nil {
		return fail("url: %v", err)
	}
	c.URL = strings.Join(urls, ",")
	for _, f := range []struct{ key, val string }{{"stream", c.Stream}, {"consumer", c.Consumer}} {
		if strings.TrimSpace(f.val) == "" {
			return fail("%s: empty", f.key)
		}
		if err := natsName(query.Expand(f.val, "app")); err != nil {
			return fail("%s %q: %v", f.key, f.val, err)
		}
	}
	c.Token = strings.TrimSpace(c.Token)
	n := 0
	for _, set := range []bool{c.Creds != "", c.NKeySeedFile != "", c.Token != "", c.User != "" || c.Password != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fail("creds, nkey-seed-file, token, user: set one kind of credentials, not several")
	}
	if (c.User == "") != (c.Password == "") {
		return fail("user, password: set both or neither")
	}
	for _, f := range []struct{ key, path string }{{"creds", c.Creds}, {"nkey-seed-file", c.NKeySeedFile},
		{"tls-ca", c.TLSCA}, {"tls-cert", c.TLSCert}, {"tls-key", c.TLSKey}} {
		if err := query.ReadableFile(f.path); err != nil {
			return fail("%s: %v", f.key, err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fail("tls-cert, tls-key: set both or neither")
	}
	if c.Domain != "" {
		if err := natsName(c.Domain); err != nil {
			return fail("domain %q: %v", c.Domain, err)
		}
	}
	return c, nil
}

// natsURLs splits and checks a comma-separated server list.
func natsURLs(raw string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(raw, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("%s: not a URL", redact.RedactURL(u))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("%s: want nats://, tls://, ws:// or wss://", redact.RedactURL(u))
		}
		if p.Hostname() == "" {
			return nil, fmt.Errorf("%s: no host", redact.RedactURL(u))
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("empty: give the server, e.g. nats://nats.internal:4222")
	}
	return out, nil
}

// natsName checks a stream, consumer or domain name: it becomes a token of
// an API subject, so it may not hold dots, wildcards or whitespace.
func natsName(s string) error {
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return fmt.Errorf("character %q not allowed in a name", s[i])
	}
	return nil
}

// Secrets returns what must never be printed about c: the token, the
// password, the credentials of its URLs and the keys in its creds and
// nkey seed files.
func (c Config) Secrets() []string {
	out := append([]string{c.Token, c.Password}, redact.URLSecrets(c.URL)...)
	for _, path := range []string{c.Creds, c.NKeySeedFile} {
		out = append(out, query.FileSecrets(path)...)
	}
	return query.NonEmpty(out)
}

// MetricName is the name the expressions use for the backlog.
func (c Config) MetricName() string { return c.Name }

var _ query.SourceConfig = Config{}

// Build is New for a run: tracing its requests to rt's log.
func Build(cfg Config, rt query.Runtime) (query.Source, error) {
	return New(cfg, query.WithTrace(rt.Tracer()))
}

// NATS is a BatchSource that reads consumer backlogs through the JetStream
// API. A run connects once; apps whose consumers share a stream are served
// by one listing of that stream's consumers, the others by one consumer
// info request each.
type NATS struct {
	cfg    Config
	red    *redact.Redactor // its secrets, in every form
	opts   query.SourceOptions
	dialer natsio.CustomDialer // tests count connection attempts
}

var _ query.BatchSource = (*NATS)(nil)

// New validates cfg and returns a source that reads it. It does not
// connect: each run does, in Start.
func New(cfg Config, opts ...query.SourceOption) (*NATS, error) {
	norm, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return &NATS{cfg: norm, red: redact.ForSecrets(norm.Secrets()...), opts: query.NewSourceOptions(opts)}, nil
}

// Name returns the metric name.
func (n *NATS) Name() string { return n.cfg.Name }

// String describes the source without its secrets.
func (n *NATS) String() string { return n.cfg.String() }

// GoString keeps the secrets out of %#v.
func (n *NATS) GoString() string { return n.String() }

// Collect reads app's value on a connection of its own. A Set uses Start
// instead, to share one connection among the apps of a run.
func (n *NATS) Collect(ctx context.Context, app string) (float64, error) {
	b, err := n.Start(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	r, err := b.Read(ctx, app)
	return r.Value, err
}

// Start connects, with one attempt per server of the URL list bounded by
// ctx, and lists the consumers of every stream that two or more of apps
// share.
func (n *NATS) Start(ctx context.Context, apps []string) (query.Batch, error) {
	nc, err := n.connect(ctx)
	if err != nil {
		return nil, err
	}
	var js jetstream.JetStream
	if n.cfg.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, n.cfg.Domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", n.redact(err))
	}
	prefix := jetstream.DefaultAPIPrefix
	if n.cfg.Domain != "" {
		prefix = "$JS." + n.cfg.Domain + ".API."
	}
	b := &natsBatch{src: n, nc: nc, js: js, prefix: prefix, listed: map[string]map[string]*jetstream.ConsumerInfo{}}
	b.list(ctx, apps)
	return b, nil
}

// connect makes the run's one connection attempt.
func (n *NATS) connect(ctx context.Context) (*natsio.Conn, error) {
	timeout := query.DefaultConnectTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("connect: %w", context.DeadlineExceeded)
	}
	opts := []natsio.Option{
		natsio.Name("fly-autoscaler"),
		natsio.Timeout(timeout),
		natsio.NoReconnect(),
		natsio.RetryOnFailedConnect(false),
		natsio.NoCallbacksAfterClientClose(),
		// The default handler prints to stderr, bypassing redaction.
		natsio.ErrorHandler(func(*natsio.Conn, *natsio.Subscription, error) {}),
	}
	c := n.cfg
	switch {
	case c.Creds != "":
		opts = append(opts, natsio.UserCredentials(c.Creds))
	case c.NKeySeedFile != "":
		o, err := natsio.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey-seed-file %s: %w", c.NKeySeedFile, n.redact(err))
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, natsio.Token(c.Token))
	case c.User != "":
		opts = append(opts, natsio.UserInfo(c.User, c.Password))
	}
	if c.TLSCA != "" {
		opts = append(opts, natsio.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, natsio.ClientCert(c.TLSCert, c.TLSKey))
	}
	if n.dialer != nil {
		opts = append(opts, natsio.SetCustomDialer(n.dialer))
	}
	var nc *natsio.Conn
	err := n.opts.Traced(c.Name, "connect "+redact.RedactURL(c.URL), func() error {
		var err error
		nc, err = natsio.Connect(c.URL, opts...)
		return n.redact(err)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact.RedactURL(c.URL), err)
	}
	return nc, nil
}

func (n *NATS) redact(err error) error { return query.RedactError(err, n.red) }

// natsBatch is one run of a NATS source.
type natsBatch struct {
	src    *NATS
	nc     *natsio.Conn
	js     jetstream.JetStream
	prefix string // JetStream API subject prefix

	mu     sync.Mutex
	listed map[string]map[string]*jetstream.ConsumerInfo // stream → consumer → info
}

// maxListings is how many stream listings run at once.
const maxListings = 4

// list lists the consumers of each stream shared by two or more apps. A
// listing that fails is not an error: its apps are read one by one.
func (b *natsBatch) list(ctx context.Context, apps []string) {
	count := map[string]int{}
	var shared []string
	for _, app := range apps {
		s := query.Expand(b.src.cfg.Stream, app)
		if count[s]++; count[s] == 2 {
			shared = append(shared, s)
		}
	}
	var g errgroup.Group
	g.SetLimit(maxListings)
	for _, stream := range shared {
		g.Go(func() error {
			infos, err := b.listStream(ctx, stream)
			if err == nil {
				b.mu.Lock()
				b.listed[stream] = infos
				b.mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
}

// listStream returns the consumers of stream that have a leader, by name.
func (b *natsBatch) listStream(ctx context.Context, stream string) (map[string]*jetstream.ConsumerInfo, error) {
	infos := map[string]*jetstream.ConsumerInfo{}
	err := b.src.opts.Traced(b.src.cfg.Name, fmt.Sprintf("list consumers of stream %s", stream), func() error {
		st, err := b.js.Stream(ctx, stream)
		if err != nil {
			return b.src.redact(err)
		}
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			// In a cluster, an offline consumer is listed without a
			// leader: its figures may be stale or zero, so it is read
			// on its own. A single server lists no cluster at all.
			if ci.Cluster == nil || ci.Cluster.Leader != "" {
				infos[ci.Name] = ci
			}
		}
		return b.src.redact(l.Err())
	})
	return infos, err
}

// Read returns the backlog of app's consumer, from the listing of its
// stream when it is there, else from the consumer's own info.
func (b *natsBatch) Read(ctx context.Context, app string) (query.Reading, error) {
	if err := query.ValidAppName(app); err != nil {
		return query.Reading{}, err
	}
	stream, consumer := query.Expand(b.src.cfg.Stream, app), query.Expand(b.src.cfg.Consumer, app)
	b.mu.Lock()
	ci := b.listed[stream][consumer]
	b.mu.Unlock()
	if ci == nil {
		var err error
		if ci, err = b.consumerInfo(ctx, stream, consumer); err != nil {
			return query.Reading{}, fmt.Errorf("stream %s consumer %s: %w", stream, consumer, err)
		}
	}
	v := float64(ci.NumPending)
	if !b.src.cfg.PendingOnly {
		v += float64(ci.NumAckPending)
	}
	return query.Reading{Value: v}, nil
}

// consumerInfo asks for one consumer's info: one request, answered by the
// consumer's leader, whether it is a pull or a push consumer (jetstream's
// Consumer and PushConsumer each refuse the other kind).
func (b *natsBatch) consumerInfo(ctx context.Context, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	var resp struct {
		jetstream.ConsumerInfo
		Error *jetstream.APIError `json:"error"`
	}
	subject := b.prefix + "CONSUMER.INFO." + stream + "." + consumer
	err := b.src.opts.Traced(b.src.cfg.Name, fmt.Sprintf("consumer info %s/%s", stream, consumer), func() error {
		msg, err := b.nc.RequestWithContext(ctx, subject, nil)
		switch {
		case errors.Is(err, natsio.ErrNoResponders):
			return errors.New("no JetStream answered: is JetStream enabled, and the domain right?")
		case err != nil:
			return b.src.redact(err)
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return fmt.Errorf("consumer info: %w", err)
		}
		if e := resp.Error; e != nil {
			switch e.ErrorCode {
			case jetstream.JSErrCodeConsumerNotFound:
				return query.ResultErrorf(jetstream.ErrConsumerNotFound, "consumer not found")
			case jetstream.JSErrCodeStreamNotFound:
				return query.ResultErrorf(jetstream.ErrStreamNotFound, "stream not found")
			}
			return fmt.Errorf("consumer info: %s (JetStream error %d)", e.Description, e.ErrorCode)
		}
		if resp.Name == "" {
			return jetstream.ErrConsumerNotFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &resp.ConsumerInfo, nil
}

// Close closes the run's connection.
func (b *natsBatch) Close() error {
	b.nc.Close()
	return nil
}
