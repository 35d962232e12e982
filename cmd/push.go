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

	"github.com/superfly/fly-autoscaler/query/redact"
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
	metricDemandStarted = "fly_autoscaler_app_demand_started_machines"
	metricDemandCreated = "fly_autoscaler_app_demand_created_machines"
	metricBudgetStarted = "fly_autoscaler_fleet_budget_started"
	metricBudgetCreated = "fly_autoscaler_fleet_budget_created"
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
	// The report's strings were redacted when it was built; the org of
	// the grouping key is the report's too. A label value that still
	// holds a secret stops the push: the gateway keeps what it is sent,
	// for anyone who can read it.
	org := rc.scale.Org
	if rep.Org != "" {
		org = rep.Org
	}
	if label, ok := secretLabel(rc, rep, org); ok {
		log.Warn("pushgateway: run metrics not pushed: a label value holds a secret", "label", label)
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
	if err := pushGroup(ctx, rc, org, runRegistry(rep), group...); err != nil {
		errs = append(errs, err.Error())
	}
	if !dryRun && !rep.Failed() {
		success = append(success, [2]string{successGrouping, "success"})
		if err := pushGroup(ctx, rc, org, successRegistry(rep), success...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		log.Warn("pushgateway: run metrics not pushed",
			"url", redact.RedactURL(rc.pushgateway),
			"err", redactPush(strings.Join(errs, "; "), rc))
	}
}

// secretLabel returns the name of the first label of the push whose value
// holds a secret the run knows (rc.redact changes it), if any.
func secretLabel(rc *runConfig, rep *scale.Report, org string) (string, bool) {
	if rc.redact == nil {
		return "", false
	}
	holds := func(v string) bool { return v != "" && rc.redact(v) != v }
	switch {
	case holds(org):
		return "org", true
	case holds(rep.Shard):
		return shardGrouping, true
	}
	for _, a := range rep.Apps {
		if holds(a.App) {
			return "app", true
		}
		if holds(policyName(a.Policy)) {
			return "policy", true
		}
	}
	return "", false
}

// pushGroup pushes reg's metrics with PUT to the group of the run's job, the
// org, and the extra grouping labels. Credentials in the URL are sent as
// basic auth, never as part of the URL, so errors cannot quote them. With
// --verbose its requests are logged like the Fly API's and Prometheus's.
func pushGroup(ctx context.Context, rc *runConfig, org string, reg *prometheus.Registry, grouping ...[2]string) error {
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
	if org != "" {
		p = p.Grouping("org", org)
	}
	for _, g := range grouping {
		p = p.Grouping(g[0], g[1])
	}
	return p.PushContext(ctx)
}

// redactPush removes from an error text every credential it could hold: the
// credentials of any URL, and the gateway's password (or lone token), the
// secrets of its URL's query and the run's tokens wherever they appear (a
// gateway may echo a request), under the one policy of redact.Redact.
func redactPush(msg string, rc *runConfig) string {
	secrets := append(redact.URLSecrets(rc.pushgateway), rc.token)
	for _, m := range rc.metrics {
		secrets = append(secrets, m.cfg.Secrets()...)
	}
	return redact.Redact(msg, secrets...)
}

// runRegistry holds the figures of one run in a fresh registry.
func runRegistry(rep *scale.Report) *prometheus.Registry {
	reg := prometheus.NewRegistry()

	matched := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricAppsMatched, Help: "Apps selected by the last run.",
	})
	matched.Set(float64(max(rep.Matched, len(rep.Apps))))

	apps := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricApps, Help: "Apps of the last run by result: scaled, planned (dry run), unchanged, blocked, skipped, paused, fallback or failed.",
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
	demandStarted := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricDemandStarted, Help: "Started machines the app's expressions asked for in the last run, before the step limits, the machines it has and the fleet budget.",
	}, []string{"app", "policy"})
	demandCreated := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metricDemandCreated, Help: "Machines the app's expressions asked for in the last run, before the step limits, max-machines and the fleet budget.",
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
		if a.Demand != nil {
			demandStarted.WithLabelValues(a.App, policyName(a.Policy)).Set(float64(a.Demand.Started))
			demandCreated.WithLabelValues(a.App, policyName(a.Policy)).Set(float64(a.Demand.Created))
		}
	}

	duration := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metricDuration, Help: "Duration of the last run in seconds.",
	})
	duration.Set(rep.Elapsed.Seconds())

	reg.MustRegister(matched, apps, actions, started, target, demandStarted, demandCreated, duration)
	// The budget's caps, the run's share of them with --shard.
	for _, b := range []struct {
		name, help string
		limit      *int
	}{
		{metricBudgetStarted, "Most started machines the last run allowed its apps in all (--fleet-max-started, the shard's share).", rep.Budget.MaxStarted},
		{metricBudgetCreated, "Most machines the last run allowed its apps in all (--fleet-max-created, the shard's share).", rep.Budget.MaxCreated},
	} {
		if b.limit != nil {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: b.name, Help: b.help})
			g.Set(float64(*b.limit))
			reg.MustRegister(g)
		}
	}
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
