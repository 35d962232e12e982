// Package promfake is an in-process fake of the one endpoint of the
// Prometheus HTTP API that fly-autoscaler uses: instant queries at
// /api/v1/query, by GET or POST form. It answers from an in-memory set of
// series, one value per app, or from a function that the caller gives it.
//
// The demo ships it as its metrics endpoint, so it imports no testing
// package and nothing of fly-autoscaler (make check-deps). Tests use it
// where a real Prometheus (query/promtest) would be slow or could not give
// the answer wanted: errors, other result types, bodies that are not JSON,
// answers that wait.
//
//	srv, err := promfake.Start(&promfake.Handler{Values: map[string]float64{"my-app": 3}})
//	// point the code under test at srv.URL
//	defer srv.Close()
package promfake

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Path is the API path served.
const Path = "/api/v1/query"

// Handler answers instant queries at Path. Use it by pointer; it is safe
// for concurrent use once serving. Its zero value answers every query with
// an empty vector.
type Handler struct {
	// Values are the series: one per app, its value labelled app="<name>".
	// A query that selects one app (app="name") gets that app's value as
	// one sample without labels, as sum(...) gives, or an empty vector for
	// an app without a value; any other query gets every app's value
	// labelled with app, as sum by (app) (...) gives.
	Values map[string]float64
	// Answer, when set, answers every well-formed query in place of
	// Values. ctx is the request's: an answer that waits should stop when
	// it is done.
	Answer func(ctx context.Context, q Request) Reply
	// RejectPost answers POST with 405 Method Not Allowed, as a read-only
	// proxy might; the Prometheus client then asks again by GET.
	RejectPost bool

	mu       sync.Mutex
	requests []Request
}

// Request is one request the handler received.
type Request struct {
	// Method is the HTTP method, Path the URL path.
	Method, Path string
	// Query is the PromQL expression (the query parameter or form field).
	Query string
	// Time is the time parameter as sent ("" when there is none).
	Time string
	// Authorization is the Authorization header the client sent.
	Authorization string
}

// Reply is one answer: an HTTP status (0 means 200) and a body, sent as
// application/json whatever it holds.
type Reply struct {
	Status int
	Body   string
}

// Error is the Prometheus API's error answer: {"status":"error",...}.
func Error(status int, errType, msg string) Reply {
	return jsonReply(status, map[string]any{"status": "error", "errorType": errType, "error": msg})
}

// Requests returns every request received, in order, whatever its path or
// method.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// Transport returns a RoundTripper that serves each request with h in the
// caller's goroutine, whatever its URL's origin: no socket, so that a
// client under testing/synctest reaches h without real time passing. A
// request its client gave up on while h answered fails with the context's
// error, as over a socket.
func (h *Handler) Transport() http.RoundTripper { return memTransport{h} }

type memTransport struct{ h *Handler }

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	formErr := r.ParseForm()
	q := Request{Method: r.Method, Path: r.URL.Path, Query: r.Form.Get("query"), Time: r.Form.Get("time"),
		Authorization: r.Header.Get("Authorization")}
	h.mu.Lock()
	h.requests = append(h.requests, q)
	h.mu.Unlock()
	write(w, h.reply(r.Context(), q, formErr))
}

func (h *Handler) reply(ctx context.Context, q Request, formErr error) Reply {
	switch {
	case q.Path != Path:
		return Error(http.StatusNotFound, "not_found", "only "+Path+" is served")
	case q.Method != http.MethodGet && q.Method != http.MethodPost:
		return Error(http.StatusMethodNotAllowed, "bad_data", "use GET or POST")
	case formErr != nil:
		return Error(http.StatusBadRequest, "bad_data", formErr.Error())
	case q.Method == http.MethodPost && h.RejectPost:
		return Reply{Status: http.StatusMethodNotAllowed}
	case strings.TrimSpace(q.Query) == "":
		return Error(http.StatusBadRequest, "bad_data", "query: empty")
	}
	ts := float64(time.Now().UnixMilli()) / 1000
	if q.Time != "" {
		f, err := strconv.ParseFloat(q.Time, 64)
		if err != nil {
			tm, err := time.Parse(time.RFC3339Nano, q.Time)
			if err != nil {
				return Error(http.StatusBadRequest, "bad_data", "time: "+err.Error())
			}
			f = float64(tm.UnixMilli()) / 1000
		}
		ts = f
	}
	if h.Answer != nil {
		return h.Answer(ctx, q)
	}
	return h.fromValues(q.Query, ts)
}

// appSelector finds the app in a per-app query such as
// sum(queue_depth{app="my-app"}).
var appSelector = regexp.MustCompile(`app\s*=\s*"([^"]*)"`)

// fromValues answers query from Values, at time ts: see Values.
func (h *Handler) fromValues(query string, ts float64) Reply {
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	result := []sample{}
	add := func(labels map[string]string, v float64) {
		result = append(result, sample{Metric: labels, Value: [2]any{ts, strconv.FormatFloat(v, 'f', -1, 64)}})
	}
	if m := appSelector.FindStringSubmatch(query); m != nil {
		if v, ok := h.Values[m[1]]; ok {
			add(map[string]string{}, v)
		}
	} else {
		names := make([]string, 0, len(h.Values))
		for n := range h.Values {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			add(map[string]string{"app": n}, h.Values[n])
		}
	}
	return jsonReply(http.StatusOK, map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "vector", "result": result},
	})
}

func jsonReply(status int, v any) Reply {
	b, err := json.Marshal(v)
	if err != nil {
		return Reply{Status: http.StatusInternalServerError}
	}
	return Reply{Status: status, Body: string(b)}
}

func write(w http.ResponseWriter, rep Reply) {
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(rep.Body))
}

// Server is a Handler served over HTTP on 127.0.0.1.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port: a Prometheus address.
	URL string
	srv *http.Server
}

// Start serves h on a free port of 127.0.0.1 until Close.
func Start(h *Handler) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("prometheus fake: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &Server{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// Close stops the server and its connections.
func (s *Server) Close() { _ = s.srv.Close() }
