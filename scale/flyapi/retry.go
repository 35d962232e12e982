package flyapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxErrorBody bounds the bytes of an error answer kept in memory.
const maxErrorBody = 1 << 20

// exchange is the outcome of a request's attempts: the last answer, or the
// last network error, and what the attempts tell of it.
type exchange struct {
	resp      *http.Response // nil with err
	err       error
	sent      int
	ambiguous bool   // an attempt may have taken effect
	gaveUp    string // why a retryable answer was not retried
}

// exchange sends req (whose body, read beforehand, is body) until an
// attempt's outcome is final: the one retry loop of this package. The
// caller closes x.resp.Body.
func (t *Transport) exchange(req *http.Request, body []byte, ep rtEndpoint) (x exchange) {
	ctx := req.Context()
	for {
		if err := t.limits.wait(ctx, ep); err != nil {
			if x.sent == 0 {
				return exchange{err: err}
			}
			if x.resp != nil && x.resp.StatusCode == http.StatusTooManyRequests {
				x.gaveUp = err.Error()
			}
			break
		}
		x.resp, x.err = t.base.RoundTrip(rtAttempt(req, body))
		x.sent++
		retry, amb := rtJudge(ctx, ep, x.resp, x.err)
		x.ambiguous = x.ambiguous || amb
		if !retry || x.sent >= t.o.MaxAttempts && !t.untilDeadline(ctx, x.resp) {
			break
		}
		wait, ok, why := t.delay(ctx, x.resp, x.sent)
		if !ok {
			x.gaveUp = why
			break
		}
		if t.o.OnRetry != nil {
			status := 0
			if x.resp != nil {
				status = x.resp.StatusCode
			}
			t.o.OnRetry(req.Method, req.URL.Path, status, wait)
		}
		if x.resp != nil {
			rtBufferBody(x.resp) // kept in case the wait is cut short
		}
		if !rtSleep(ctx, wait) {
			break
		}
	}
	if x.err == nil && x.resp != nil && x.resp.StatusCode < 300 {
		x.gaveUp = ""
	}
	return x
}

// untilDeadline reports whether resp, an answer to be retried, is retried
// past MaxAttempts: a 429 is, while the context has a deadline, since the
// request was not carried out and the wait it asks for is bounded by that
// deadline (see delay).
func (t *Transport) untilDeadline(ctx context.Context, resp *http.Response) bool {
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
func (t *Transport) delay(ctx context.Context, resp *http.Response, sent int) (time.Duration, bool, string) {
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

// rtBufferBody reads resp's body into memory, so that the connection is
// released while the answer is kept.
func rtBufferBody(resp *http.Response) {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
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
