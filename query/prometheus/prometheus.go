package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// DefaultAppLabel is the label that carries the app name in the result of a
// fleet-wide query.
const DefaultAppLabel = "app"

// Config configures one Prometheus source.
type Config struct {
	// Address is the base URL of the Prometheus HTTP API, for example
	// https://api.fly.io/prometheus/my-org. Credentials in it
	// (https://user:pass@host) are sent as basic auth when Token is empty.
	Address string `key:"address" flag:"prometheus-address" defines:"true" need:"the Prometheus HTTP API base URL, e.g. https://api.fly.io/prometheus/my-org" help:"Prometheus {address}, e.g. https://api.fly.io/prometheus/my-org"`
	// Name is the metric name, the variable scaling expressions refer to.
	Name string `key:"metric-name" flag:"prometheus-metric-name" defines:"true" need:"the name the expressions use for the query's value" help:"{name} of the query's value in expressions"`
	// Query is the PromQL expression. With $APP_NAME or ${APP_NAME} it runs
	// once per app; without, once per run for the whole fleet.
	Query string `key:"query" template:"true" flag:"prometheus-query" defines:"true" need:"the PromQL query, e.g. sum(queue_depth{app=\"$APP_NAME\"})" help:"PromQL {query}; $APP_NAME is replaced by the app's name"`
	// Token authenticates the queries: "FlyV1 ..." is sent verbatim in the
	// Authorization header, anything else as "Bearer <token>".
	Token string `key:"token" flag:"prometheus-token" secret:"true" help:"{token} for Prometheus (FlyV1 tokens sent as is, others as Bearer)"`
	// AppLabel is the label that names the app in the result of a
	// fleet-wide query; "" means DefaultAppLabel.
	AppLabel string `key:"app-label" flag:"prometheus-app-label" help:"{label} naming the app in a fleet-wide query's series (default: app)"`
	// OnEmpty says what a missing value (no series, or NaN) means.
	OnEmpty query.OnEmpty `key:"on-empty" flag:"prometheus-on-empty" help:"{mode} for a query without series or with NaN: error (skip the app) or zero (default: error)"`
}

// String describes c without its token or the credentials of its address.
func (c Config) String() string {
	tok := ""
	if c.Token != "" {
		tok = " token=" + redact.Redacted
	}
	return fmt.Sprintf("prometheus metric %q address=%s query=%q app-label=%q on-empty=%s%s",
		c.Name, redact.RedactURL(c.Address), c.Query, c.AppLabel, c.OnEmpty, tok)
}

// GoString keeps the token out of %#v.
func (c Config) GoString() string { return c.String() }

var labelPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// quotedPiece is a quoted piece of an address in an error of url.Parse.
var quotedPiece = regexp.MustCompile(` ?"[^"]*"`)

// Validate checks c. Its errors name the field by its configuration key
// (metric-name, address, query, token, app-label, on-empty).
func (c Config) Validate() error {
	_, _, err := c.normalize()
	return err
}

// normalize validates c and returns it with the token trimmed, the app label
// defaulted and the credentials taken out of the address.
func (c Config) normalize() (Config, *url.Userinfo, error) {
	errorf, err := query.CheckName("prometheus", c.Name)
	if err != nil {
		return c, nil, err
	}
	fail := func(format string, args ...any) (Config, *url.Userinfo, error) {
		return c, nil, errorf(format, args...)
	}
	if strings.TrimSpace(c.Query) == "" {
		return fail("query: empty")
	}
	c.Token = strings.TrimSpace(c.Token)
	if strings.ContainsFunc(c.Token, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fail("token: contains a control character")
	}
	if c.AppLabel == "" {
		c.AppLabel = DefaultAppLabel
	}
	if !labelPattern.MatchString(c.AppLabel) {
		return fail("app-label %q: not a valid label name", c.AppLabel)
	}
	if c.OnEmpty != query.OnEmptyError && c.OnEmpty != query.OnEmptyZero {
		return fail("on-empty: %s: want error or zero", c.OnEmpty)
	}
	if c.Address == "" {
		return fail("address: empty")
	}
	u, err := url.Parse(c.Address)
	if err != nil {
		// url.Parse quotes the address in its error: say only what is wrong.
		// Its inner error quotes a piece of it too (invalid port ":pa"
		// after host, where ":pa" begins a password that holds a "/"):
		// the quoted pieces are left out.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fail("address %s: %s", redact.RedactURL(c.Address), quotedPiece.ReplaceAllString(err.Error(), ""))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fail("address %s: want an http or https URL", redact.RedactURL(c.Address))
	case u.Host == "":
		return fail("address %s: no host", redact.RedactURL(c.Address))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fail("address %s: want no query or fragment", redact.RedactURL(c.Address))
	case isAPIPath(u.Path):
		// The client appends /api/v1/query itself: an address that has it
		// already would query .../api/v1/query/api/v1/query.
		return fail("address: give the base URL without /api/v1/query")
	}
	user := u.User
	u.User = nil
	c.Address = u.String()
	return c, user, nil
}

