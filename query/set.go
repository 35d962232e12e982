package query

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultFleetTimeout bounds a fleet-wide query that Collect has to start
// itself because neither Start nor Prefetch was called.
const DefaultFleetTimeout = 30 * time.Second

// Set is the metric sources of one run. It runs every fleet-wide query at
// most once, however many apps ask, and is safe for concurrent use. Build a
// new Set for every run: it keeps the fleet-wide results of the run it
// serves.
type Set struct {
	// FleetTimeout bounds a fleet-wide query started by Collect (not by
	// Start or Prefetch, which the caller's ctx bounds); zero means
	// DefaultFleetTimeout.
	FleetTimeout time.Duration

	sources []Source
	fleet   []*fleetCall // fleet[i] is nil for a per-app source
	batch   []*batchCall // batch[i] is nil but for a BatchSource
	warn    warnings
}

// fleetCall is the one run of a fleet-wide query.
type fleetCall struct {
	src    FleetSource
	once   sync.Once
	done   chan struct{}
	lookup Lookup
	err    error
}

// NewSet returns a Set of sources, which must have distinct, non-empty
// names.
func NewSet(sources ...Source) (*Set, error) {
	s := &Set{
		sources: make([]Source, len(sources)),
		fleet:   make([]*fleetCall, len(sources)),
		batch:   make([]*batchCall, len(sources)),
	}
	seen := make(map[string]bool, len(sources))
	for i, src := range sources {
		if src == nil {
			return nil, fmt.Errorf("source %d: nil", i)
		}
		name := src.Name()
		switch {
		case name == "":
			return nil, fmt.Errorf("source %d: empty metric name", i)
		case seen[name]:
			return nil, fmt.Errorf("metric %q: defined twice", name)
		}
		seen[name] = true
		s.sources[i] = src
		if fs, ok := src.(FleetSource); ok && fs.FleetWide() {
			s.fleet[i] = &fleetCall{src: fs, done: make(chan struct{})}
		}
		if bs, ok := src.(BatchSource); ok {
			s.batch[i] = &batchCall{src: bs, done: make(chan struct{})}
		}
	}
	return s, nil
}

// names returns the metric names in the order the sources were given.
func (s *Set) names() []string {
	names := make([]string, len(s.sources))
	for i, src := range s.sources {
		names[i] = src.Name()
	}
	return names
}

// Start sends the fleet-wide queries, concurrently, under ctx, and returns
// without waiting for them. They need no app names, so a run can send them
// while it lists its apps instead of after: their time then overlaps the
// listing's instead of adding to it. Prefetch waits for them; ctx must last
// until it has returned. A query already started (by Start, Prefetch or
// Collect) is not started again.
func (s *Set) Start(ctx context.Context) {
	for _, c := range s.fleet {
		if c != nil {
			c.start(ctx)
		}
	}
}

// Prefetch runs the fleet-wide queries that Start did not, and opens the run
// of each BatchSource for apps, concurrently, and waits for all of them;
// ctx bounds what it starts. A failed query is kept, and Collect returns its
// error for every app. With no apps there is nothing to prefetch: Prefetch
// sends nothing and returns at once, without waiting for the queries Start
// sent (their ctx ends them). Calling Prefetch again, or after Collect
// started a query, does not query again.
func (s *Set) Prefetch(ctx context.Context, apps []string) {
	if len(apps) == 0 {
		return
	}
	s.Start(ctx)
	for _, c := range s.batch {
		if c != nil {
			c.start(ctx, apps)
		}
	}
	for _, c := range s.fleet {
		if c != nil {
			<-c.done
		}
	}
	for _, c := range s.batch {
		if c != nil {
			<-c.done
		}
	}
}

// Collect returns every metric's value for app, keyed by metric name, or the
// first error, which names the metric. Per-app queries run one after the
// other under ctx. A fleet-wide query that neither Start nor Prefetch
// started is started by the first Collect that needs it, detached from that
// caller's ctx (bounded by FleetTimeout instead) so one app's deadline
// cannot fail it for the others; each caller waits for it only as long as
// its own ctx allows.
func (s *Set) Collect(ctx context.Context, app string) (map[string]float64, error) {
	values := make(map[string]float64, len(s.sources))
	for i, src := range s.sources {
		v, err := s.collect(ctx, i, src, app)
		if err != nil {
			return nil, fmt.Errorf("metric %q: %w", src.Name(), err)
		}
		values[src.Name()] = v
	}
	return values, nil
}

func (s *Set) collect(ctx context.Context, i int, src Source, app string) (float64, error) {
	if b := s.batch[i]; b != nil {
		r, err := b.read(ctx, app, s.fleetTimeout())
		if err != nil {
			return 0, err
		}
		s.warn.add(app, r.Warnings)
		return r.Value, nil
	}
	c := s.fleet[i]
	if c == nil {
		return src.Collect(ctx, app)
	}
	c.once.Do(func() {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.fleetTimeout())
		go func() {
			defer cancel()
			c.run(qctx)
		}()
	})
	select {
	case <-c.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("wait for fleet-wide query: %w", ctx.Err())
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.lookup(app)
}

func (s *Set) fleetTimeout() time.Duration {
	if s.FleetTimeout <= 0 {
		return DefaultFleetTimeout
	}
	return s.FleetTimeout
}

// start runs the query under ctx unless it has been started already.
func (c *fleetCall) start(ctx context.Context) {
	c.once.Do(func() { go c.run(ctx) })
}

func (c *fleetCall) run(ctx context.Context) {
	defer close(c.done)
	lookup, err := c.src.CollectFleet(ctx)
	if err != nil {
		c.err = fmt.Errorf("fleet-wide query: %w", err)
		return
	}
	c.lookup = lookup
}

// Close closes the sources that hold a connection (those that are an
// io.Closer, and the run of each BatchSource) and returns the first error.
// Call it when the run is over.
func (s *Set) Close() error {
	var first error
	for i, c := range s.batch {
		if c == nil {
			continue
		}
		if err := c.close(); err != nil && first == nil {
			first = fmt.Errorf("metric %q: close: %w", s.sources[i].Name(), err)
		}
	}
	for _, src := range s.sources {
		if c, ok := src.(io.Closer); ok {
			if err := c.Close(); err != nil && first == nil {
				first = fmt.Errorf("metric %q: close: %w", src.Name(), err)
			}
		}
	}
	return first
}
