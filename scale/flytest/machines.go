package flytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
)

const (
	defaultLeaseTTL = 30 * time.Second
	// leaseOwner is who holds the leases taken through the API.
	leaseOwner = "flytest@tokens.fly.io"
	maxEvents  = 10
	// nonceHeader carries a lease nonce (flaps.NonceHeader; not imported so
	// that this package builds without flaps' dependencies).
	nonceHeader = "fly-machine-lease-nonce"
)

// route classifies r by path and method; it reads a GraphQL body.
func (s *Server) route(r *http.Request) route {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if p == "/graphql" {
		return s.routeGraphQL(r)
	}
	rest, ok := strings.CutPrefix(p, "/v1/apps/")
	if !ok {
		return route{op: OpUnknown}
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] != "machines" {
		return route{op: OpUnknown}
	}
	rt := route{app: parts[0]}
	m := r.Method
	switch len(parts) {
	case 2:
		rt.op, rt.badMethod = pick(m, map[string]string{http.MethodGet: OpList, http.MethodPost: OpLaunch})
	case 3:
		rt.machineID = parts[2]
		rt.op, rt.badMethod = pick(m, map[string]string{http.MethodGet: OpGet, http.MethodPost: OpUpdate, http.MethodDelete: OpDestroy})
	case 4:
		rt.machineID = parts[2]
		switch parts[3] {
		case "start":
			rt.op, rt.badMethod = pick(m, map[string]string{http.MethodPost: OpStart})
		case "stop":
			rt.op, rt.badMethod = pick(m, map[string]string{http.MethodPost: OpStop})
		case "suspend":
			rt.op, rt.badMethod = pick(m, map[string]string{http.MethodPost: OpSuspend})
		case "lease":
			acquire := OpLeaseAcquire
			if r.Header.Get(nonceHeader) != "" {
				acquire = OpLeaseRefresh
			}
			rt.op, rt.badMethod = pick(m, map[string]string{http.MethodGet: OpLeaseGet, http.MethodPost: acquire, http.MethodDelete: OpLeaseRelease})
		case "metadata":
			rt.op, rt.badMethod = pick(m, map[string]string{http.MethodGet: OpMetadataGet})
		default:
			rt.op = OpUnknown
		}
	case 5:
		rt.machineID = parts[2]
		if parts[3] != "metadata" || parts[4] == "" {
			rt.op = OpUnknown
			break
		}
		rt.key = parts[4]
		rt.op, rt.badMethod = pick(m, map[string]string{http.MethodPost: OpMetadataSet, http.MethodDelete: OpMetadataDelete})
	default:
		rt.op = OpUnknown
	}
	return rt
}

// pick returns the operation for method, or OpUnknown and true when the
// path has no such method.
func pick(method string, ops map[string]string) (string, bool) {
	op, ok := ops[method]
	if !ok {
		return OpUnknown, true
	}
	return op, false
}

func (s *Server) serveMachines(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.op == OpUnknown {
		if rt.badMethod {
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		} else {
			writeError(w, http.StatusNotFound, "not found")
		}
		return
	}
	a := s.apps[rt.app]
	if a == nil {
		writeError(w, http.StatusNotFound, "app not found")
		return
	}
	switch rt.op {
	case OpList:
		s.list(w, r, a)
	case OpLaunch:
		s.launch(w, r, a)
	case OpGet, OpLeaseGet, OpMetadataGet:
		a.mu.RLock()
		defer a.mu.RUnlock()
		m := a.machines[rt.machineID]
		if m == nil {
			writeError(w, http.StatusNotFound, "machine not found")
			return
		}
		switch rt.op {
		case OpGet:
			writeJSON(w, http.StatusOK, m.view())
		case OpLeaseGet:
			l := m.activeLease(s.now())
			if l == nil {
				writeError(w, http.StatusNotFound, "lease not found")
				return
			}
			writeJSON(w, http.StatusOK, leaseBody(l, m))
		case OpMetadataGet:
			md := m.m.Config.Metadata
			if md == nil {
				md = map[string]string{}
			}
			writeJSON(w, http.StatusOK, md)
		}
	default:
		s.change(w, r, a, rt)
	}
}

