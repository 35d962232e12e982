package promtest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// SilentServer is a loopback TCP server that accepts connections and never
// answers on them, for tests of a server that hangs. It counts the
// connections.
type SilentServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

// Silent starts a SilentServer, stopped when the test ends.
func Silent(t testing.TB) *SilentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("promtest: listen: %v", err)
	}
	s := &SilentServer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *SilentServer) Addr() string { return s.ln.Addr().String() }

// Accepted returns the number of connections accepted so far.
func (s *SilentServer) Accepted() int { return int(s.accepted.Load()) }
