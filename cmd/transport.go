package cmd

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale"
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
	attrs := []any{"method", req.Method, "url", redact.RedactURL(req.URL.String()),
		"elapsed", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		t.log.Debug("http", append(attrs, "error", err.Error())...)
		return resp, err
	}
	t.log.Debug("http", append(attrs, "status", resp.StatusCode)...)
	return resp, nil
}

// connsPerWorker is the connections to one host a worker may hold: its
// app's list or query, or that app's actions in flight at once.
const connsPerWorker = 8

// pooledTransport is http.DefaultTransport with room in its pool for the
// connections of conc workers to one host. The default keeps two idle
// connections per host: at --concurrency 32 most requests of a run would
// open a new connection, with a TLS handshake, round trips the run then
// waits for.
func pooledTransport(conc int) *http.Transport {
	conc = max(conc, 1)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit over all hosts
	// A worker holds its app's list or query, or that app's actions in
	// flight at once.
	t.MaxIdleConnsPerHost = conc * scale.MaxActionsInFlight
	return t
}
