package cmd

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/scale"
)

// pushJob is the Pushgateway job the run's figures are pushed under.
const pushJob = "fly-autoscaler"

// pushTimeout bounds the pushes at the end of a run.
const pushTimeout = 10 * time.Second

// Names of the metrics pushed to the Pushgateway (documented in
// docs/configuration.md).
const (
	metricAppsMatched   = "fly_autoscaler_apps_matched"
	metricApps          = "fly_autoscaler_apps"
	metricActions       = "fly_autoscaler_machine_actions"
	metricStarted       = "fly_autoscaler_app_started_machines"
	metricTargetStarted = "fly_autoscaler_app_target_started_machines"
	metricDuration      = "fly_autoscaler_run_duration_seconds"
	metricLastSuccess   = "fly_autoscaler_last_success_timestamp_seconds"
)

// successGrouping is the grouping label of the push that carries the time of
// the last successful run (see pushRun).
const successGrouping = "run"

// dryRunGrouping is the grouping label (value "true") of a dry run's
// figures, which must never replace or refresh a real run's.
const dryRunGrouping = "dry_run"

// shardGrouping is the grouping label (value "K/N") of a sharded run's
// figures, so that the runners of one org's shards keep a group each.
const shardGrouping = "shard"

// pushRun pushes the figures of a finished run to the Pushgateway, when one
// is configured. A failed push is logged as a warning and changes nothing
// else: the run's exit code is the run's.
//
// Two groups are pushed, both with PUT (push.Pusher.Push), which replaces
// everything the group held:
//   - {job="fly-autoscaler", org=...}: the run's figures, after every run, so
//     that the per-app series of apps no longer matched (or failed this run)
//     disappear instead of going stale;
//   - {job="fly-autoscaler", org=..., run="success"}: only the time of the
//     last successful run, pushed only when the run succeeded (no app
//     failed and the run completed). A failed run does not touch this group,
//     so the gateway keeps the previous success time: alert on
//     time() - fly_autoscaler_last_success_timestamp_seconds.
//
// The org grouping label keeps the figures of autoscalers of different orgs
// apart on one gateway; it is left out when apps are named without an org.
// A sharded run (--shard 2/4) adds shard="2/4" to both groups.
//
// A dry run pushes its figures to a group of its own,
// {job="fly-autoscaler", org=..., dry_run="true"}, and never touches the
// success group: a scheduled dry run must not hide that real runs stopped
// succeeding, nor replace their figures.
func pushRun(ctx context.Context, log *slog.Logger, rc *runConfig, rep *scale.Report) {
	if rc.pushgateway == "" || rep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	var errs []string
	dryRun := rep.DryRun || rc.scale.DryRun
	var group, success [][2]string
	if rep.Shard != "" {
		// Each shard's runner replaces its own groups, not its siblings'.
		group = append(group, [2]string{shardGrouping, rep.Shard})
		success = append(success, [2]string{shardGrouping, rep.Shard})
	}
	if dryRun {
		group = append(group, [2]string{dryRunGrouping, "true"})
	}
	if err := pushGroup(ctx, rc, runRegistry(rep), group...); err != nil {
		errs = append(errs, err.Error())
	}
	if !dryRun && !rep.Failed() {
		success = append(success, [2]string{successGrouping, "success"})
		if err := pushGroup(ctx, rc, successRegistry(rep), success...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		log.Warn("pushgateway: run metrics not pushed",
			"url", query.RedactURL(rc.pushgateway),
			"err", redactPush(strings.Join(errs, "; "), rc))
	}
}

// pushGroup pushes reg's metrics with PUT to the group of the run's job, the
// org, and the extra grouping labels. Credentials in the URL are sent as
// basic auth, never as part of the URL, so errors cannot quote them. With
// --verbose its requests are logged like the Fly API's and Prometheus's.
func pushGroup(ctx context.Context, rc *runConfig, reg *prometheus.Registry, grouping ...[2]string) error {
	u, err := url.Parse(rc.pushgateway)
	if err != nil {
		return err
	}
	user := u.User
	u.User = nil
	client := &http.Client{Timeout: pushTimeout}
	if rc.verbose && rc.log != nil {
		client.Transport = newLogTransport(nil, rc.log)
	}
	p := push.New(u.String(), pushJob).
		Gatherer(reg).
		Client(client)
	if user != nil {
		pw, _ := user.Password()
		p = p.BasicAuth(user.Username(), pw)
	}
	if rc.scale.Org != "" {
		p = p.Grouping("org", rc.scale.Org)
	}
	for _, g := range grouping {
		p = p.Grouping(g[0], g[1])
	}
	return p.PushContext(ctx)
}

// redactPush removes from an error text every credential it could hold: the
// credentials of any URL, and the gateway's user and password, the
// secrets of its URL's query and the run's tokens wherever they appear (a
// gateway may echo a request), under the one policy of query.Redact.
func redactPush(msg string, rc *runConfig) string {
	secrets := append(query.URLSecrets(rc.pushgateway), rc.token)
	if u, err := url.Parse(rc.pushgateway); err == nil && u.User != nil {
		secrets = append(secrets, u.User.Username())
	}
	for _, c := range rc.collectors {
		secrets = append(secrets, c.Token)
	}
	for _, tc := range rc.temporal {
		secrets = append(secrets, tc.Secrets()...)
	}
	secrets = append(secrets, rc.sources.secrets()...)
	return query.Redact(msg, secrets...)
}

// runRegistry holds the figures of one run in a fresh registry.
func runRegistry(rep *scale.Report) *prometheus.Registry {
	reg := prometheus.NewRegistry()

	matched := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricAppsMatched, Help: "Apps selected by the last run.",
	})
	matched.Set(float64(max(rep.Matched, len(rep.Apps))))

	apps := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricApps, Help: "Apps of the last run by result: scaled, planned (dry run), unchanged, blocked, skipped or failed.",
	}, []string{"result"})
	for _, st := range scale.Statuses() {
		apps.WithLabelValues(string(st))
	}

	actions := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricActions, Help: "Machine actions of the last run by action (start, stop, suspend, create, destroy) and outcome (done, failed, busy, aborted, unneeded, planned).",
	}, []string{"action", "outcome"})
	for _, k := range scale.ActionKinds() {
		for _, o := range scale.Outcomes() {
			actions.WithLabelValues(string(k), string(o))
		}
	}

	// The policy label names the policy the app took, "default" when
	// it matched none (or none is configured).
	started := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricStarted, Help: "Started machines of the app's process group when the last run read them.",
	}, []string{"app", "policy"})
	target := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricTargetStarted, Help: "Started machines the last run aimed at for the app.",
	}, []string{"app", "policy"})

	for _, a := range rep.Apps {
		if a.Status != "" {
			apps.WithLabelValues(string(a.Status)).Inc()
		}
		for _, ar := range a.Actions {
			actions.WithLabelValues(string(ar.Kind), string(ar.Outcome)).Inc()
		}
		// A failed or skipped app has no counts worth showing: its series
		// are left out rather than pushed as zeros.
		if a.Status == scale.StatusFailed || a.Status == scale.StatusSkipped {
			continue
		}
		started.WithLabelValues(a.App, policyName(a.Policy)).Set(float64(a.Current.Started))
		target.WithLabelValues(a.App, policyName(a.Policy)).Set(float64(a.Target.Started))
	}

	duration := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricDuration, Help: "Duration of the last run in seconds.",
	})
	duration.Set(rep.Elapsed.Seconds())

	reg.MustRegister(matched, apps, actions, started, target, duration)
	return reg
}

// successRegistry holds the time the run ended, pushed only after a
// successful run.
func successRegistry(rep *scale.Report) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	last := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricLastSuccess, Help: "Unix time at which the last successful run (no app failed) ended.",
	})
	end := rep.StartedAt.Add(rep.Elapsed)
	if rep.StartedAt.IsZero() {
		end = time.Now()
	}
	last.Set(float64(end.UnixNano()) / 1e9)
	reg.MustRegister(last)
	return reg
}
