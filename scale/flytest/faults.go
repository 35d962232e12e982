package flytest

// Injected faults and the Machines API's rate limits.

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// writeFault answers with f's status and body, or drops the connection.
func writeFault(sw *statusWriter, f Fault, isGraphQL bool) {
	if f.Drop {
		sw.dropped = true
		if conn, _, err := http.NewResponseController(sw.ResponseWriter).Hijack(); err == nil {
			_ = conn.Close()
		} else {
			panic(http.ErrAbortHandler) // net/http closes the connection
		}
		return
	}
	if f.RetryAfter > 0 {
		sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	switch {
	case f.Body != "":
		sw.Header().Set("Content-Type", "application/json")
		sw.WriteHeader(f.Status)
		_, _ = sw.Write([]byte(f.Body))
	case isGraphQL:
		writeGraphQLErrors(sw, f.Status, gqlError{Message: http.StatusText(f.Status)})
	default:
		writeError(sw, f.Status, http.StatusText(f.Status))
	}
}

// matchFaults returns the faults that fire for rt, consuming their Times.
func (s *Server) matchFaults(rt route) []Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	var out []Fault
	answered := false // a fault that answers (or drops) fired: later ones that would answer stand by
	kept := s.faults[:0]
	for _, f := range s.faults {
		answers := f.Status != 0 || f.Drop
		fire := (f.Op == "" || f.Op == rt.op) && (f.App == "" || f.App == rt.app) && !(answers && answered)
		if fire && f.Probability > 0 && f.Probability < 1 {
			fire = s.faultRng.Float64() < f.Probability
		}
		if fire {
			answered = answered || answers
			out = append(out, *f)
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					continue // used up
				}
			}
		}
		kept = append(kept, f)
	}
	clear(s.faults[len(kept):])
	s.faults = kept
	return out
}

// Inject adds a fault; it applies to requests arriving from now on.
// Faults are checked in the order they were injected.
func (s *Server) Inject(f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
}

// allow applies the rate limit of rt's action and identifier. When over the
// limit it reports how long until a request would be allowed.
func (s *Server) allow(rt route) (time.Duration, bool) {
	key := rt.op + " " + rt.app
	if rt.op != OpList && rt.op != OpLaunch {
		key += "/" + rt.machineID
	}
	s.limitMu.Lock()
	lim := s.limiters[key]
	if lim == nil {
		if rt.op == OpGet {
			lim = rate.NewLimiter(5, 10)
		} else {
			lim = rate.NewLimiter(1, 3)
		}
		s.limiters[key] = lim
	}
	s.limitMu.Unlock()

	now := time.Now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}
