package cmd

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/superfly/fly-autoscaler/query"
)

// logTransport logs every HTTP request at debug level: method, URL without
// credentials, status and duration. Headers, where the tokens are, are
// never logged.
type logTransport struct {
	base http.RoundTripper
	log  *slog.Logger
}

func newLogTransport(base http.RoundTripper, log *slog.Logger) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &logTransport{base: base, log: log}
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	attrs := []any{"method", req.Method, "url", query.RedactURL(req.URL.String()),
		"elapsed", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		t.log.Debug("http", append(attrs, "error", err.Error())...)
		return resp, err
	}
	t.log.Debug("http", append(attrs, "status", resp.StatusCode)...)
	return resp, nil
}

// redirectTransport sends the requests addressed to one origin (scheme and
// host) to another. fly-go's Machines API client reads its base URL from
// FLY_FLAPS_BASE_URL and has no option for it; this transport lets the demo
// point it at a loopback server without touching the process environment.
type redirectTransport struct {
	base     http.RoundTripper
	from, to *url.URL
}

func newRedirectTransport(base http.RoundTripper, from, to string) (http.RoundTripper, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	f, err := url.Parse(from)
	if err != nil || f.Host == "" {
		return nil, fmt.Errorf("redirect from %q: not an absolute URL", from)
	}
	t, err := url.Parse(to)
	if err != nil || t.Host == "" {
		return nil, fmt.Errorf("redirect to %q: not an absolute URL", to)
	}
	return &redirectTransport{base: base, from: f, to: t}, nil
}

func (t *redirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Scheme, t.from.Scheme) || !strings.EqualFold(req.URL.Host, t.from.Host) {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.to.Scheme, t.to.Host, ""
	return t.base.RoundTrip(r)
}

// connsPerWorker is the connections to one host a worker may hold: its
// app's list or query, or that app's actions in flight at once.
const connsPerWorker = 8

// pooledTransport is http.DefaultTransport with room in its pool for the
// connections of conc workers to one host. The default keeps two idle
// connections per host: at --concurrency 16 most requests of a run would
// open a new connection, with a TLS handshake, round trips the run then
// waits for.
func pooledTransport(conc int) *http.Transport {
	conc = max(conc, 1)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit over all hosts
	t.MaxIdleConnsPerHost = conc * connsPerWorker
	return t
}
