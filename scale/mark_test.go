package scale_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func markConfig(t *testing.T, until time.Time, reason string) scale.MarkConfig {
	t.Helper()
	sel, err := scale.NewSelector([]string{"app-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return scale.MarkConfig{Selector: sel, Until: until, Reason: reason, RetryDelay: time.Second}
}

// TestMarkAppsIdempotent: a pause written twice writes nothing the
// second time; a resume deletes both keys, and a second resume nothing.
func TestMarkAppsIdempotent(t *testing.T) {
	srv, apps, m := world(t, machines("a1=started", "a2=stopped")...)
	ctx := context.Background()
	cfg := markConfig(t, time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC), "migration")
	rep := scale.MarkApps(ctx, cfg, apps, m)
	if rep.Failed() || len(rep.Apps) != 1 || !slices.Equal(rep.Apps[0].Changed, []string{"a1", "a2"}) {
		t.Fatalf("first pause: %+v", rep.Apps)
	}
	for _, fm := range srv.Machines("app-a") {
		if fm.Config.Metadata[scale.MetaPausedUntil] != "2026-12-06T14:00:00Z" || fm.Config.Metadata[scale.MetaPausedReason] != "migration" {
			t.Errorf("%s: metadata %v", fm.ID, fm.Config.Metadata)
		}
	}
	srv.ResetCalls()
	rep = scale.MarkApps(ctx, cfg, apps, m)
	if n := len(srv.Mutations()); n != 0 || len(rep.Apps[0].Already) != 2 || len(rep.Apps[0].Changed) != 0 {
		t.Errorf("second pause: %d changes, %+v", n, rep.Apps[0])
	}
	// A pause without a reason deletes the old one.
	cfg.Reason = ""
	srv.ResetCalls()
	scale.MarkApps(ctx, cfg, apps, m)
	if got := len(srv.Mutations()); got != 2 {
		t.Errorf("pause without a reason: %d changes, want the 2 reasons deleted", got)
	}
	cfg.Resume = true
	srv.ResetCalls()
	rep = scale.MarkApps(ctx, cfg, apps, m)
	if rep.Failed() || len(rep.Apps[0].Changed) != 2 {
		t.Errorf("resume: %+v", rep.Apps[0])
	}
	for _, c := range srv.Mutations() {
		if c.Op != flytest.OpMetadataDelete {
			t.Errorf("resume made %s", c.Op)
		}
	}
	srv.ResetCalls()
	rep = scale.MarkApps(ctx, cfg, apps, m)
	if len(srv.Mutations()) != 0 || len(rep.Apps[0].Already) != 2 {
		t.Errorf("second resume: %d changes, %+v", len(srv.Mutations()), rep.Apps[0])
	}
}

// TestMarkAppsLease, on fake time: a machine held by a lease is tried
// again after 1s and 2s; a lease that ends meanwhile is waited out, one
// held throughout is reported after the third try.
func TestMarkAppsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := memWorld(t, machines("a1=started", "a2=started")...)
		srv.HoldLease("app-a", "a1", "deployer@example.com", 1500*time.Millisecond)
		srv.HoldLease("app-a", "a2", "deployer@example.com", time.Hour)
		start := time.Now()
		rep := scale.MarkApps(context.Background(), markConfig(t, start.Add(time.Hour), "deploy"), nil, m)
		a := rep.Apps[0]
		if !slices.Equal(a.Changed, []string{"a1"}) || len(a.Failed) != 1 || a.Failed[0].Machine != "a2" {
			t.Fatalf("result %+v", a)
		}
		if msg := a.Failed[0].Err.Error(); !strings.Contains(msg, "409") || !strings.Contains(msg, "tried 3 times") {
			t.Errorf("error %q", msg)
		}
		if d := time.Since(start); d != 6*time.Second { // a1 at 0, 1s and 3s; a2 at 3s, 4s and 6s
			t.Errorf("took %v, want 1s + 2s of retries per machine, one machine after the other", d)
		}
		if !rep.Failed() {
			t.Error("a machine not marked must fail the report")
		}
	})
}
