// Package flytest is an in-process fake of the Fly.io GraphQL and Machines
// APIs, in the spirit of net/http/httptest: an HTTP server on 127.0.0.1
// backed by an in-memory organization, speaking the JSON that fly-go v0.9.3
// sends and parses. Point flyapi.Options' APIBaseURL and MachinesBaseURL
// (or fly.ClientOptions.BaseURL and FLY_FLAPS_BASE_URL) at Server.URL.
//
// Beyond the happy path it offers injectable latency and faults, leases held
// by someone else, Fly's published Machines API rate limits, an injectable
// clock and a log of every call. Machine state changes are instantaneous:
// start leaves a machine "started", never "starting".
//
// The package does not import "testing": the demo command uses it too.
package flytest

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/tokens"
	"golang.org/x/time/rate"
)

// Options configure a Server. The zero value is a server without
// authentication, latency or rate limits, on the real clock.
type Options struct {
	// Token, when set, is required on every request: the Authorization
	// header must equal what fly-go sends for it (tokens.GraphQLHeader for
	// GraphQL, tokens.FlapsHeader for the Machines API). Otherwise GraphQL
	// answers HTTP 401 and the Machines API 401 {"error":"unauthorized"}.
	Token string
	// Now is the clock for machine events, timestamps and lease expiry
	// (default time.Now). Latency and rate limits use the real clock.
	Now func() time.Time
	// Latency is added to every request before it is handled. A request
	// cancelled while waiting is dropped without effect.
	Latency time.Duration
	// Seed makes probabilistic faults, lease nonces and instance IDs
	// reproducible.
	Seed uint64
	// RateLimit enforces Fly's published Machines API limits: per action
	// and identifier 1 request/s with a burst of 3 (list and create count
	// per app, other actions per machine), and 5/s with a burst of 10 for
	// get. Over the limit the answer is 429 {"error":"rate limit exceeded"}
	// with a Retry-After header. GraphQL is not limited.
	RateLimit bool
}

// Operation names used in Call.Op and Fault.Op.
const (
	OpList           = "list"
	OpGet            = "get"
	OpLaunch         = "launch"
	OpUpdate         = "update"
	OpStart          = "start"
	OpStop           = "stop"
	OpSuspend        = "suspend"
	OpDestroy        = "destroy"
	OpLeaseAcquire   = "lease_acquire"
	OpLeaseRefresh   = "lease_refresh" // POST .../lease with a nonce header
	OpLeaseGet       = "lease_get"
	OpLeaseRelease   = "lease_release"
	OpMetadataGet    = "metadata_get"
	OpMetadataSet    = "metadata_set"
	OpMetadataDelete = "metadata_delete"
	OpGraphQLOrg     = "graphql_org"     // organization(slug)
	OpGraphQLApps    = "graphql_apps"    // apps(...) page
	OpGraphQLRelease = "graphql_release" // app(name) { currentRelease... }
	OpGraphQLApp     = "graphql_app"     // app(name) without release fields
	OpGraphQL        = "graphql"         // any other GraphQL request
	OpUnknown        = "unknown"         // no such endpoint
)

// mutatingOps are the operations that change a machine or the fleet.
var mutatingOps = map[string]bool{
	OpLaunch: true, OpUpdate: true, OpStart: true, OpStop: true, OpSuspend: true,
	OpDestroy: true, OpMetadataSet: true, OpMetadataDelete: true,
}

// IsMutation reports whether op changes a machine or the fleet: launch,
// update, start, stop, suspend, destroy, metadata_set and metadata_delete.
// Leases and reads are not mutations.
func IsMutation(op string) bool { return mutatingOps[op] }

// Call is one request the server received, recorded when it was answered.
type Call struct {
	Op        string
	Method    string
	Path      string
	RawQuery  string
	App       string // the app named in the path, or GraphQL's app/appName
	MachineID string
	// Status is the HTTP status answered; 499 when the client went away
	// before it was answered, 0 when a Fault dropped the connection.
	Status int
	Time   time.Time // arrival, on Options.Now's clock
}

// Fault is an injected failure or delay. Empty Op and App match anything.
type Fault struct {
	Op  string // an Op* constant, or "" for any operation
	App string // "" for any app
	// Status is the HTTP status to answer instead of handling the request;
	// 0 with Latency set only slows matching requests down.
	Status int
	// Body defaults to {"error":"<status text>"} (GraphQL: an error list).
	Body string
	// RetryAfter sets the Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration
	// Times limits how often the fault fires (0 = unlimited). A matching
	// request uses one up even if it is then refused for its token. Of the
	// faults that answer (Status or Drop), only the first that fires for
	// a request fires: the others neither use up Times nor draw their
	// Probability, so faults injected in a row strike requests in a row.
	Times int
	// Probability of firing per matching request; 0 or 1 = always.
	// Draws come from a generator seeded with Options.Seed.
	Probability float64
	// Latency is added to matching requests, before any error.
	Latency time.Duration
	// After makes the fault strike once the request has taken effect: the
	// request is handled (a create makes its machine, a destroy removes
	// it) and then its answer is lost, replaced by Status, or by a dropped
	// connection with Drop. This is the ambiguous failure a client cannot
	// tell from one that changed nothing.
	After bool
	// Drop closes the connection without an answer instead of answering
	// Status (which may then be 0).
	Drop bool
}

