package flytest

// The call log and what a test reads of, or changes in, the fake org
// directly.

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	fly "github.com/superfly/fly-go"
)

func (s *Server) record(c Call) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = append(s.calls, c)
}

// Calls returns every call answered so far, in the order they were answered.
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls forgets the calls recorded so far and the peaks of
// PeakInFlight.
func (s *Server) ResetCalls() {
	s.callMu.Lock()
	s.calls = nil
	s.callMu.Unlock()
	s.flightMu.Lock()
	clear(s.peak)
	s.flightMu.Unlock()
}

func (s *Server) takeOff(app string) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	s.inFlight[app]++
	s.peak[app] = max(s.peak[app], s.inFlight[app])
}

func (s *Server) land(app string) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	s.inFlight[app]--
}

// Connections returns the number of connections the server accepted: how
// well a client reuses its connections.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// PeakInFlight returns the most Machines API requests for app that were in
// flight at once (arrived, latency included, and not yet answered) since
// the server started or ResetCalls: how much of one app's work a client
// runs concurrently.
func (s *Server) PeakInFlight(app string) int {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	return s.peak[app]
}

// Mutations returns the calls whose operation changes the fleet (see
// IsMutation), whether or not they succeeded: a request rejected with 409,
// 412, 429, 401 or an injected fault still counts, so "a dry run made no
// changing calls" is asserted with len(Mutations()) == 0.
func (s *Server) Mutations() []Call {
	var out []Call
	for _, c := range s.Calls() {
		if IsMutation(c.Op) {
			out = append(out, c)
		}
	}
	return out
}

// Apps returns the names of the org's apps, sorted.
func (s *Server) Apps() []string { return append([]string(nil), s.names...) }

// Machines returns deep copies of app's machines as the API shows them,
// sorted by ID, destroyed machines excluded. It returns nil for an unknown app.
func (s *Server) Machines(appName string) []fly.Machine {
	a := s.apps[appName]
	if a == nil {
		return nil
	}
	a.mu.RLock()
	views := make([]fly.Machine, 0, len(a.machines))
	for _, m := range a.machines {
		if m.m.State != fly.MachineStateDestroyed {
			views = append(views, m.view())
		}
	}
	data, err := json.Marshal(views)
	a.mu.RUnlock()
	if err != nil {
		panic("flytest: " + err.Error())
	}
	var out []fly.Machine
	if err := json.Unmarshal(data, &out); err != nil {
		panic("flytest: " + err.Error())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Count returns how many of app's machines are in state; "" counts every
// machine that is not destroyed.
func (s *Server) Count(appName, state string) int {
	a := s.apps[appName]
	if a == nil {
		return 0
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	n := 0
	for _, m := range a.machines {
		if m.m.State == state || state == "" && m.m.State != fly.MachineStateDestroyed {
			n++
		}
	}
	return n
}

// HoldLease makes owner (someone else, such as a deploy) hold the lease of
// the machine for ttl on the server's clock, replacing any lease, and
// returns the lease's nonce. Calls that change the machine are refused with
// 409 unless they send that nonce. It panics on an unknown app or machine.
func (s *Server) HoldLease(appName, machineID, owner string, ttl time.Duration) (nonce string) {
	a := s.mustApp(appName)
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.machines[machineID]
	if m == nil {
		panic(fmt.Sprintf("flytest: HoldLease: app %s has no machine %s", appName, machineID))
	}
	m.lease = &lease{nonce: s.nonce(), owner: owner, expires: s.now().Add(ttl)}
	return m.lease.nonce
}

// SetReleaseStatus sets the status of app's current release as GraphQL
// reports it ("running" marks a deploy in progress). "none" or "" removes
// the release, as for an app that never deployed; setting a status on such
// an app gives it release version 1. It panics on an unknown app.
func (s *Server) SetReleaseStatus(appName, status string) {
	a := s.mustApp(appName)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case status == "" || status == "none":
		a.release = nil
	case a.release == nil:
		a.release = &release{id: "rel" + hashHex("release/"+a.name+"/1", 12), version: 1, status: status, createdAt: s.now(), imageRef: a.image}
	default:
		a.release.status = status
	}
}

func (s *Server) mustApp(name string) *app {
	a := s.apps[name]
	if a == nil {
		panic(fmt.Sprintf("flytest: unknown app %q", name))
	}
	return a
}
