package flyapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Rate requests per second, bursts of Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Limits are the client-side Machines API rate limits, applied per action
// and identifier.
type Limits struct {
	// Action limits every Machines API action but get machine: list and
	// create per app, the others (start, stop, suspend, destroy, update,
	// lease, metadata, ...) per machine.
	Action Limit
	// Get limits get machine, per machine.
	Get Limit
}

// defaultLimits returns limits that keep a client under the Machines API's
// published rate limits (https://fly.io/docs/machines/api/working-with-machines-api/,
// "Rate Limits"): per action and identifier 1 request/s with a burst of 3,
// except get machine at 5/s with a burst of 10; list and create are counted
// per app, the other actions per machine.
//
// The rates are Fly's; the bursts are one second's worth of requests lower
// (2 and 5). Fly counts requests when they arrive, this transport when it
// sends them, and with equal rates the spare second of tokens absorbs up to
// a second of difference in network delay between two requests, where a
// client with Fly's own bursts would be refused a request that overtook
// one sent before it.
func defaultLimits() Limits {
	return Limits{Action: Limit{Rate: 1, Burst: 2}, Get: Limit{Rate: 5, Burst: 5}}
}

// rtLimiters holds one token bucket per action and identifier. A bucket is
// dropped once it has refilled, since it is then the same as a new one;
// tokens are taken under the lock, so none is dropped while in use.
type rtLimiters struct {
	limits Limits
	now    func() time.Time

	mu      sync.Mutex
	m       map[string]*rate.Limiter
	sweepAt int // sweep when the map reaches this size
}

const rtMinSweep = 256

func newRTLimiters(l Limits) *rtLimiters {
	return &rtLimiters{limits: l, now: time.Now, m: map[string]*rate.Limiter{}, sweepAt: rtMinSweep}
}

// key returns ep's limiter key and limit; false when ep is not limited.
func (s *rtLimiters) key(ep rtEndpoint) (string, Limit, bool) {
	if ep.action == "" {
		return "", Limit{}, false
	}
	l := s.limits.Action
	if ep.action == "get" {
		l = s.limits.Get
	}
	if l.Rate <= 0 {
		return "", Limit{}, false
	}
	if ep.machine == "" {
		return ep.action + " " + ep.app, l, true
	}
	return ep.action + " " + ep.app + "/" + ep.machine, l, true
}

// wait takes a token for ep, waiting for it unless that would pass ctx's
// deadline (rate.Limiter.Wait, with the token taken under s.mu).
func (s *rtLimiters) wait(ctx context.Context, ep rtEndpoint) error {
	if err := ctx.Err(); err != nil || s == nil {
		return err
	}
	key, l, ok := s.key(ep)
	if !ok {
		return nil
	}
	now, r := s.reserve(key, l)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && !now.Add(d).Before(dl) {
		r.CancelAt(now)
		return fmt.Errorf("client rate limit of %s: a wait of %v would pass the deadline: %w", key, d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	if !rtSleep(ctx, d) {
		r.Cancel()
		return ctx.Err()
	}
	return nil
}

func (s *rtLimiters) reserve(key string, l Limit) (time.Time, *rate.Reservation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	lim := s.m[key]
	if lim == nil {
		if len(s.m) >= s.sweepAt {
			s.sweep(now)
		}
		lim = rate.NewLimiter(rate.Limit(l.Rate), max(l.Burst, 1))
		s.m[key] = lim
	}
	return now, lim.ReserveN(now, 1)
}

// sweep drops the limiters that have refilled. Sweeping when the map has
// doubled since the last sweep keeps the cost per request constant.
func (s *rtLimiters) sweep(now time.Time) {
	for k, lim := range s.m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(s.m, k)
		}
	}
	s.sweepAt = max(rtMinSweep, 2*len(s.m))
}

// size returns the number of limiters held.
func (s *rtLimiters) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