// Server is a fake Fly API. Create it with New and Close it when done.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port", for both APIs.
	URL string

	srv  *httptest.Server
	opts Options
	now  func() time.Time

	graphqlAuth, flapsAuth string

	org   *world
	apps  map[string]*app // immutable after New; each app has its own lock
	names []string        // sorted app names

	faultMu  sync.Mutex
	faults   []*Fault
	faultRng *rand.Rand

	idMu  sync.Mutex
	idRng *rand.Rand

	limitMu  sync.Mutex
	limiters map[string]*rate.Limiter

	callMu sync.Mutex
	calls  []Call

	// flightMu guards the Machines API requests of each app in flight
	// now and their peak since the last ResetCalls.
	flightMu sync.Mutex
	inFlight map[string]int
	peak     map[string]int

	conns atomic.Int64 // connections accepted
}

// app is one app's state, guarded by mu. List and get hold it for reading,
// so many apps and readers are served concurrently; changes to any of the
// app's machines hold it for writing.
type app struct {
	name  string
	numID int32
	image string

	mu       sync.RWMutex
	release  *release
	machines map[string]*machine
	seq      int // machines ever created, for deterministic IDs
}

type release struct {
	id        string
	version   int
	status    string
	createdAt time.Time
	imageRef  string
}

// machine holds a machine as the API shows it, except that Config is always
// the full config (views swap it for incomplete_config on bad hosts).
type machine struct {
	m     fly.Machine
	lease *lease
}

type lease struct {
	nonce, owner, description string
	expires                   time.Time
}

// New starts a Server on 127.0.0.1 serving org. It panics if org is invalid
// (ParseOrg reports the same problems as errors) or no port can be bound,
// as httptest.NewServer does.
func New(org *Org, opts Options) *Server {
	s := newServer(org, opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("flytest: listen: " + err.Error())
	}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

func newServer(org *Org, opts Options) *Server {
	w, err := org.build()
	if err != nil {
		panic("flytest: " + err.Error())
	}
	s := &Server{
		opts:     opts,
		now:      opts.Now,
		org:      w,
		apps:     w.apps,
		names:    w.names,
		faultRng: rand.New(rand.NewPCG(opts.Seed, 0x666c79)),
		idRng:    rand.New(rand.NewPCG(opts.Seed, 0x6964)),
		limiters: map[string]*rate.Limiter{},
		inFlight: map[string]int{},
		peak:     map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Token != "" {
		t := tokens.Parse(opts.Token)
		s.graphqlAuth, s.flapsAuth = t.GraphQLHeader(), t.FlapsHeader()
	}
	return s
}

// Close shuts the server down, waiting for outstanding requests.
func (s *Server) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// route is what a request addresses.
type route struct {
	op, app, machineID, key string
	graphql                 *gqlRequest
	badMethod               bool // the path exists, the method does not
}

// ServeHTTP serves both APIs: GraphQL at /graphql, the Machines API under
// /v1/apps/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := s.now()
	sw := &statusWriter{ResponseWriter: w}
	rt := s.route(r)
	defer func() {
		st := sw.status
		switch {
		case sw.dropped:
			st = 0
		case st == 0:
			st = 499
		}
		s.record(Call{Op: rt.op, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			App: rt.app, MachineID: rt.machineID, Status: st, Time: arrived})
	}()

	isGraphQL := r.URL.Path == "/graphql"
	if !isGraphQL && rt.app != "" {
		// In flight from arrival, latency included, to the answer: what
		// the client sees as outstanding.
		s.takeOff(rt.app)
		defer s.land(rt.app)
	}
	if !isGraphQL && r.Body != nil {
		// Read the body at once: only then does net/http watch the
		// connection, so that a client that goes away (a killed process)
		// cancels the request while it waits out its latency.
		data, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
	}
	matched := s.matchFaults(rt)
	delay := s.opts.Latency
	for _, f := range matched {
		delay += f.Latency
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if r.Context().Err() != nil {
		return
	}

	if s.opts.Token != "" {
		want := s.flapsAuth
		if isGraphQL {
			want = s.graphqlAuth
		}
		if r.Header.Get("Authorization") != want {
			if isGraphQL {
				writeGraphQLErrors(sw, http.StatusUnauthorized, gqlError{Message: "You must be authenticated to view this.", Extensions: &gqlExtensions{Code: "UNAUTHORIZED"}})
			} else {
				writeError(sw, http.StatusUnauthorized, "unauthorized")
			}
			return
		}
	}

	var lost *Fault // answer lost after the request took effect
	for _, f := range matched {
		if f.Status == 0 && !f.Drop {
			continue
		}
		if f.After {
			lost = &f
			break
		}
		writeFault(sw, f, isGraphQL)
		return
	}

	if !isGraphQL && s.opts.RateLimit && rt.op != OpUnknown {
		if wait, ok := s.allow(rt); !ok {
			sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(sw, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
	}

	var out http.ResponseWriter = sw
	if lost != nil {
		out = httptest.NewRecorder() // the real answer, never sent
	}
	if isGraphQL {
		s.serveGraphQL(out, r, rt)
	} else {
		s.serveMachines(out, r, rt)
	}
	if lost != nil {
		writeFault(sw, *lost, isGraphQL)
	}
}

// nonce returns a lease nonce: 12 hex characters, like Fly's.
func (s *Server) nonce() string {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return fmt.Sprintf("%012x", s.idRng.Uint64()&0xffffffffffff)
}

func (s *Server) newInstanceID() string {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return instanceID(strconv.FormatUint(s.idRng.Uint64(), 16))
}
