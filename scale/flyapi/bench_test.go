package flyapi

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// benchToken is a real macaroon (minted for these benchmarks with
// github.com/superfly/macaroon, one validity-window caveat, a throwaway
// key): fly-go's flaps client parses the token on every request, so a
// made-up token would flatter it.
const benchToken = "FlyV1 fm2_lJPEDmJlbmNoLWtpZC0wMDAxxBC7bI7XJDmzbkgKchgHY9etwrNodHRwczovL2FwaS5mbHkuaW8vkgSSzmlVuQDOazbsgMQgA60mR5mmXzxBbDwjrCPh5ldU5zLQGuzfNb2RGTy6t4Q="

// benchMachines is what the benchmarks call, on this package's Machines
// client and on fly-go's flaps client alike.
type benchMachines interface {
	List(ctx context.Context, app, state string) ([]*fly.Machine, error)
	Start(ctx context.Context, app, id, nonce string) (*fly.MachineStartResponse, error)
	Stop(ctx context.Context, app string, in fly.StopMachineInput, nonce string) error
	AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error)
	ReleaseLease(ctx context.Context, app, id, nonce string) error
}

// BenchmarkMachinesClient compares the two ways of calling the Machines
// API: this package's client, which sends through Transport's attempts
// directly ("flyapi"), and fly-go's flaps client sending through the same
// Transport as a RoundTripper ("fly-go"), on the calls of a run: the list
// (a steady app's one call), a start and a stop, a lease taken and
// released. flytest answers in memory, its cost the same for both. It
// reports the process's CPU time per call pair (cpu-ns/op, user and system,
// garbage collection included) besides ns/op: compare the two clients as
// ratios within one run.
func BenchmarkMachinesClient(b *testing.B) {
	org := &flytest.Org{Slug: "bench-org", Apps: []flytest.AppSpec{{Name: "bench-app", ReleaseVersion: 1,
		Machines: []flytest.MachineSpec{{State: "started", Count: 2}, {State: "stopped", Count: 3}}}}}
	srv := flytest.NewInMemory(org, flytest.Options{Token: benchToken})
	rt := NewTransport(srv.Transport(), TransportOptions{})
	_, ours, err := NewClients(b.Context(), Options{Token: benchToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, UserAgent: "bench", Transport: rt})
	if err != nil {
		b.Fatal(err)
	}
	clients := []struct {
		name string
		m    benchMachines
	}{
		{"flyapi", ours},
		{"fly-go", flyGoFlaps(b, srv.URL, benchToken, "bench", rt)},
	}
	var stopped string
	for _, m := range srv.Machines("bench-app") {
		if m.State == "stopped" {
			stopped = m.ID
		}
	}
	ttl := 30
	calls := []struct {
		name string
		do   func(context.Context, benchMachines) error
	}{
		{"list", func(ctx context.Context, m benchMachines) error {
			l, err := m.List(ctx, "bench-app", "")
			if err == nil && len(l) != 5 {
				err = fmt.Errorf("listed %d machines", len(l))
			}
			return err
		}},
		{"start-stop", func(ctx context.Context, m benchMachines) error {
			if _, err := m.Start(ctx, "bench-app", stopped, ""); err != nil {
				return err
			}
			return m.Stop(ctx, "bench-app", fly.StopMachineInput{ID: stopped}, "")
		}},
		{"lease", func(ctx context.Context, m benchMachines) error {
			l, err := m.AcquireLease(ctx, "bench-app", stopped, &ttl)
			if err != nil {
				return err
			}
			return m.ReleaseLease(ctx, "bench-app", stopped, l.Data.Nonce)
		}},
	}
	for _, call := range calls {
		for _, c := range clients {
			b.Run(call.name+"/"+c.name, func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if err := call.do(ctx, c.m); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