// list answers GET /v1/apps/{app}/machines. The raw query string fly-go
// appends is tolerated; understood are include_deleted=true, region=,
// state=<s>[,<s>] and metadata.<key>=<value>.
func (s *Server) list(w http.ResponseWriter, r *http.Request, a *app) {
	q, _ := url.ParseQuery(r.URL.RawQuery)
	includeDeleted := q.Get("include_deleted") == "true"
	region := q.Get("region")
	var states map[string]bool
	if v := q.Get("state"); v != "" {
		states = map[string]bool{}
		for _, st := range strings.Split(v, ",") {
			states[st] = true
		}
	}
	meta := map[string]string{}
	for k, v := range q {
		if key, ok := strings.CutPrefix(k, "metadata."); ok && len(v) > 0 {
			meta[key] = v[0]
		}
	}

	a.mu.RLock()
	views := make([]fly.Machine, 0, len(a.machines))
	for _, m := range a.machines {
		switch {
		case m.m.State == fly.MachineStateDestroyed && !includeDeleted && !states[fly.MachineStateDestroyed]:
			continue
		case region != "" && m.m.Region != region:
			continue
		case states != nil && !states[m.m.State]:
			continue
		}
		if !metadataMatches(m.m.Config.Metadata, meta) {
			continue
		}
		views = append(views, m.view())
	}
	sort.Slice(views, func(i, j int) bool { return views[i].ID < views[j].ID })
	data, err := json.Marshal(views)
	a.mu.RUnlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRaw(w, http.StatusOK, data)
}

