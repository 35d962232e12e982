package cmd

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale"
)

// Redaction before escaping: the report's strings and the logs' values are
// redacted when the report is built and when a record is logged, before
// the table, Markdown, JSON and slog encoders escape them (a "|" becomes
// "\|", a '"' becomes '\"', and the escaped secret is no longer the text
// the streams' redacting writer knows). The writer stays as the last net.

// redactReport replaces in place every secret that red knows in the
// report's strings: the org, the shard, and each app's name, policy,
// reason, metric names, warnings and actions, and the run's own warnings. The pushed labels, the logs
// and every output format read the report after it.
func redactReport(rep *scale.Report, red func(string) string) {
	if rep == nil || red == nil {
		return
	}
	rep.Org, rep.Shard = red(rep.Org), red(rep.Shard)
	rep.Err = redactedErr(rep.Err, red)
	for i := range rep.Warnings {
		rep.Warnings[i] = red(rep.Warnings[i])
	}
	for i := range rep.Apps {
		a := &rep.Apps[i]
		a.App, a.Policy, a.Reason = red(a.App), red(a.Policy), red(a.Reason)
		for j := range a.Metrics {
			a.Metrics[j].Name = red(a.Metrics[j].Name)
		}
		for j := range a.Warnings {
			a.Warnings[j] = red(a.Warnings[j])
		}
		for j := range a.Actions {
			ac := &a.Actions[j]
			ac.MachineID, ac.Source, ac.Region, ac.Reason, ac.Error = red(ac.MachineID), red(ac.Source), red(ac.Region), red(ac.Reason), red(ac.Error)
		}
	}
}

// redactEvalReport is redactReport for an evaluation.
func redactEvalReport(rep *scale.EvalReport, red func(string) string) {
	if rep == nil || red == nil {
		return
	}
	rep.Org = red(rep.Org)
	rep.Err = redactedErr(rep.Err, red)
	for i := range rep.Apps {
		a := &rep.Apps[i]
		a.App, a.Policy = red(a.App), red(a.Policy)
		a.Err = redactedErr(a.Err, red)
		for j := range a.Warnings {
			a.Warnings[j] = red(a.Warnings[j])
		}
		if len(a.Metrics) > 0 {
			m := make(map[string]float64, len(a.Metrics))
			for k, v := range a.Metrics {
				m[red(k)] = v
			}
			a.Metrics = m
		}
	}
}

// redactedErr returns err with its text redacted; it still unwraps to err,
// so that errors.Is (a cancelled context) keeps working.
func redactedErr(err error, red func(string) string) error {
	if err == nil {
		return nil
	}
	return redact.Reword(err, red(err.Error()))
}

// redactHandler redacts the message and the string values of every record
// (errors and Stringers are logged as their redacted text) before the
// handler under it encodes them.
type redactHandler struct {
	h   slog.Handler
	red func(string) string
}

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.red(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.attr(a)
	}
	return redactHandler{h: h.h.WithAttrs(clean), red: h.red}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h: h.h.WithGroup(name), red: h.red}
}

func (h redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(h.red(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		for i, ga := range g {
			clean[i] = h.attr(ga)
		}
		a.Value = slog.GroupValue(clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(h.red(x.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(h.red(x.String()))
		}
	}
	return a
}
