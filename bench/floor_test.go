package bench

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// TestFloorMakesASteadyRunsCalls: the floor client, the fleet table's
// baseline, makes every call a steady run makes (the org lookup, each app
// page, one list per app) and fails rather than report a run that did less:
// a baseline that skipped work would make the command look slow beside it.
// Not parallel: it sets the process's environment, as the wrapper does.
func TestFloorMakesASteadyRunsCalls(t *testing.T) {
	org := &flytest.Org{Slug: "floor-org", Apps: []flytest.AppSpec{{Name: "floor-%03d", Count: 450,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}}}}}
	srv := flytest.New(org, flytest.Options{Token: token})
	t.Cleanup(srv.Close)
	t.Setenv("FLY_API_BASE_URL", srv.URL)
	t.Setenv("FLY_FLAPS_BASE_URL", srv.URL)
	t.Setenv("FAS_API_TOKEN", token)

	var out strings.Builder
	if err := runFloor(&out, "floor-org", 16); err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	lists := map[string]int{}
	for _, c := range srv.Calls() {
		calls[c.Op]++
		if c.Op == flytest.OpList {
			lists[c.App]++
		}
		if c.Status != http.StatusOK {
			t.Errorf("%s %s answered %d", c.Op, c.App, c.Status)
		}
	}
	if calls[flytest.OpList] != 450 || len(lists) != 450 || calls[flytest.OpGraphQLOrg] != 1 || calls[flytest.OpGraphQLApps] != 3 {
		t.Errorf("calls %v over %d apps listed, want one org lookup, 3 pages and one list for each of 450 apps", calls, len(lists))
	}
	if out.String() != `{"apps":450}`+"\n" {
		t.Errorf("floor wrote %q", out.String())
	}

	srv.ResetCalls()
	srv.Inject(flytest.Fault{Op: flytest.OpList, App: "floor-200", Status: http.StatusInternalServerError})
	if err := runFloor(io.Discard, "floor-org", 16); err == nil || !strings.Contains(err.Error(), "floor-200") {
		t.Errorf("a list answered 500: %v, want an error naming the app", err)
	}
}
