package query

import (
	"log/slog"
	"net/http"
	"time"
)

// SourceConfig is the Config of one kind of source, as cmd handles it
// without knowing the kind: its fields' tags describe its options (see the
// package comment), and these methods its meaning.
type SourceConfig interface {
	// MetricName is the name the expressions use for the source's value.
	MetricName() string
	// Validate checks the Config; its errors name the fields by their keys
	// ("task-queue: empty", "user, password: set both or neither",
	// "task-queue and query: set one, not both") and hold no secret.
	Validate() error
	// Secrets returns what must never be printed about the Config: its
	// tokens and passwords, the credentials of its URLs and the keys in
	// the files it names. It is called on Configs not yet validated.
	Secrets() []string
}

// Runtime is what the command gives every source it builds besides its
// Config.
type Runtime struct {
	// HTTP is the transport of the sources that speak HTTP; nil means
	// their default.
	HTTP http.RoundTripper
	// Log receives each request a source makes, at debug level; nil (the
	// default, without --verbose) logs nothing.
	Log *slog.Logger
}

// Tracer returns the Tracer that logs each request to rt.Log, or nil when
// rt logs nothing. The sources' errors hold no secret.
func (rt Runtime) Tracer() Tracer {
	if rt.Log == nil {
		return nil
	}
	log := rt.Log
	return func(tr Trace) {
		attrs := []any{"metric", tr.Source, "request", tr.Request, "elapsed", tr.Elapsed.Round(time.Microsecond)}
		if tr.Err != nil {
			log.Debug("source", append(attrs, "error", tr.Err.Error())...)
			return
		}
		log.Debug("source", append(attrs, "outcome", "ok")...)
	}
}