func metadataMatches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// launch answers POST /v1/apps/{app}/machines with a fly.LaunchMachineInput.
func (s *Server) launch(w http.ResponseWriter, r *http.Request, a *app) {
	var in fly.LaunchMachineInput
	if err := decodeBody(r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if in.Config == nil || in.Config.Image == "" {
		writeError(w, http.StatusBadRequest, "invalid config: image is required")
		return
	}
	cfg, err := copyConfig(in.Config)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	region := in.Region
	if region == "" {
		region = defaultRegion
	}
	now := s.now()
	stamp := now.UTC().Format(time.RFC3339)

	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	id := a.nextID()
	name := in.Name
	if name == "" {
		name = machineName(id)
	}
	m := &machine{m: fly.Machine{
		ID:         id,
		Name:       name,
		State:      fly.MachineStateCreated,
		Region:     region,
		ImageRef:   parseImageRef(cfg.Image),
		InstanceID: s.newInstanceID(),
		PrivateIP:  privateIP(id),
		CreatedAt:  stamp,
		UpdatedAt:  stamp,
		Config:     cfg,
		HostStatus: fly.HostStatusOk,
	}}
	m.event("launch", "created", "user", now)
	if !in.SkipLaunch {
		m.m.State = fly.MachineStateStarted
		m.event("start", "started", "flyd", now)
	}
	a.machines[id] = m
	out := m.view()
	if in.LeaseTTL > 0 {
		m.lease = &lease{nonce: s.nonce(), owner: leaseOwner, expires: now.Add(time.Duration(in.LeaseTTL) * time.Second)}
		out.LeaseNonce = m.lease.nonce
	}
	writeJSON(w, http.StatusOK, out)
}

// change handles the operations that modify one machine or its lease.
func (s *Server) change(w http.ResponseWriter, r *http.Request, a *app, rt route) {
	// Decode bodies before taking the lock.
	var (
		update fly.LaunchMachineInput
		value  struct {
			Value *string `json:"value"`
		}
		leaseIn struct {
			TTL         int    `json:"ttl"`
			Description string `json:"description"`
		}
	)
	switch rt.op {
	case OpUpdate:
		if err := decodeBody(r, &update); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if update.Config == nil || update.Config.Image == "" {
			writeError(w, http.StatusBadRequest, "invalid config: image is required")
			return
		}
	case OpStop:
		var in fly.StopMachineInput
		if err := decodeBody(r, &in); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	case OpMetadataSet:
		if err := decodeBody(r, &value); err != nil || value.Value == nil {
			writeError(w, http.StatusBadRequest, `body must be {"value": "<string>"}`)
			return
		}
	case OpLeaseAcquire, OpLeaseRefresh:
		if err := decodeBody(r, &leaseIn); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if v := r.URL.Query().Get("ttl"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				writeError(w, http.StatusBadRequest, "invalid ttl")
				return
			}
			leaseIn.TTL = n
		}
	}

	now := s.now()
	nonce := r.Header.Get(nonceHeader)

	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.machines[rt.machineID]
	if m == nil || rt.op == OpDestroy && m.m.State == fly.MachineStateDestroyed {
		writeError(w, http.StatusNotFound, "machine not found")
		return
	}

	switch rt.op {
	case OpLeaseAcquire, OpLeaseRefresh:
		if msg := m.leaseConflict(nonce, now); msg != "" {
			writeError(w, http.StatusConflict, msg)
			return
		}
		ttl := defaultLeaseTTL
		if leaseIn.TTL > 0 {
			ttl = time.Duration(leaseIn.TTL) * time.Second
		}
		if l := m.activeLease(now); l != nil {
			l.expires = now.Add(ttl) // refresh: the nonce matched
		} else {
			m.lease = &lease{nonce: s.nonce(), owner: leaseOwner, description: leaseIn.Description, expires: now.Add(ttl)}
		}
		writeJSON(w, http.StatusOK, leaseBody(m.lease, m))
		return
	case OpLeaseRelease:
		if m.activeLease(now) == nil {
			writeError(w, http.StatusNotFound, "lease not found")
			return
		}
		if msg := m.leaseConflict(nonce, now); msg != "" {
			writeError(w, http.StatusConflict, msg)
			return
		}
		m.lease = nil
		writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": map[string]bool{"ok": true}})
		return
	case OpMetadataSet, OpMetadataDelete:
		// A change of metadata is a change of the machine: its lease
		// applies, as to every mutating call.
		if msg := m.leaseConflict(nonce, now); msg != "" {
			writeError(w, http.StatusConflict, msg)
			return
		}
	}
	switch rt.op {
	case OpMetadataSet:
		if m.m.Config.Metadata == nil {
			m.m.Config.Metadata = map[string]string{}
		}
		m.m.Config.Metadata[rt.key] = *value.Value
		m.m.UpdatedAt = now.UTC().Format(time.RFC3339)
		w.WriteHeader(http.StatusNoContent)
		return
	case OpMetadataDelete:
		delete(m.m.Config.Metadata, rt.key)
		m.m.UpdatedAt = now.UTC().Format(time.RFC3339)
		w.WriteHeader(http.StatusNoContent)
		return
	}

	// start, stop, suspend, destroy, update: the machine's lease applies.
	if msg := m.leaseConflict(nonce, now); msg != "" {
		writeError(w, http.StatusConflict, msg)
		return
	}
	if m.m.HostStatus != fly.HostStatusOk && m.m.State != fly.MachineStateDestroyed {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("could not reach host of machine %s (host_status %s)", m.m.ID, m.m.HostStatus))
		return
	}
	state := m.m.State
	precondition := func(msg string) { writeError(w, http.StatusPreconditionFailed, "failed_precondition: "+msg) }

	switch rt.op {
	case OpStart:
		switch state {
		case fly.MachineStateStopped, fly.MachineStateSuspended, fly.MachineStateCreated, "failed":
		case fly.MachineStateStarted, "starting", "stopping", "suspending", "restarting":
			precondition("machine still active, refusing to start")
			return
		default:
			precondition(fmt.Sprintf("unable to start machine from current state: '%s'", state))
			return
		}
		m.m.State = fly.MachineStateStarted
		m.event("start", "started", "flyd", now)
		writeJSON(w, http.StatusOK, map[string]any{"previous_state": state, "migrated": false, "new_host": ""})
	case OpStop, OpSuspend:
		verb, to := "stop", fly.MachineStateStopped
		if rt.op == OpSuspend {
			verb, to = "suspend", fly.MachineStateSuspended
		}
		if state != fly.MachineStateStarted {
			precondition(fmt.Sprintf("unable to %s machine from current state: '%s'", verb, state))
			return
		}
		m.m.State = to
		m.event(verb, to, "user", now)
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case OpDestroy:
		q := r.URL.Query()
		force := q.Get("kill") == "true" || q.Get("force") == "true"
		switch state {
		case fly.MachineStateStopped, fly.MachineStateSuspended, fly.MachineStateCreated, "failed":
		default:
			if !force {
				precondition("unable to destroy machine, not currently stopped, suspended, failed or created")
				return
			}
		}
		m.m.State = fly.MachineStateDestroyed
		m.lease = nil
		m.event("destroy", "destroyed", "user", now)
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case OpUpdate:
		if state == fly.MachineStateDestroyed {
			precondition("unable to update machine from current state: 'destroyed'")
			return
		}
		cfg, err := copyConfig(update.Config)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		m.m.Config = cfg
		m.m.ImageRef = parseImageRef(cfg.Image)
		m.m.InstanceID = s.newInstanceID()
		if update.Name != "" {
			m.m.Name = update.Name
		}
		m.event("update", "updated", "user", now)
		writeJSON(w, http.StatusOK, m.view())
	}
}
