package cmd

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
)

// Log formats accepted by --log-format.
const (
	LogText = "text"
	LogJSON = "json"
)

// newLogger builds the logger of an invocation, the only one: slog to w
// (stderr), as logfmt-style text or JSON lines, at debug level with
// --verbose and info level otherwise.
func newLogger(w io.Writer, format string, verbose bool) *slog.Logger {
	if w == nil {
		w = io.Discard
	}
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: durationString}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == LogJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	if rw, ok := w.(*redactWriter); ok {
		// The values are redacted before the handler quotes or escapes
		// them; the writer under it stays as the last net.
		h = redactHandler{h: h, red: rw.set.redact}
	}
	return slog.New(h)
}

// durationString writes a time.Duration as Go's duration string ("1.5s"),
// in both formats: the JSON handler would write nanoseconds, an integer
// nobody reads as a duration.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// logReport logs each app's decisions at debug level: what was observed,
// targeted and done. The report on stdout says the same in short; this is
// for --verbose.
func logReport(log *slog.Logger, rep *scale.Report) {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for _, a := range sortedApps(rep) {
		attrs := []any{"app", a.App, "status", string(a.Status)}
		if a.Observed {
			// Numbers, not "2 → 3": a JSON log is read by programs.
			attrs = append(attrs, "started", a.Current.Started, "target_started", a.Target.Started,
				"created", a.Current.Created, "target_created", a.Target.Created)
		}
		attrs = append(attrs, "elapsed", a.Elapsed.Round(time.Millisecond))
		if a.Reason != "" {
			attrs = append(attrs, "reason", a.Reason)
		}
		if rep.HasPolicies {
			attrs = append(attrs, "policy", a.Policy)
		}
		if len(a.Metrics) > 0 {
			attrs = append(attrs, "metrics", metricsCell(a.Metrics))
		}
		log.Debug("app", attrs...)
		for _, w := range a.Warnings {
			log.Debug("app warning", "app", a.App, "warning", w)
		}
		for _, act := range a.Actions {
			attrs := []any{"app", a.App, "kind", string(act.Kind), "machine", act.MachineID,
				"region", act.Region, "reason", act.Reason, "outcome", string(act.Outcome)}
			if act.Error != "" {
				attrs = append(attrs, "error", act.Error)
			}
			log.Debug("action", attrs...)
		}
	}
}
