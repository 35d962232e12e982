package flyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Headers the transport sets on the responses it changes.
const (
	// uncertainHeader ("1") marks a failed answer to a request that may
	// nevertheless have taken effect (see the package documentation).
	uncertainHeader = "Fly-Autoscaler-Uncertain"
	// originalStatusHeader carries the status of a 502 or 503 answer that the
	// transport passed on as 500.
	originalStatusHeader = "Fly-Autoscaler-Original-Status"
)

// errUncertain is matched (errors.Is) by the transport's network errors for
// requests that may have reached the API and taken effect: the connection
// failed or the deadline passed after the request could have been sent.
var errUncertain = errors.New("uncertain: the request may have taken effect")

// Limit is a token bucket: Rate requests per second, bursts of Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Limits are the client-side Machines API rate limits, applied per action
// and identifier.
type Limits struct {
	// Action limits every Machines API action but get machine: list and
	// create per app, the others (start, stop, suspend, destroy, update,
	// lease, metadata, ...) per machine.
	Action Limit
	// Get limits get machine, per machine.
	Get Limit
}

// defaultLimits returns limits that keep a client under the Machines API's
// published rate limits (https://fly.io/docs/machines/api/working-with-machines-api/,
// "Rate Limits"): per action and identifier 1 request/s with a burst of 3,
// except get machine at 5/s with a burst of 10; list and create are counted
// per app, the other actions per machine.
//
// The rates are Fly's; the bursts are one second's worth of requests lower
// (2 and 5). Fly counts requests when they arrive, this transport when it
// sends them, and with equal rates the spare second of tokens absorbs up to
// a second of difference in network delay between two requests, where a
// client with Fly's own bursts would be refused a request that overtook
// one sent before it.
func defaultLimits() Limits {
	return Limits{Action: Limit{Rate: 1, Burst: 2}, Get: Limit{Rate: 5, Burst: 5}}
}

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

// NewTransport returns a RoundTripper for the Fly Machines and GraphQL APIs
// that sends each request through base (http.DefaultTransport if nil),
// retrying only where a retry cannot do something twice, and, with
// o.RateLimit, holding requests back to stay within Fly's rate limits. It is
// meant as Options.Transport, under fly-go's own transports. The package
// documentation tells how it retries, judges uncertainty and limits rates.
func NewTransport(base http.RoundTripper, o TransportOptions) http.RoundTripper {
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
	t := &retryTransport{base: base, o: o}
	if o.RateLimit {
		l := defaultLimits()
		if o.Limits != nil {
			l = *o.Limits
		}
		t.limits = newRTLimiters(l)
	}
	return t
}

type retryTransport struct {
	base   http.RoundTripper
	o      TransportOptions
	limits *rtLimiters // nil: no rate limiting
}

// maxErrorBody bounds the bytes of an error answer kept in memory.
const maxErrorBody = 1 << 20

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := rtReadBody(req)
	if err != nil {
		return nil, err
	}
	ep := rtClassify(req.Method, req.URL.Path, body)
	ctx := req.Context()

	var (
		resp      *http.Response
		rerr      error
		ambiguous bool // an attempt may have taken effect
		sent      int
		gaveUp    string // why a retryable answer was not retried
	)
	for {
		if err := t.limits.wait(ctx, ep); err != nil {
			if sent == 0 {
				return nil, &rtError{err: err}
			}
			if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
				gaveUp = err.Error()
			}
			break
		}
		resp, rerr = t.base.RoundTrip(rtAttempt(req, body))
		sent++
		retry, amb := rtJudge(ctx, ep, resp, rerr)
		ambiguous = ambiguous || amb
		if !retry || sent >= t.o.MaxAttempts && !t.untilDeadline(ctx, resp) {
			break
		}
		wait, ok, why := t.delay(ctx, resp, sent)
		if !ok {
			gaveUp = why
			break
		}
		if t.o.OnRetry != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.o.OnRetry(req.Method, req.URL.Path, status, wait)
		}
		if resp != nil {
			rtBufferBody(resp) // kept in case the wait is cut short
		}
		if !rtSleep(ctx, wait) {
			break
		}
	}
	if rerr == nil && resp != nil && resp.StatusCode < 300 {
		gaveUp = ""
	}
	return rtFinish(ep, resp, rerr, ambiguous, sent, gaveUp)
}

