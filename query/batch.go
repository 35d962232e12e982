package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// BatchSource is a Source that serves the apps of a run from shared reads:
// one connection or client per run, and the reads that answer for several
// apps at once (a stream's consumer listing, every group's offsets). A Set
// calls Start once per run, Read once per app, and Close at the end.
type BatchSource interface {
	Source
	// Start opens the run for apps (nil when the apps are not known in
	// advance): it connects once and makes the shared reads, bounded by
	// ctx. An error from Start, such as a server that cannot be reached,
	// fails every app of the source.
	Start(ctx context.Context, apps []string) (Batch, error)
}

// Batch is one run of a BatchSource.
type Batch interface {
	// Read returns app's value and the warnings that go with it. A
	// request it has to make for app alone is bounded by ctx. A value is
	// never made up: absence is an error.
	Read(ctx context.Context, app string) (Reading, error)
	// Close releases the run's connection.
	Close() error
}

// Reading is one app's value from a BatchSource.
type Reading struct {
	Value float64
	// Warnings are facts about the value that the report shows, such as
	// a consumer group that has never committed.
	Warnings []string
}

// Trace is one request a source made, for --verbose logs: what was asked,
// how long it took and its outcome. It holds no secret.
type Trace struct {
	Source  string // the metric name
	Request string // e.g. "connect nats://host:4222", "consumer info jobs/workers"
	Elapsed time.Duration
	Err     error // nil on success
}

// Tracer receives a Trace for each request of a source. It must be safe for
// concurrent use.
type Tracer func(Trace)

// SourceOption changes how NewNATS and NewKafka build a source.
type SourceOption func(*SourceOptions)

type SourceOptions struct {
	trace Tracer
}

// WithTrace sets the function that receives a Trace for each request.
func WithTrace(fn Tracer) SourceOption {
	return func(o *SourceOptions) { o.trace = fn }
}

func NewSourceOptions(opts []SourceOption) SourceOptions {
	var o SourceOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.trace == nil {
		o.trace = func(Trace) {}
	}
	return o
}

// Traced calls fn and reports it as one request of source.
func (o SourceOptions) Traced(source, request string, fn func() error) error {
	start := time.Now()
	err := fn()
	o.trace(Trace{Source: source, Request: request, Elapsed: time.Since(start), Err: err})
	return err
}

// batchCall is the one run of a BatchSource in a Set.
type batchCall struct {
	src   BatchSource
	once  sync.Once
	done  chan struct{}
	batch Batch
	err   error
}

// start opens the run under ctx unless it is open already.
func (c *batchCall) start(ctx context.Context, apps []string) {
	c.once.Do(func() { go c.run(ctx, apps) })
}

func (c *batchCall) run(ctx context.Context, apps []string) {
	defer close(c.done)
	c.batch, c.err = c.src.Start(ctx, apps)
}

// read waits for the run to be open, as long as ctx allows, and reads app.
// A run that Prefetch did not open is opened here, for no app in
// particular, detached from ctx and bounded by timeout instead, so that one
// app's deadline cannot fail it for the others.
func (c *batchCall) read(ctx context.Context, app string, timeout time.Duration) (Reading, error) {
	c.once.Do(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		go func() {
			defer cancel()
			c.run(sctx, nil)
		}()
	})
	select {
	case <-c.done:
	case <-ctx.Done():
		return Reading{}, fmt.Errorf("wait for the source to connect: %w", ctx.Err())
	}
	if c.err != nil {
		return Reading{}, c.err
	}
	return c.batch.Read(ctx, app)
}

// close closes the run if it was opened, waiting for it to open first.
func (c *batchCall) close() error {
	opened := true
	c.once.Do(func() {
		opened = false
		c.err = errors.New("source closed")
		close(c.done)
	})
	if !opened {
		return nil
	}
	<-c.done
	if c.batch == nil {
		return nil
	}
	return c.batch.Close()
}

// warnings keeps the warnings of each app's readings.
type warnings struct {
	mu    sync.Mutex
	byApp map[string][]string
}

func (w *warnings) add(app string, ws []string) {
	if len(ws) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byApp == nil {
		w.byApp = map[string][]string{}
	}
	w.byApp[app] = append(w.byApp[app], ws...)
}

// Warnings returns the warnings about app's values that its last Collect
// found (a Kafka group without commits), in source order.
func (s *Set) Warnings(app string) []string {
	s.warn.mu.Lock()
	defer s.warn.mu.Unlock()
	return append([]string(nil), s.warn.byApp[app]...)
}

// DefaultConnectTimeout bounds the one connection attempt of a run to a
// NATS server or a Kafka broker when the run's deadline is further away.
const DefaultConnectTimeout = 10 * time.Second