// isAPIPath reports whether an address path ends with the HTTP API's own
// path (/api/v1, /api/v1/query or /api/v1/query_range).
func isAPIPath(path string) bool {
	path = strings.TrimRight(path, "/")
	for _, suffix := range []string{"/api/v1", "/api/v1/query", "/api/v1/query_range"} {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

// Option changes how New builds a source.
type Option func(*options)

type options struct {
	transport http.RoundTripper
	now       func() time.Time
}

// WithTransport sets the HTTP transport under the authentication layer
// (default api.DefaultRoundTripper).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithClock sets the clock that gives the evaluation time of each query
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// MetricName is the name the expressions use for the query's value.
func (c Config) MetricName() string { return c.Name }

// Secrets returns what must never be printed about c: its token and the
// credentials of its address.
func (c Config) Secrets() []string {
	return query.NonEmpty(append([]string{strings.TrimSpace(c.Token)}, redact.URLSecrets(c.Address)...))
}

var _ query.SourceConfig = Config{}

// Build is New for a run: over rt's HTTP transport, when it has one.
func Build(cfg Config, rt query.Runtime) (query.Source, error) {
	var opts []Option
	if rt.HTTP != nil {
		opts = append(opts, WithTransport(rt.HTTP))
	}
	return New(cfg, opts...)
}

// Prometheus is a Source backed by the Prometheus HTTP API. It is safe for
// concurrent use and holds no per-run state.
type Prometheus struct {
	cfg    Config // normalized: no credentials in Address
	api    v1.API
	perApp bool
	red    *redact.Redactor // its credentials, in every form
	now    func() time.Time
}

var _ query.FleetSource = (*Prometheus)(nil)

// New validates cfg and returns a source that queries it.
func New(cfg Config, opts ...Option) (*Prometheus, error) {
	o := options{transport: api.DefaultRoundTripper, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	norm, user, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	// CredentialSecrets gives the forms already.
	red := redact.NewRedactor(redact.CredentialSecrets(norm.Token, user)...)
	client, err := api.NewClient(api.Config{
		Address:      norm.Address,
		RoundTripper: &query.AuthTransport{Header: query.Authorization(norm.Token, user), Base: o.transport},
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus metric %q: %w", norm.Name, query.RedactError(err, red))
	}
	return &Prometheus{
		cfg:    norm,
		api:    v1.NewAPI(client),
		perApp: query.UsesAppName(norm.Query),
		red:    red,
		now:    o.now,
	}, nil
}

// Name returns the metric name.
func (p *Prometheus) Name() string { return p.cfg.Name }

// FleetWide reports whether the query has no $APP_NAME, so that one query
// answers for every app.
func (p *Prometheus) FleetWide() bool { return !p.perApp }

// String describes the source without its token.
func (p *Prometheus) String() string {
	return fmt.Sprintf("prometheus metric %q at %s", p.cfg.Name, p.cfg.Address)
}

// GoString keeps the token out of %#v.
func (p *Prometheus) GoString() string { return p.String() }

// Collect returns the value for app. A per-app query is expanded for app and
// must give a scalar or exactly one sample. A fleet-wide query is run and
// split (without caching: a Set runs it once per run instead).
func (p *Prometheus) Collect(ctx context.Context, app string) (float64, error) {
	return query.CollectApp(ctx, p, app, func(ctx context.Context, app string) (float64, error) {
		val, err := p.query(ctx, query.Expand(p.cfg.Query, app))
		if err != nil {
			return 0, err
		}
		return p.single(val)
	})
}

// CollectFleet runs the fleet-wide query and returns the lookup that splits
// its result. A vector whose series carry the app label gives each app its
// own series (series without the label are ignored); a scalar, or a single
// series without the label, applies to every app.
func (p *Prometheus) CollectFleet(ctx context.Context) (query.Lookup, error) {
	if p.perApp {
		return nil, errors.New("query uses $APP_NAME: not fleet-wide")
	}
	val, err := p.query(ctx, p.cfg.Query)
	if err != nil {
		return nil, err
	}
	switch val := val.(type) {
	case *model.Scalar:
		v, err := p.value(float64(val.Value), "query returned NaN")
		return func(string) (float64, error) { return v, err }, nil
	case model.Vector:
		return p.split(val)
	}
	return nil, unexpectedType(val)
}

// appSeries is what a lookup keeps of an app's series: the decoded vector
// (every series with its labels, for the whole fleet) is not held for the
// run.
type appSeries struct {
	// n counts the app's series; value and histogram are the first's.
	n         int
	value     float64
	histogram bool
}

func (p *Prometheus) split(vec model.Vector) (query.Lookup, error) {
	label := model.LabelName(p.cfg.AppLabel)
	byApp := map[string]appSeries{}
	var unlabeled []*model.Sample
	for _, s := range vec {
		if app := s.Metric[label]; app != "" {
			as := byApp[string(app)]
			if as.n == 0 {
				as.value, as.histogram = float64(s.Value), s.Histogram != nil
			}
			as.n++
			byApp[string(app)] = as
		} else {
			unlabeled = append(unlabeled, s)
		}
	}
	if len(byApp) == 0 {
		switch len(unlabeled) {
		case 0:
			v, err := p.value(math.NaN(), "query returned no series")
			return func(string) (float64, error) { return v, err }, nil
		case 1:
			v, err := p.sample(unlabeled[0])
			return func(string) (float64, error) { return v, err }, nil
		}
		return nil, query.ResultErrorf(query.ErrManySeries, "query returned %d series without label %q, want 1 or one per app", len(unlabeled), p.cfg.AppLabel)
	}
	return func(app string) (float64, error) {
		as := byApp[app]
		switch as.n {
		case 0:
			return p.value(math.NaN(), fmt.Sprintf("query returned no series with %s=%q", label, app))
		case 1:
			return p.floatValue(as.value, as.histogram)
		}
		return 0, query.ResultErrorf(query.ErrManySeries, "query returned %d series with %s=%q, want 1", as.n, label, app)
	}, nil
}

// query runs q at the current time. Warnings are dropped: a result with
// warnings is still a result.
func (p *Prometheus) query(ctx context.Context, q string) (model.Value, error) {
	val, _, _, err := p.api.Query(ctx, q, p.now())
	if err != nil {
		return nil, fmt.Errorf("query: %w", query.RedactError(err, p.red))
	}
	return val, nil
}

// single reads the value of a per-app query.
func (p *Prometheus) single(val model.Value) (float64, error) {
	switch val := val.(type) {
	case *model.Scalar:
		return p.value(float64(val.Value), "query returned NaN")
	case model.Vector:
		switch len(val) {
		case 0:
			return p.value(math.NaN(), "query returned no series")
		case 1:
			return p.sample(val[0])
		}
		return 0, query.ResultErrorf(query.ErrManySeries, "query returned %d series, want 1", len(val))
	}
	return 0, unexpectedType(val)
}

func (p *Prometheus) sample(s *model.Sample) (float64, error) {
	return p.floatValue(float64(s.Value), s.Histogram != nil)
}

// floatValue is the value of a sample of value v, or of a native
// histogram sample when histogram is set.
func (p *Prometheus) floatValue(v float64, histogram bool) (float64, error) {
	if histogram {
		return 0, query.ResultErrorf(query.ErrResultType, "query returned a native histogram sample, want a float")
	}
	return p.value(v, "query returned NaN")
}

// NoSeriesHint follows the error of a query that returned no series: the
// two ways out, when no series means no work (a queue whose series exists
// only while it holds messages).
const NoSeriesHint = `(set --prometheus-on-empty zero, or add "or vector(0)" to the query, if no series means no work)`

// value applies the on-empty policy to NaN, which stands for no value.
// Infinity is always an error: no scaling expression can use it.
func (p *Prometheus) value(v float64, missing string) (float64, error) {
	switch {
	case math.IsNaN(v):
		if p.cfg.OnEmpty == query.OnEmptyZero {
			return 0, nil
		}
		if strings.Contains(missing, "no series") {
			missing += " " + NoSeriesHint
		}
		return 0, query.ResultErrorf(query.ErrNoData, "%s", missing)
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("query returned %v", v)
	}
	return v, nil
}

func unexpectedType(val model.Value) error {
	if val == nil {
		return query.ResultErrorf(query.ErrResultType, "query returned no result")
	}
	return query.ResultErrorf(query.ErrResultType, "query returned a %s, want a scalar or an instant vector", val.Type())
}
