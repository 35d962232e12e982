package flytest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
)

// InMemoryURL is the base URL of a Server made by NewInMemory: an origin
// that only its Transport reaches.
const InMemoryURL = "http://flytest.invalid"

// NewInMemory returns a Server that listens nowhere: Transport serves its
// requests in memory. Under testing/synctest, where a socket would keep the
// bubble's clock from moving, waits on either side (latency, Retry-After,
// rate limits, leases) then take no real time. Close is a no-op.
func NewInMemory(org *Org, opts Options) *Server {
	s := newServer(org, opts)
	s.URL = InMemoryURL
	return s
}

// Transport returns a RoundTripper that serves each request by calling
// s.ServeHTTP in the caller's goroutine, whatever its URL's origin. A
// dropped connection (Fault.Drop) is an error after the request was sent,
// as over a socket.
func (s *Server) Transport() http.RoundTripper { return memTransport{s} }

type memTransport struct{ s *Server }

// errDropped is what a client sees of a Fault that drops the connection.
var errDropped = errors.New("flytest: connection closed without an answer")

func (t memTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	// Over a socket the server reads header keys in canonical form, and
	// fly-go sets its lease nonce header under a key that is not
	// ("fly-machine-lease-nonce"): canonicalise, as the trip would.
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	r.Header = h
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			resp, err = nil, fmt.Errorf("%w: %w", errDropped, io.ErrUnexpectedEOF)
		}
	}()
	t.s.ServeHTTP(rec, r)
	if err := req.Context().Err(); err != nil && rec.Code == http.StatusOK && rec.Body.Len() == 0 {
		return nil, err // the handler gave up on a request the client left
	}
	resp = rec.Result()
	resp.Request = req
	return resp, nil
}
