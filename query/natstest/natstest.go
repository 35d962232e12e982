// Package natstest runs a real NATS server with JetStream in the test's
// process, in the spirit of net/http/httptest, and builds consumer backlogs
// of a known size. Only tests import it: the server never reaches the
// product binary.
//
//	srv := natstest.Start(t, natstest.Options{})
//	srv.Backlog(t, natstest.Backlog{Stream: "jobs-a", Consumer: "workers", Published: 10, Unacked: 3})
//	// point the code under test at srv.URL()
package natstest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures Start.
type Options struct {
	// Token, when set, is required of every client.
	Token string
}

// Server is a running NATS server with JetStream on 127.0.0.1.
type Server struct {
	srv *server.Server
	url string
	nc  *nats.Conn
	js  jetstream.JetStream

	mu       sync.Mutex
	requests map[string]int // JetStream API requests by kind and stream
	seen     uint64         // requests seen since the start
	watch    *nats.Subscription
}

// Start starts a server on a random port with its store in a temporary
// directory, and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	o := &server.Options{
		ServerName:         "natstest",
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		JetStream:          true,
		StoreDir:           t.TempDir(),
		NoLog:              true,
		NoSigs:             true,
		Authorization:      opts.Token,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  64 << 20,
	}
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("natstest: server not ready after 10s")
	}
	s := &Server{srv: srv, url: srv.ClientURL(), requests: map[string]int{}}
	t.Cleanup(s.Stop)
	var copts []nats.Option
	if opts.Token != "" {
		copts = append(copts, nats.Token(opts.Token))
	}
	if s.nc, err = nats.Connect(s.url, copts...); err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	// Every JetStream API request is published on $JS.API.<kind>...: a
	// plain subscriber sees them all and counts them.
	if s.watch, err = s.nc.SubscribeSync("$JS.API.>"); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	if err := s.watch.SetPendingLimits(-1, -1); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return s
}

// URL returns the client URL, nats://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// JetStream returns the test's own JetStream client.
func (s *Server) JetStream() jetstream.JetStream { return s.js }

// Stop shuts the server down; the port then refuses connections.
func (s *Server) Stop() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Requests returns how many JetStream API requests of a kind were made
// since the last reset, counting the test's own: kind is the subject after
// $JS.API., for example "CONSUMER.LIST.jobs" or "CONSUMER.INFO.jobs.w".
// A kind ending in "." counts every subject with that prefix.
func (s *Server) Requests(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drain()
	n := 0
	for k, c := range s.requests {
		if k == kind || strings.HasSuffix(kind, ".") && strings.HasPrefix(k, kind) {
			n += c
		}
	}
	return n
}

// ResetRequests sets every request count to zero.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drain()
	clear(s.requests)
}

// drain counts the requests seen so far. The server may answer a request
// before it has copied it to the watching subscription, so drain reads
// until it has seen as many requests as the server counts as handled
// (bounded: a request the server does not count would only cost time).
func (s *Server) drain() {
	jsz, err := s.srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.seen < jsz.API.Total && time.Now().Before(deadline) {
		m, err := s.watch.NextMsg(100 * time.Millisecond)
		if err != nil {
			continue
		}
		kind := strings.TrimPrefix(m.Subject, "$JS.API.")
		if !strings.HasPrefix(kind, "CONSUMER.MSG.NEXT.") {
			s.seen++ // a pull request is no API request to the server
		}
		s.requests[kind]++
	}
}

// Backlog describes one consumer with a known backlog.
type Backlog struct {
	Stream, Consumer string
	// Push makes a push consumer (a deliver subject) instead of a pull
	// consumer.
	Push bool
	// Published messages go to the stream; Unacked of the stream's
	// messages are then delivered to the consumer and left without an
	// ack, so that the consumer has the stream's messages less Unacked
	// pending and Unacked ack-pending.
	Published, Unacked int
}

// Backlog creates the stream (if needed) and the consumer, publishes and
// builds the backlog: num_pending = messages in the stream − Unacked,
// num_ack_pending = Unacked.
func (s *Server) Backlog(t testing.TB, b Backlog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subject := b.Stream + ".jobs"
	if _, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: b.Stream, Subjects: []string{subject}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatalf("natstest: stream %s: %v", b.Stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       b.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Hour, // unacked stays ack-pending for the test
		FilterSubject: subject,
	}
	var sub *nats.Subscription
	if b.Push {
		cfg.DeliverSubject = "deliver." + b.Stream + "." + b.Consumer
		cfg.MaxAckPending = max(b.Unacked, 1)
		var err error
		if sub, err = s.nc.SubscribeSync(cfg.DeliverSubject); err != nil {
			t.Fatalf("natstest: %v", err)
		}
		defer sub.Unsubscribe()
		if _, err := s.js.CreateOrUpdatePushConsumer(ctx, b.Stream, cfg); err != nil {
			t.Fatalf("natstest: push consumer %s: %v", b.Consumer, err)
		}
	} else if _, err := s.js.CreateOrUpdateConsumer(ctx, b.Stream, cfg); err != nil {
		t.Fatalf("natstest: consumer %s: %v", b.Consumer, err)
	}
	for i := range b.Published {
		if _, err := s.js.Publish(ctx, subject, fmt.Appendf(nil, "job %d", i)); err != nil {
			t.Fatalf("natstest: publish: %v", err)
		}
	}
	st, err := s.js.Stream(ctx, b.Stream)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	msgs := int(st.CachedInfo().State.Msgs)
	if b.Push && b.Unacked == 0 && msgs > 0 {
		// MaxAckPending 1 still lets one message through.
		t.Fatalf("natstest: a push consumer on a stream with messages needs Unacked >= 1")
	}
	if b.Unacked == 0 {
		s.WaitBacklog(t, b.Stream, b.Consumer, uint64(msgs), 0)
		return
	}
	if b.Push {
		for range b.Unacked {
			if _, err := sub.NextMsg(10 * time.Second); err != nil {
				t.Fatalf("natstest: push delivery: %v", err)
			}
		}
	} else {
		c, err := s.js.Consumer(ctx, b.Stream, b.Consumer)
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		got := 0
		for got < b.Unacked {
			batch, err := c.Fetch(b.Unacked-got, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatalf("natstest: fetch: %v", err)
			}
			for range batch.Messages() {
				got++ // left unacked on purpose
			}
			if err := batch.Error(); err != nil {
				t.Fatalf("natstest: fetch: %v", err)
			}
		}
	}
	s.WaitBacklog(t, b.Stream, b.Consumer, uint64(msgs-b.Unacked), b.Unacked)
}

// WaitBacklog waits until the consumer's info shows the given figures.
func (s *Server) WaitBacklog(t testing.TB, stream, consumer string, pending uint64, ackPending int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := s.js.Consumer(ctx, stream, consumer)
		if err != nil {
			c2, err2 := s.js.PushConsumer(ctx, stream, consumer)
			if err2 != nil {
				t.Fatalf("natstest: consumer %s/%s: %v", stream, consumer, err)
			}
			ci := c2.CachedInfo()
			if ci.NumPending == pending && ci.NumAckPending == ackPending {
				return
			}
		} else if ci := c.CachedInfo(); ci.NumPending == pending && ci.NumAckPending == ackPending {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("natstest: consumer %s/%s never reached pending %d, ack pending %d", stream, consumer, pending, ackPending)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