// untilDeadline reports whether resp, an answer to be retried, is retried
// past MaxAttempts: a 429 is, while the context has a deadline, since the
// request was not carried out and the wait it asks for is bounded by that
// deadline (see delay).
func (t *retryTransport) untilDeadline(ctx context.Context, resp *http.Response) bool {
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		return false
	}
	_, ok := ctx.Deadline()
	return ok
}

// rtJudge tells whether an attempt's outcome may be retried, and whether the
// attempt may have taken effect although it failed.
func rtJudge(ctx context.Context, ep rtEndpoint, resp *http.Response, err error) (retry, ambiguous bool) {
	if err != nil {
		// A request that certainly never left (no connection could be
		// made) did nothing, so any request may be sent again.
		notSent := rtNotSent(err)
		return (ep.retry || notSent) && ctx.Err() == nil, !notSent
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		return true, false
	case s >= 500:
		retryable := s == 500 || s == 502 || s == 503 || s == 504
		return ep.retry && retryable, true
	}
	return false, false
}

// delay returns the wait before the next attempt, or false when there is
// to be none: the wait its Retry-After asks for would reach the context's
// deadline (or, without one, is above MaxRetryAfter), or a backoff would.
// why then says so, for an answer with a Retry-After or a 429.
// A Retry-After is waited out with up to a tenth more (at most a second)
// of jitter, so that the clients it held back do not all come back at
// once; the jitter never takes the wait to the deadline.
func (t *retryTransport) delay(ctx context.Context, resp *http.Response, sent int) (time.Duration, bool, string) {
	now := time.Now()
	dl, hasDeadline := ctx.Deadline()
	left := dl.Sub(now)
	ra, ok := time.Duration(0), false
	if resp != nil {
		ra, ok = rtRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	if ok {
		switch {
		case hasDeadline && ra >= left:
			return 0, false, fmt.Sprintf("Retry-After %v, more than the %v left before the deadline", ra, rtRound(left))
		case !hasDeadline && ra > t.o.MaxRetryAfter:
			return 0, false, fmt.Sprintf("Retry-After %v, more than the %v this client waits", ra, t.o.MaxRetryAfter)
		}
		wait := ra + rand.N(min(ra/10, time.Second)+1)
		if hasDeadline && wait >= left {
			wait = ra
		}
		return wait, true, ""
	}
	d := t.o.BaseDelay
	for i := 1; i < sent && d < t.o.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, t.o.MaxDelay)
	wait := d/2 + rand.N(d/2+1)
	if hasDeadline && wait >= left {
		why := ""
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			why = fmt.Sprintf("a retry after %v would pass the deadline, %v away", rtRound(wait), rtRound(left))
		}
		return 0, false, why
	}
	return wait, true, ""
}

