package scale

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Shard
		err  string
	}{
		{"1/1", Shard{1, 1}, ""},
		{"2/4", Shard{2, 4}, ""},
		{" 4/4 ", Shard{4, 4}, ""},
		{"0/4", Shard{}, "K is 0, shards are numbered 1 to 4"},
		{"5/4", Shard{}, "K is 5, shards are numbered 1 to 4"},
		{"4/0", Shard{}, "N is 0, the number of shards must be at least 1"},
		{"a/b", Shard{}, "K and N must be whole numbers"},
		{"2", Shard{}, "not of the form K/N"},
		{"-1/4", Shard{}, "K is -1"},
	} {
		got, err := ParseShard(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseShard(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != fmt.Sprintf("%d/%d", tc.want.K, tc.want.N) {
				t.Errorf("String() = %q", got.String())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseShard(%q) error %v, want %q", tc.in, err, tc.err)
		}
	}
	if s := (Shard{}).String(); s != "" {
		t.Errorf("the whole fleet's shard reads %q, want empty", s)
	}
}

// shardsOf runs the run's app discovery once per shard of n over the named
// apps and returns each app's shard. It fails the test when an app is in no
// shard or in more than one.
func shardsOf(t *testing.T, names []string, n int) map[string]int {
	t.Helper()
	sel, err := NewSelector(names, nil)
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]int{}
	for k := 1; k <= n; k++ {
		got, err := discover(context.Background(), Config{Selector: sel, Shard: Shard{K: k, N: n}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if prev, ok := owner[a.name]; ok {
				t.Fatalf("%s is in shard %d/%d and %d/%d", a.name, prev, n, k, n)
			}
			owner[a.name] = k
		}
	}
	for _, name := range names {
		if _, ok := owner[name]; !ok {
			t.Errorf("%s is in no shard of %d", name, n)
		}
	}
	return owner
}

// tenants returns count app names from tenant-<first>.
func tenants(first, count int) []string {
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("tenant-%05d", first+i)
	}
	return out
}

// TestShardsDisjointAndComplete: over 10,000 apps, the shards of a split
// in N are disjoint, cover every app, and are of about equal size.
func TestShardsDisjointAndComplete(t *testing.T) {
	names := tenants(1, 10_000)
	for _, n := range []int{1, 2, 4, 7, 16} {
		owner := shardsOf(t, names, n)
		size := map[int]int{}
		for _, k := range owner {
			size[k]++
		}
		// A fair split puts 10,000/n apps in each shard, give or take a
		// few standard deviations (about 43 for n=4): far from it means
		// the hash is biased.
		for k := 1; k <= n; k++ {
			if want := 10_000 / n; size[k] < want*85/100 || size[k] > want*115/100 {
				t.Errorf("shard %d/%d holds %d apps, want about %d", k, n, size[k], want)
			}
		}
	}
}

// TestShardsStableUnderChurn: when 10% of the apps are removed and as many
// added, every app that stayed keeps its shard.
func TestShardsStableUnderChurn(t *testing.T) {
	before := shardsOf(t, tenants(1, 10_000), 4)
	after := shardsOf(t, tenants(1_001, 10_000), 4) // 1..1000 gone, 10001..11000 new
	kept := 0
	for name, k := range after {
		prev, ok := before[name]
		if !ok {
			continue
		}
		kept++
		if prev != k {
			t.Errorf("%s moved from shard %d/4 to %d/4 while only other apps came and went", name, prev, k)
		}
	}
	if kept != 9_000 {
		t.Errorf("%d apps in both fleets, want 9000", kept)
	}
}

// TestShardListsTheOrgOnce: each shard's run lists the whole org once (one
// org lookup, every page) and keeps its own apps; together the shards hold
// every app of the org.
func TestShardListsTheOrgOnce(t *testing.T) {
	const token = "FlyV1 fm2_shard-test"
	srv := flytest.New(&flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{Name: "tenant-%04d", Count: 1_000}}},
		flytest.Options{Token: token})
	t.Cleanup(srv.Close)
	apps := flyGoApps{fly.NewClientFromOptions(fly.ClientOptions{Tokens: tokens.Parse(token), BaseURL: srv.URL})}
	sel, err := NewSelector([]string{"tenant-*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for k := 1; k <= 4; k++ {
		srv.ResetCalls()
		got, err := discover(context.Background(), Config{Org: "my-org", Selector: sel, Shard: Shard{K: k, N: 4}}, apps)
		if err != nil {
			t.Fatal(err)
		}
		calls := map[string]int{}
		for _, c := range srv.Calls() {
			calls[c.Op]++
		}
		if want := map[string]int{flytest.OpGraphQLOrg: 1, flytest.OpGraphQLApps: 5}; !maps.Equal(calls, want) {
			t.Errorf("shard %d/4: calls %v, want %v", k, calls, want)
		}
		for _, a := range got {
			seen[a.name]++
			if ShardOf(a.name, 4) != k {
				t.Errorf("%s listed in shard %d/4, belongs to %d/4", a.name, k, ShardOf(a.name, 4))
			}
		}
	}
	if len(seen) != 1_000 {
		t.Errorf("the shards hold %d apps, want 1000", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d shards", name, n)
		}
	}
}

// flyGoApps lists an org with fly-go's own GetAppsForOrganization (this
// package's tests cannot import scale/flyapi).
type flyGoApps struct{ *fly.Client }

func (a flyGoApps) ListApps(ctx context.Context, orgID string) ([]ListedApp, error) {
	list, err := a.GetAppsForOrganization(ctx, orgID)
	out := make([]ListedApp, len(list))
	for i, app := range list {
		out[i] = ListedApp{Name: app.Name, ReleaseStatus: releaseStatus(app.CurrentRelease)}
	}
	return out, err
}

// TestShardsGrow: going from N to N+1 shards moves apps only into the new
// shard (rendezvous hashing), about 1/(N+1) of them.
func TestShardsGrow(t *testing.T) {
	names := tenants(1, 10_000)
	for n := 1; n < 8; n++ {
		moved := 0
		for _, name := range names {
			was, is := ShardOf(name, n), ShardOf(name, n+1)
			if was == is {
				continue
			}
			moved++
			if is != n+1 {
				t.Fatalf("%s moved from %d/%d to %d/%d, not to the new shard", name, was, n, is, n+1)
			}
		}
		if want := len(names) / (n + 1); moved < want*8/10 || moved > want*12/10 {
			t.Errorf("%d → %d shards moved %d apps, want about %d", n, n+1, moved, want)
		}
	}
}
