package flyapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// errUncertain is matched (errors.Is) by the errors of requests that may
// have taken effect although they failed (see the package documentation).
var errUncertain = errors.New("uncertain: the request may have taken effect")

// TransportOptions configure NewTransport. The zero value retries with the
// defaults below and does not rate-limit.
type TransportOptions struct {
	// MaxAttempts bounds the attempts at one request, the first included
	// (default 4; 1 turns retries off), except those after a 429 when the
	// request's context has a deadline: a 429 is retried, after the wait
	// it asks for, until that deadline.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff before a retry without
	// Retry-After: the n-th retry waits between half and all of
	// min(MaxDelay, BaseDelay·2^(n-1)) (defaults 250ms and 4s).
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After honoured for a request
	// without a deadline (default 30s): an answer asking for a longer wait
	// is returned at once, saying so. With a deadline, the time left is the
	// bound.
	MaxRetryAfter time.Duration
	// RateLimit turns client-side rate limiting on, with Limits or, when
	// Limits is nil, defaultLimits. A Limit with Rate <= 0 is no limit.
	RateLimit bool
	Limits    *Limits
	// OnRetry, when set, is called before each wait for a retry with the
	// request's method and URL path (never its query or headers), the
	// status that is retried (0 for a network error) and the wait. It is
	// called from many goroutines at once.
	OnRetry func(method, path string, status int, wait time.Duration)
}

// Transport is the one place where requests to the Fly APIs are retried
// and rate-limited (see the package documentation). Build it with
// NewTransport and give it to NewClients as Options.Transport: the Machines
// client sends every request through its attempts directly and reads their
// outcome, and fly-go's GraphQL client sends through it as a RoundTripper.
type Transport struct {
	base   http.RoundTripper
	o      TransportOptions
	limits *rtLimiters // nil: no rate limiting
}

// NewTransport returns a Transport that sends each request through base
// (http.DefaultTransport if nil), retrying only where a retry cannot do
// something twice, and, with o.RateLimit, holding requests back to stay
// within Fly's rate limits.
func NewTransport(base http.RoundTripper, o TransportOptions) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 250 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 4 * time.Second
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	t := &Transport{base: base, o: o}
	if o.RateLimit {
		l := defaultLimits()
		if o.Limits != nil {
			l = *o.Limits
		}
		t.limits = newRTLimiters(l)
	}
	return t
}

// RoundTrip sends req through the transport's attempts, for a client that
// reads only HTTP answers (fly-go's GraphQL client). An answer that was to
// be retried but was not (a 502 or 503 after the last attempt, or one whose
// wait would pass the deadline) comes back as an error saying so, as does a
// network error: fly-go wraps its clients in rehttp, which resends any
// request after a 502, a 503 or a temporary network error, and an error
// without a Temporary method keeps this transport the only one to retry.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := rtReadBody(req)
	if err != nil {
		return nil, err
	}
	ep := rtClassify(req.Method, req.URL.Path, body)
	x := t.exchange(req, body, ep)
	uncertain := x.ambiguous && !ep.read
	if x.err != nil {
		return nil, &rtError{err: x.err, attempts: x.sent, uncertain: uncertain, opaque: true}
	}
	s := x.resp.StatusCode
	var why []string
	switch {
	case s < 300:
		return x.resp, nil
	case x.gaveUp != "":
		why = append(why, "not retried: "+x.gaveUp)
	case s == http.StatusBadGateway || s == http.StatusServiceUnavailable:
	default:
		return x.resp, nil
	}
	_ = x.resp.Body.Close()
	msg := fmt.Sprintf("%d %s", s, strings.ToLower(http.StatusText(s)))
	if len(why) > 0 {
		msg += ": " + strings.Join(why, "; ")
	}
	return nil, &rtError{err: errors.New(msg), attempts: x.sent, uncertain: uncertain}
}

// rtError is a network error, or an answer turned into one, as RoundTrip
// returns it: without the Temporary method rehttp retries on, and matching
// errUncertain when the request may have taken effect.
type rtError struct {
	err       error
	attempts  int
	uncertain bool
	// opaque hides the causes of err but a context's end from errors.Is,
	// so that fly-go's GraphQL client does not resend a query after a
	// connection reset that this transport has already retried.
	opaque bool
}

func (e *rtError) Error() string {
	s := e.err.Error()
	if e.attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", e.attempts)
	}
	if e.uncertain {
		s += " (" + errUncertain.Error() + ")"
	}
	return s
}

func (e *rtError) Unwrap() []error {
	var out []error
	switch {
	case !e.opaque:
		out = append(out, e.err)
	case errors.Is(e.err, context.DeadlineExceeded):
		out = append(out, context.DeadlineExceeded)
	case errors.Is(e.err, context.Canceled):
		out = append(out, context.Canceled)
	}
	if e.uncertain {
		out = append(out, errUncertain)
	}
	return out
}

// Timeout keeps net/http's and url.Error's view of timeouts.
func (e *rtError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.err, context.DeadlineExceeded) || errors.As(e.err, &t) && t.Timeout()
}
