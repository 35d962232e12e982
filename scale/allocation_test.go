package scale

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"
)

// TestFleetForAllocationPlansAlike: the fleet an app holds while its plan
// waits for the budget drops the Machines API records, but any plan made
// from it once the budget is allocated (any counts up to the plan's, as
// Allocate grants) is the plan the whole fleet gives, and its creates
// clone from a machine whose record, with its config, was kept. Random
// fleets of every shape: releases, ages, states, machines without a
// config; 2,000 trials.
func TestFleetForAllocationPlansAlike(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	states := []string{"started", "stopped", "suspended"}
	stripped, creates := 0, 0
	for trial := range 2000 {
		var list []*fly.Machine
		for i := range rng.IntN(7) {
			m := &fly.Machine{ID: fmt.Sprintf("m%02d", i), State: states[rng.IntN(len(states))], Region: "ord",
				HostStatus: fly.HostStatusOk, CreatedAt: now.Add(-time.Duration(rng.IntN(500)) * time.Hour).Format(time.RFC3339)}
			if rng.IntN(5) > 0 {
				md := map[string]string{"fly_process_group": "app"}
				if v := rng.IntN(4); v > 0 {
					md["fly_release_version"] = fmt.Sprint(v)
				}
				m.Config = &fly.MachineConfig{Metadata: md, Image: "registry.fly.io/app:" + m.ID}
			}
			list = append(list, m)
		}
		full := NewFleet("app-a", "app", list)
		cur := full.Counts()
		wantCreated := rng.IntN(cur.Created + 4)
		wantStarted := rng.IntN(wantCreated + 1)
		plan := NewPlan(full, Targets{Started: exactly(wantStarted), Created: exactly(wantCreated)}, Policy{}, now)
		lean := full.forActions(plan)
		for i := range lean.Machines {
			if full.Machines[i].raw != nil && lean.Machines[i].raw == nil {
				stripped++
			}
		}
		for range 5 {
			created := rng.IntN(plan.Target.Created + 1)
			started := rng.IntN(min(created, plan.Target.Started) + 1)
			targets := Targets{Started: exactly(started), Created: exactly(created)}
			want := NewPlan(full, targets, Policy{}, now)
			got := NewPlan(lean, targets, Policy{}, now)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("trial %d, %d started of %d created: the lean fleet plans\n%+v\nthe whole one\n%+v", trial, started, created, got, want)
			}
			for _, a := range got.Actions {
				if a.Kind != ActionCreate {
					continue
				}
				creates++
				if m := lean.machine(a.Source); m == nil || m.raw == nil || m.raw.Config == nil {
					t.Fatalf("trial %d: a create clones %s, whose record is gone", trial, a.Source)
				}
			}
		}
	}
	if stripped < 1000 || creates < 1000 {
		t.Errorf("%d records dropped, %d creates: the trials test too little", stripped, creates)
	}
	t.Logf("%d records dropped, %d creates checked", stripped, creates)
}