// rtRound rounds a duration for a message: to 100 ms, to a second from
// 10 s on.
func rtRound(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// rtFinish turns the last attempt's outcome into the transport's answer.
func rtFinish(ep rtEndpoint, resp *http.Response, err error, ambiguous bool, sent int, gaveUp string) (*http.Response, error) {
	uncertain := ambiguous && !ep.read
	if err != nil {
		return nil, &rtError{err: err, attempts: sent, uncertain: uncertain}
	}
	if gaveUp != "" && ep.graphql {
		// The GraphQL client reports only a status code: the reason the
		// answer was not retried goes up in an error of its own.
		_ = resp.Body.Close()
		s := resp.StatusCode
		return nil, &rtError{err: fmt.Errorf("%d %s: not retried: %s", s, strings.ToLower(http.StatusText(s)), gaveUp), attempts: sent}
	}
	s := resp.StatusCode
	switch {
	case s < 300:
		return resp, nil
	case s == http.StatusNotFound && ambiguous && ep.goneOK:
		rtReplaceBody(resp, []byte(`{"ok":true}`+"\n"))
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		return resp, nil
	case ep.graphql && !uncertain && (s == http.StatusBadGateway || s == http.StatusServiceUnavailable):
		// The GraphQL client reports only a status code: passed on as a
		// 500, a 502 would be reported as one. An error without Temporary
		// keeps rehttp from resending the request.
		_ = resp.Body.Close()
		return nil, &rtError{err: fmt.Errorf("%d %s", s, strings.ToLower(http.StatusText(s))), attempts: sent}
	case uncertain || s >= 500 || gaveUp != "":
		rtAnnotate(resp, uncertain, gaveUp)
	}
	return resp, nil
}

// rtAnnotate passes a 502 or 503 on as a 500, and gives a 5xx or uncertain
// answer the transport's verdict, "uncertain": true or false in its JSON
// body (where fly-go's FlapsError keeps it), noting an uncertain one in its
// headers and message too. gaveUp, when set, is noted in the message: why
// the answer was not retried.
func rtAnnotate(resp *http.Response, uncertain bool, gaveUp string) {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	orig := resp.StatusCode
	var notes []string
	if orig == http.StatusBadGateway || orig == http.StatusServiceUnavailable {
		resp.StatusCode, resp.Status = http.StatusInternalServerError, "500 Internal Server Error"
		resp.Header.Set(originalStatusHeader, strconv.Itoa(orig))
		notes = append(notes, "HTTP "+strconv.Itoa(orig))
	}
	if uncertain {
		resp.Header.Set(uncertainHeader, "1")
		notes = append(notes, errUncertain.Error())
	}
	if gaveUp != "" {
		notes = append(notes, "not retried: "+gaveUp)
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, "; ") + ")"
	}

	obj := map[string]json.RawMessage{}
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = http.StatusText(orig)
		}
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		obj = map[string]json.RawMessage{"error": rtJSONString(msg)}
	}
	annotated := false
	for _, k := range []string{"error", "message"} {
		var s string
		if json.Unmarshal(obj[k], &s) == nil && s != "" {
			obj[k] = rtJSONString(s + note)
			annotated = true
		}
	}
	if !annotated {
		obj["error"] = rtJSONString(http.StatusText(orig) + note)
	}
	obj["uncertain"] = json.RawMessage(strconv.FormatBool(uncertain))
	out, err := json.Marshal(obj)
	if err != nil { // cannot happen: every value is valid JSON
		out = data
	}
	resp.Header.Set("Content-Type", "application/json")
	rtReplaceBody(resp, out)
}

func rtJSONString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// rtReplaceBody closes resp's body and gives it data instead.
func rtReplaceBody(resp *http.Response, data []byte) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Del("Content-Length")
	resp.Uncompressed = false
}

// rtBufferBody reads resp's body into memory so that the connection is
// released while the answer is kept.
func rtBufferBody(resp *http.Response) {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	rtReplaceBody(resp, data)
}

// rtNotSent reports whether a network error certainly came before the
// request was sent: no connection could be made.
func rtNotSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// rtReadBody reads and closes req's body, to send it with every attempt.
func rtReadBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

// rtAttempt returns the request for one attempt, with a fresh body.
func rtAttempt(req *http.Request, body []byte) *http.Request {
	if body == nil {
		return req
	}
	r := req.WithContext(req.Context()) // a shallow copy: req is not modified
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	return r
}

func rtSleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rtRetryAfter parses a Retry-After header: whole seconds or an HTTP date.
func rtRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 1<<20)) * time.Second, true
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// rtError is a network error as the transport returns it: without the
// Temporary method rehttp retries on, and matching errUncertain when the
// request may have taken effect.
type rtError struct {
	err       error
	attempts  int
	uncertain bool
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
	if e.uncertain {
		return []error{e.err, errUncertain}
	}
	return []error{e.err}
}

// Timeout keeps net/http's and url.Error's view of timeouts.
func (e *rtError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.err, context.DeadlineExceeded) || errors.As(e.err, &t) && t.Timeout()
}

// rtEndpoint is what a request addresses, as far as retries and rate limits
// care.
type rtEndpoint struct {
	action       string // "list", "create", "get", "start", ...; "" if not a Machines API machine path
	app, machine string
	read         bool // changes nothing
	retry        bool // safe to send again after a 5xx or a network error
	goneOK       bool // a 404 after an ambiguous attempt means done
	graphql      bool // the GraphQL API
}

