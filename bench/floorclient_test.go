package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale/flyapi"
)

// floorEnv, set in the environment of the test binary re-executed by the
// wrapper, makes it the floor client instead of running tests.
const floorEnv = "FLEETBENCH_FLOOR"

// floor is the "floor" scenario's client: the Fly calls of a steady run
// (the org lookup and the app pages through flyapi, then each app's
// machine list with `--concurrency` workers) and nothing else. Each list
// is read to its end and dropped: no decoding, metrics, planning or report.
// Its ratio to the bound is what flytest and the machine cost a client that
// costs nothing; a command's ratio over the floor's, in the same table, is
// what the command itself adds.
//
// It writes {"apps": N} with the apps it listed, and exits 1 on any error
// or an answer other than 200.
func floor(args []string) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	org := fs.String("org", "", "org slug")
	conc := fs.Int("concurrency", 8, "workers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runFloor(os.Stdout, *org, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 1
	}
	return 0
}

func runFloor(w io.Writer, org string, conc int) error {
	ctx := context.Background()
	base, tok := os.Getenv("FLY_FLAPS_BASE_URL"), os.Getenv("FAS_API_TOKEN")
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conc // one connection a worker, kept, as the command keeps them
	apps, _, err := flyapi.NewClients(ctx, flyapi.Options{Token: tok, APIBaseURL: os.Getenv("FLY_API_BASE_URL"), MachinesBaseURL: base, Transport: t})
	if err != nil {
		return err
	}
	o, err := apps.GetOrganizationBySlug(ctx, org)
	if err != nil {
		return err
	}
	listed, err := apps.ListApps(ctx, o.ID)
	if err != nil {
		return err
	}
	auth := tokens.Parse(tok).FlapsHeader()
	client := &http.Client{Transport: t}
	names := make(chan string)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for name := range names {
				if err := drop(ctx, client, base+"/v1/apps/"+name+"/machines", auth); err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					for range names {
					}
					return
				}
			}
		})
	}
	for _, a := range listed {
		names <- a.Name
	}
	close(names)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(map[string]int{"apps": len(listed)})
}

// drop GETs url and reads the answer to its end.
func drop(ctx context.Context, c *http.Client, url, auth string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
