package query

import (
	"github.com/superfly/fly-autoscaler/query/promtest"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// reply is what the fake Prometheus answers to one query.
type reply struct {
	file   string        // fixture under testdata/query
	body   string        // raw body, when file is empty
	status int           // HTTP status; 0 means 200
	delay  time.Duration // wait before answering
	block  chan struct{} // if set, wait until closed
}

// fakeRequest is one request the fake received.
type fakeRequest struct {
	Method        string
	Query         string
	Authorization string
}

// fakeProm speaks the /api/v1/query part of the Prometheus HTTP API (POST
// form and GET), answering from fixtures by query text.
type fakeProm struct {
	*httptest.Server
	t          *testing.T
	rejectPost bool // answer POST with 405, as a read-only proxy might

	mu       sync.Mutex
	replies  map[string]reply
	requests []fakeRequest
}

func newFakeProm(t *testing.T, replies map[string]reply) *fakeProm {
	t.Helper()
	f := &fakeProm{t: t, replies: replies}
	f.Server = newLocal(t, http.HandlerFunc(f.serve))
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

func (f *fakeProm) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		f.t.Errorf("fake prometheus: unexpected path %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		f.t.Errorf("fake prometheus: unexpected method %s", r.Method)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("fake prometheus: parse form: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	if r.Form.Get("time") == "" {
		f.t.Errorf("fake prometheus: query %q without time", q)
	}
	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{Method: r.Method, Query: q, Authorization: r.Header.Get("Authorization")})
	rep, ok := f.replies[q]
	f.mu.Unlock()
	if r.Method == http.MethodPost && f.rejectPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		f.t.Errorf("fake prometheus: unexpected query %q", q)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"unexpected query"}`))
		return
	}
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.block != nil {
		select {
		case <-rep.block:
		case <-r.Context().Done():
			return
		}
	}
	body := []byte(rep.body)
	if rep.file != "" {
		var err error
		body, err = os.ReadFile(filepath.Join("..", "testdata", "query", rep.file))
		if err != nil {
			f.t.Errorf("fake prometheus: %v", err)
		}
	}
	status := rep.status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *fakeProm) Requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// closedAddr returns an http address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string { return "http://" + promtest.ClosedAddr(t) }