func rtClassify(method, path string, body []byte) rtEndpoint {
	read := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
	if strings.HasSuffix(path, "/graphql") {
		read = read || method == http.MethodPost && !rtGraphQLChanges(body)
		return rtEndpoint{read: read, retry: read, graphql: true}
	}
	ep := rtEndpoint{read: read, retry: read}
	i := strings.Index(path, "/v1/apps/")
	if i < 0 {
		return ep
	}
	parts := strings.Split(strings.Trim(path[i+len("/v1/apps/"):], "/"), "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] != "machines" {
		return ep
	}
	ep.app = parts[0]
	if len(parts) == 2 {
		switch method {
		case http.MethodGet:
			ep.action = "list"
		case http.MethodPost:
			ep.action = "create"
		default:
			ep.action = "apps " + method
		}
		return ep
	}
	ep.machine = parts[2]
	sub := "machine"
	if len(parts) > 3 {
		sub = parts[3]
	}
	switch {
	case sub == "machine" && method == http.MethodGet:
		ep.action = "get"
	case sub == "machine" && method == http.MethodPost:
		ep.action = "update"
	case sub == "machine" && method == http.MethodDelete:
		ep.action = "destroy"
		ep.retry, ep.goneOK = true, true
	case (sub == "start" || sub == "stop" || sub == "suspend") && method == http.MethodPost:
		ep.action = sub
		ep.retry = true
	case sub == "lease" && method == http.MethodPost:
		ep.action = "lease" // acquire and refresh share one limit
		// A lease is exclusive: a second acquire after one that took
		// effect is refused (409), it cannot do anything twice.
		ep.retry = true
	case sub == "lease" && method == http.MethodDelete:
		ep.action = "lease release"
		ep.retry, ep.goneOK = true, true
	default:
		ep.action = sub + " " + method
	}
	return ep
}

// rtGraphQLWord finds the keywords of GraphQL operations that change
// something.
var rtGraphQLWord = regexp.MustCompile(`(^|[^_0-9A-Za-z])(mutation|subscription)([^_0-9A-Za-z]|$)`)

// rtGraphQLChanges reports whether a GraphQL request body may change
// something: it holds a mutation (or a subscription), or cannot be read.
// The word anywhere in the document counts, which errs on the side of not
// retrying.
func rtGraphQLChanges(body []byte) bool {
	var b struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(body, &b) != nil || b.Query == "" {
		return true
	}
	return rtGraphQLWord.MatchString(b.Query)
}

// rtLimiters holds one token bucket per action and identifier. A bucket is
// dropped once it has refilled, since it is then the same as a new one;
// tokens are taken under the lock, so none is dropped while in use.
type rtLimiters struct {
	limits Limits
	now    func() time.Time

	mu      sync.Mutex
	m       map[string]*rate.Limiter
	sweepAt int // sweep when the map reaches this size
}

const rtMinSweep = 256

func newRTLimiters(l Limits) *rtLimiters {
	return &rtLimiters{limits: l, now: time.Now, m: map[string]*rate.Limiter{}, sweepAt: rtMinSweep}
}

// key returns ep's limiter key and limit; false when ep is not limited.
func (s *rtLimiters) key(ep rtEndpoint) (string, Limit, bool) {
	if ep.action == "" {
		return "", Limit{}, false
	}
	l := s.limits.Action
	if ep.action == "get" {
		l = s.limits.Get
	}
	if l.Rate <= 0 {
		return "", Limit{}, false
	}
	if ep.machine == "" {
		return ep.action + " " + ep.app, l, true
	}
	return ep.action + " " + ep.app + "/" + ep.machine, l, true
}

// wait takes a token for ep, waiting for it unless that would pass ctx's
// deadline (rate.Limiter.Wait, with the token taken under s.mu).
func (s *rtLimiters) wait(ctx context.Context, ep rtEndpoint) error {
	if err := ctx.Err(); err != nil || s == nil {
		return err
	}
	key, l, ok := s.key(ep)
	if !ok {
		return nil
	}
	now, r := s.reserve(key, l)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && !now.Add(d).Before(dl) {
		r.CancelAt(now)
		return fmt.Errorf("client rate limit of %s: a wait of %v would pass the deadline: %w", key, d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	if !rtSleep(ctx, d) {
		r.Cancel()
		return ctx.Err()
	}
	return nil
}

func (s *rtLimiters) reserve(key string, l Limit) (time.Time, *rate.Reservation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	lim := s.m[key]
	if lim == nil {
		if len(s.m) >= s.sweepAt {
			s.sweep(now)
		}
		lim = rate.NewLimiter(rate.Limit(l.Rate), max(l.Burst, 1))
		s.m[key] = lim
	}
	return now, lim.ReserveN(now, 1)
}

// sweep drops the limiters that have refilled. Sweeping when the map has
// doubled since the last sweep keeps the cost per request constant.
func (s *rtLimiters) sweep(now time.Time) {
	for k, lim := range s.m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(s.m, k)
		}
	}
	s.sweepAt = max(rtMinSweep, 2*len(s.m))
}

// size returns the number of limiters held.
func (s *rtLimiters) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
