package scale

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// selectApps discovers the run's apps, gives each its policy and the
// moment the run started, and runs the metrics queries that serve the
// whole fleet once. The queries that need no app names start before the
// org's apps are listed, so that they run while the pages come in; those
// that need the names (and a run that names its apps, which lists nothing)
// start once the apps are known.
func selectApps(ctx context.Context, cfg Config, deps Deps, start time.Time) ([]app, error) {
	// A fleet-wide query is bounded like one app's work; if it fails,
	// every app that needs it fails, none is scaled on a guess.
	if s, ok := deps.Metrics.(MetricStarter); ok {
		if _, named := cfg.Selector.Names(); !named {
			// Cancelled on return: by then Prefetch has waited for the
			// queries, unless the listing failed or matched no app, and
			// the cancel ends what is still in flight.
			sctx, cancel := context.WithTimeout(ctx, cfg.timeout())
			defer cancel()
			s.Start(sctx)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, max(cfg.timeout(), listTimeout))
	defer cancel()
	apps, err := discover(lctx, cfg, deps.Apps)
	if err != nil {
		return nil, err
	}
	at := MomentOf(start, cfg.Location)
	policyFor := cfg.policies()
	for i := range apps {
		apps[i].policy, apps[i].at = policyFor(apps[i].name), &at
	}
	if deps.Metrics != nil {
		names := make([]string, len(apps))
		for i, a := range apps {
			names[i] = a.name
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.timeout())
		defer cancel()
		deps.Metrics.Prefetch(pctx, names)
	}
	return apps, nil
}

// discover lists the org's apps once (every page) and keeps the selected
// ones of the run's shard, sorted by name. A run naming apps directly lists
// nothing.
func discover(ctx context.Context, cfg Config, c Apps) ([]app, error) {
	if names, ok := cfg.Selector.Names(); ok {
		out := make([]app, 0, len(names))
		seen := map[string]bool{}
		for _, n := range names {
			if !seen[n] && cfg.Shard.Contains(n) {
				seen[n] = true
				out = append(out, app{name: n})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		return out, nil
	}
	now := cfg.clock()
	listedAt := now()
	org, err := c.GetOrganizationBySlug(ctx, cfg.Org)
	if err != nil {
		return nil, fmt.Errorf("org %q: %w", cfg.Org, err)
	}
	if org == nil {
		return nil, fmt.Errorf("org %q: not found", cfg.Org)
	}
	list, err := c.ListApps(ctx, org.ID)
	if err != nil {
		return nil, fmt.Errorf("org %q: list apps: %w", cfg.Org, err)
	}
	book := &releaseBook{orgID: org.ID, now: now}
	book.update(list, listedAt)
	var out []app
	for _, a := range list {
		if !cfg.Selector.Match(a.Name) || !cfg.Shard.Contains(a.Name) {
			continue
		}
		out = append(out, app{name: a.Name, releases: book})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
