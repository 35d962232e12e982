package promtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/promfake"
)

// Reply is what the fake Prometheus answers to one query.
type Reply struct {
	File   string        // fixture under the fake's folder
	Body   string        // raw body, when File is empty
	Status int           // HTTP status; 0 means 200
	Delay  time.Duration // wait before answering
	Block  chan struct{} // if set, wait until closed
}

// Fake is query/promfake answering from fixtures by query text, on
// 127.0.0.1. A request on another path or by another method than GET or
// POST, one without a time, or an unexpected query fails the test.
type Fake struct {
	*promfake.Handler
	URL string
}

// NewFake starts a Fake that answers each query of replies, reading
// fixtures from dir; it stops when the test ends.
func NewFake(t *testing.T, dir string, replies map[string]Reply) *Fake {
	t.Helper()
	h := &promfake.Handler{Answer: func(ctx context.Context, q promfake.Request) promfake.Reply {
		rep, ok := replies[q.Query]
		if !ok {
			t.Errorf("fake prometheus: unexpected query %q", q.Query)
			return promfake.Error(http.StatusBadRequest, "bad_data", "unexpected query")
		}
		if rep.Delay > 0 {
			select {
			case <-time.After(rep.Delay):
			case <-ctx.Done():
				return promfake.Reply{}
			}
		}
		if rep.Block != nil {
			select {
			case <-rep.Block:
			case <-ctx.Done():
				return promfake.Reply{}
			}
		}
		body := rep.Body
		if rep.File != "" {
			b, err := os.ReadFile(filepath.Join(dir, rep.File))
			if err != nil {
				t.Errorf("fake prometheus: %v", err)
			}
			body = string(b)
		}
		return promfake.Reply{Status: rep.Status, Body: body}
	}}
	f := &Fake{Handler: h, URL: NewLocal(t, h).URL}
	t.Cleanup(func() {
		for _, r := range h.Requests() {
			switch {
			case r.Path != promfake.Path:
				t.Errorf("fake prometheus: unexpected path %s", r.Path)
			case r.Method != http.MethodPost && r.Method != http.MethodGet:
				t.Errorf("fake prometheus: unexpected method %s", r.Method)
			case r.Time == "":
				t.Errorf("fake prometheus: query %q without time", r.Query)
			}
		}
	})
	return f
}

// NewLocal starts an httptest.Server on 127.0.0.1, closed when the test ends.
func NewLocal(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
