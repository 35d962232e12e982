package prometheus

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
	"github.com/superfly/fly-autoscaler/query/promtest"
)

// reply is what the fake Prometheus answers to one query.
type reply struct {
	file   string        // fixture under testdata/query
	body   string        // raw body, when file is empty
	status int           // HTTP status; 0 means 200
	delay  time.Duration // wait before answering
	block  chan struct{} // if set, wait until closed
}

// fakeProm is query/promfake answering from fixtures by query text. A
// request on another path or by another method than GET or POST, one
// without a time, or an unexpected query fails the test.
type fakeProm struct {
	*promfake.Handler
	URL string
}

func newFakeProm(t *testing.T, replies map[string]reply) *fakeProm {
	t.Helper()
	h := &promfake.Handler{Answer: func(ctx context.Context, q promfake.Request) promfake.Reply {
		rep, ok := replies[q.Query]
		if !ok {
			t.Errorf("fake prometheus: unexpected query %q", q.Query)
			return promfake.Error(http.StatusBadRequest, "bad_data", "unexpected query")
		}
		if rep.delay > 0 {
			select {
			case <-time.After(rep.delay):
			case <-ctx.Done():
				return promfake.Reply{}
			}
		}
		if rep.block != nil {
			select {
			case <-rep.block:
			case <-ctx.Done():
				return promfake.Reply{}
			}
		}
		body := rep.body
		if rep.file != "" {
			b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "query", rep.file))
			if err != nil {
				t.Errorf("fake prometheus: %v", err)
			}
			body = string(b)
		}
		return promfake.Reply{Status: rep.status, Body: body}
	}}
	f := &fakeProm{Handler: h, URL: newLocal(t, h).URL}
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

// newLocal starts an httptest.Server on 127.0.0.1, closed when the test ends.
func newLocal(t *testing.T, h http.Handler) *httptest.Server {
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

// closedAddr returns an http address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string { return "http://" + promtest.ClosedAddr(t) }
