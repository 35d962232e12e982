package flyapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const trToken = "FlyV1 fm2_transport-test"

// trEnv starts flytest with apps "tr-001".."tr-<apps>", each with one
// started and one stopped machine, and returns the server and the real
// clients sending through a NewTransport over base.
// With to nil the clients send through http.DefaultTransport alone.
func trEnv(t *testing.T, apps int, so flytest.Options, base http.RoundTripper, to *TransportOptions) (*flytest.Server, scale.Apps, scale.Machines) {
	t.Helper()
	so.Token = trToken
	srv := flytest.New(trOrg(apps), so)
	t.Cleanup(srv.Close)
	var rt http.RoundTripper
	if to != nil {
		rt = NewTransport(base, *to)
	}
	a, m, err := NewClients(context.Background(), Options{Token: trToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return srv, a, m
}

func trOrg(apps int) *flytest.Org {
	return &flytest.Org{Slug: "tr-org", Apps: []flytest.AppSpec{{
		Name: "tr-%03d", Count: apps,
		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped"}},
	}}}
}

// trMemEnv is trEnv over a flytest served in memory, for the tests that run
// under testing/synctest: the waits they are about (Retry-After, rate
// limits, deadlines) then take no real time. Call it inside the bubble.
func trMemEnv(t *testing.T, apps int, so flytest.Options, to TransportOptions) (*flytest.Server, scale.Machines) {
	t.Helper()
	so.Token = trToken
	srv := flytest.NewInMemory(trOrg(apps), so)
	_, m, err := NewClients(context.Background(), Options{Token: trToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL,
		Transport: NewTransport(srv.Transport(), to)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, m
}

// trCalls returns the calls of op, in the order they were answered.
func trCalls(srv *flytest.Server, op string) []flytest.Call {
	var out []flytest.Call
	for _, c := range srv.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func trStatuses(calls []flytest.Call) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = c.Status
	}
	return out
}

func trMachineID(t *testing.T, srv *flytest.Server, app, state string) string {
	t.Helper()
	for _, m := range srv.Machines(app) {
		if m.State == state {
			return m.ID
		}
	}
	t.Fatalf("%s has no %s machine", app, state)
	return ""
}

func trLaunchInput() fly.LaunchMachineInput {
	return fly.LaunchMachineInput{Region: "ord", Config: &fly.MachineConfig{Image: "registry.fly.io/tr-001:deployment-1"}}
}

// trRoundTripper is a RoundTripper made of a function.
type trRoundTripper func(*http.Request) (*http.Response, error)

func (f trRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// trLoseAnswer sends requests on, and replaces the answer to the first one
// that match with what lost returns, as when a proxy or connection fails
// after Fly has done the work.
func trLoseAnswer(match func(*http.Request) bool, lost func(*http.Request) (*http.Response, error)) http.RoundTripper {
	var fired atomic.Bool
	return trRoundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || !match(r) || fired.Swap(true) {
			return resp, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return lost(r)
	})
}

func trAnswer(status int, body string) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       r,
		}, nil
	}
}

// trTempError is a network error rehttp would retry.
type trTempError struct{}

func (trTempError) Error() string   { return "read: connection reset by peer" }
func (trTempError) Temporary() bool { return true }
func (trTempError) Timeout() bool   { return false }

func TestTransport429RetryAfterAbsorbed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var retries []string
		srv, m := trMemEnv(t, 1, flytest.Options{}, TransportOptions{
			RateLimit: true,
			OnRetry: func(method, path string, status int, wait time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				retries = append(retries, fmt.Sprintf("%s %s %d %v", method, path, status, wait))
			},
		})
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 2})

		list, err := m.List(context.Background(), "tr-001", "")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(list) != 2 {
			t.Errorf("listed %d machines, want 2", len(list))
		}
		calls := trCalls(srv, flytest.OpList)
		if got, want := fmt.Sprint(trStatuses(calls)), "[429 429 200]"; got != want {
			t.Fatalf("list statuses %s, want %s", got, want)
		}
		// Each retry arrives at least Retry-After after the refused attempt
		// arrived (it was answered after it arrived); the upper bound only
		// catches a wait of a different order.
		for i := 1; i < len(calls); i++ {
			gap := calls[i].Time.Sub(calls[i-1].Time)
			if gap < 990*time.Millisecond || gap > 5*time.Second {
				t.Errorf("attempt %d came %v after attempt %d, want Retry-After's 1s", i+1, gap, i)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		// Retry-After's 1s, with up to a tenth more of jitter.
		if len(retries) != 2 {
			t.Fatalf("OnRetry saw %q, want two retries", retries)
		}
		for _, r := range retries {
			var wait time.Duration
			w, ok := strings.CutPrefix(r, "GET /v1/apps/tr-001/machines 429 ")
			if ok {
				wait, _ = time.ParseDuration(w)
			}
			if wait < time.Second || wait > 1100*time.Millisecond {
				t.Errorf("OnRetry saw %q, want a GET of the list, 429, waiting 1s to 1.1s", r)
			}
		}
	})
}

func TestTransport429AttemptsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := trMemEnv(t, 1, flytest.Options{}, TransportOptions{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond})
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusTooManyRequests})

		_, err := m.List(context.Background(), "tr-001", "")
		if statusOf(err) != http.StatusTooManyRequests {
			t.Fatalf("list: %v, want a 429", err)
		}
		if isUncertain(err) {
			t.Errorf("a list is never uncertain: %v", err)
		}
		if n := len(trCalls(srv, flytest.OpList)); n != 3 {
			t.Errorf("%d list attempts, want MaxAttempts 3", n)
		}
	})
}

func TestTransportDeadlineShorterThanRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := trMemEnv(t, 1, flytest.Options{}, TransportOptions{})
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second})

		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		_, err := m.List(ctx, "tr-001", "")
		if statusOf(err) != http.StatusTooManyRequests {
			t.Fatalf("list: %v, want the 429", err)
		}
		if ctx.Err() != nil {
			t.Errorf("list returned after the deadline; it should give up as soon as Retry-After outlasts it")
		}
		if n := len(trCalls(srv, flytest.OpList)); n != 1 {
			t.Errorf("%d list attempts, want 1", n)
		}
		if want := "(not retried: Retry-After 5s, more than the 1.5s left before the deadline)"; !strings.Contains(err.Error(), want) {
			t.Errorf("list: %v, want it to say %q", err, want)
		}
	})
}

func TestTransport429RetriedUntilTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Six refusals: more than MaxAttempts allows other answers.
		srv, m := trMemEnv(t, 1, flytest.Options{}, TransportOptions{})
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 6})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := m.List(ctx, "tr-001", ""); err != nil {
			t.Fatalf("list: %v, want it retried until it succeeds", err)
		}
		if got, want := fmt.Sprint(trStatuses(trCalls(srv, flytest.OpList))), "[429 429 429 429 429 429 200]"; got != want {
			t.Errorf("list statuses %s, want %s", got, want)
		}
		if d := time.Since(start); d < 6*time.Second || d > 6600*time.Millisecond {
			t.Errorf("six Retry-After 1s took %v, want 6s to 6.6s (with jitter)", d)
		}

		// Without a deadline, MaxAttempts bounds them, and a Retry-After
		// above MaxRetryAfter is not waited for, saying so.
		srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusTooManyRequests, RetryAfter: time.Minute, Times: 1})
		_, err := m.List(context.Background(), "tr-001", "")
		if want := "429: Too Many Requests (not retried: Retry-After 1m0s, more than the 30s this client waits)"; err == nil || err.Error() != want {
			t.Errorf("list: %v, want %q", err, want)
		}
	})
}

func TestTransportRateLimitWaitPastDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, m := trMemEnv(t, 1, flytest.Options{}, TransportOptions{RateLimit: true})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		for i := range 2 { // the burst
			if _, err := m.List(ctx, "tr-001", ""); err != nil {
				t.Fatalf("list %d: %v", i+1, err)
			}
		}
		_, err := m.List(ctx, "tr-001", "")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "client rate limit") {
			t.Fatalf("third list: %v, want the client rate limit's deadline error", err)
		}
		if ctx.Err() != nil {
			t.Errorf("the third list waited for the deadline instead of failing at once")
		}
		if n := len(trCalls(srv, flytest.OpList)); n != 2 {
			t.Errorf("%d lists reached the server, want 2", n)
		}
	})
}

func TestTransportStartRetriedAfter500(t *testing.T) {
	srv, _, m := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{BaseDelay: 10 * time.Millisecond})
	id := trMachineID(t, srv, "tr-001", "stopped")
	srv.Inject(flytest.Fault{Op: flytest.OpStart, Status: http.StatusInternalServerError, Times: 1})

	if _, err := m.Start(context.Background(), "tr-001", id, ""); err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := fmt.Sprint(trStatuses(trCalls(srv, flytest.OpStart))); got != "[500 200]" {
		t.Errorf("start statuses %s, want [500 200]", got)
	}
	if n := srv.Count("tr-001", "started"); n != 2 {
		t.Errorf("%d started machines, want 2", n)
	}
}

// TestTransportCreateSentOnce: a create answered 5xx may have made a
// machine, so it is never sent again, and the error says so.
func TestTransportCreateSentOnce(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv, _, m := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{RateLimit: true, BaseDelay: 5 * time.Millisecond})
			srv.Inject(flytest.Fault{Op: flytest.OpLaunch, Status: status})

			_, err := m.Launch(context.Background(), "tr-001", trLaunchInput())
			if err == nil {
				t.Fatal("launch succeeded, want an error")
			}
			if n := len(trCalls(srv, flytest.OpLaunch)); n != 1 {
				t.Errorf("%d launch calls reached the server, want exactly 1", n)
			}
			if !isUncertain(err) {
				t.Errorf("isUncertain(%v) = false", err)
			}
			if got := statusOf(err); got != status {
				t.Errorf("status %d, want %d", got, status)
			}
			if msg := err.Error(); !strings.Contains(msg, "uncertain") || !strings.Contains(msg, http.StatusText(status)) {
				t.Errorf("error %q should name the original answer and the uncertainty", msg)
			}
			if strings.Contains(err.Error(), "fm2_") {
				t.Errorf("error %q holds the token", err)
			}
		})
	}
}

// TestTransportPostWithoutTransport: without a Transport from NewTransport
// the Machines client retries nothing (fly-go's flaps client would send a
// POST answered 502 four times, through rehttp), and still judges a 5xx
// uncertain.
func TestTransportPostWithoutTransport(t *testing.T) {
	srv, _, m := trEnv(t, 1, flytest.Options{}, nil, nil)
	id := trMachineID(t, srv, "tr-001", "stopped")
	srv.Inject(flytest.Fault{Op: flytest.OpStart, Status: http.StatusBadGateway})
	_, err := m.Start(context.Background(), "tr-001", id, "")
	if statusOf(err) != http.StatusBadGateway || !isUncertain(err) {
		t.Fatalf("start: %v, want an uncertain 502", err)
	}
	if n := len(trCalls(srv, flytest.OpStart)); n != 1 {
		t.Errorf("the start was sent %d times, want once", n)
	}
}

func TestTransportCreateLostConnection(t *testing.T) {
	isCreate := func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/machines")
	}
	base := trLoseAnswer(isCreate, func(*http.Request) (*http.Response, error) { return nil, trTempError{} })
	srv, _, m := trEnv(t, 1, flytest.Options{}, base, &TransportOptions{})

	_, err := m.Launch(context.Background(), "tr-001", trLaunchInput())
	if !isUncertain(err) || !errors.Is(err, errUncertain) {
		t.Fatalf("launch: %v, want an uncertain error", err)
	}
	if n := len(trCalls(srv, flytest.OpLaunch)); n != 1 {
		t.Errorf("%d launch calls, want exactly 1", n)
	}
	if n := srv.Count("tr-001", ""); n != 3 {
		t.Errorf("%d machines, want 3: the create the answer was lost for happened", n)
	}
}

func TestTransportCreateNotSentIsCertain(t *testing.T) {
	var attempts atomic.Int32
	base := trRoundTripper(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPost {
			attempts.Add(1)
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	srv, _, m := trEnv(t, 1, flytest.Options{}, base, &TransportOptions{BaseDelay: time.Millisecond})
	_, err := m.Launch(context.Background(), "tr-001", trLaunchInput())
	if err == nil || isUncertain(err) {
		t.Fatalf("launch: %v, want a certain failure: nothing was sent", err)
	}
	if n := len(trCalls(srv, flytest.OpLaunch)); n != 0 {
		t.Errorf("%d launch calls, want 0", n)
	}
	if n := attempts.Load(); n != 4 {
		t.Errorf("%d attempts, want 4: a request that never left may be sent again, whatever it is", n)
	}
}

func TestTransportLeaseRequestRetried(t *testing.T) {
	var refused atomic.Bool
	base := trRoundTripper(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/lease") && refused.CompareAndSwap(false, true) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	srv, _, m := trEnv(t, 1, flytest.Options{}, base, &TransportOptions{BaseDelay: time.Millisecond})
	id := trMachineID(t, srv, "tr-001", "started")
	srv.Inject(flytest.Fault{Op: flytest.OpLeaseAcquire, Status: http.StatusTooManyRequests, Times: 1})
	srv.Inject(flytest.Fault{Op: flytest.OpLeaseAcquire, Status: http.StatusInternalServerError, Times: 1})

	ttl := 15
	l, err := m.AcquireLease(context.Background(), "tr-001", id, &ttl)
	if err != nil || l.Data == nil || l.Data.Nonce == "" {
		t.Fatalf("lease: %v, want it granted after a refused connection, a 429 and a 500", err)
	}
	if got := fmt.Sprint(trStatuses(trCalls(srv, flytest.OpLeaseAcquire))); got != "[429 500 200]" {
		t.Errorf("lease statuses %s, want [429 500 200]", got)
	}
}

func TestTransportDestroyRetryFindsItGone(t *testing.T) {
	isDestroy := func(r *http.Request) bool { return r.Method == http.MethodDelete }
	base := trLoseAnswer(isDestroy, trAnswer(http.StatusBadGateway, `{"error":"bad gateway"}`))
	srv, _, m := trEnv(t, 1, flytest.Options{}, base, &TransportOptions{BaseDelay: 5 * time.Millisecond})
	id := trMachineID(t, srv, "tr-001", "stopped")

	if err := m.Destroy(context.Background(), "tr-001", fly.RemoveMachineInput{ID: id, Kill: true}, ""); err != nil {
		t.Fatalf("destroy: %v, want success: the machine is gone", err)
	}
	if got := fmt.Sprint(trStatuses(trCalls(srv, flytest.OpDestroy))); got != "[200 404]" {
		t.Errorf("destroy statuses %s, want [200 404]", got)
	}
	if n := srv.Count("tr-001", ""); n != 1 {
		t.Errorf("%d machines left, want 1", n)
	}
}

func TestTransportDestroy404IsNotFound(t *testing.T) {
	_, _, m := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{})
	err := m.Destroy(context.Background(), "tr-001", fly.RemoveMachineInput{ID: "nosuchmachine", Kill: true}, "")
	if statusOf(err) != http.StatusNotFound || isUncertain(err) {
		t.Errorf("destroy of an unknown machine: %v, want a plain 404", err)
	}
}

func TestTransportStartRetryAfterLostAnswerisUncertain(t *testing.T) {
	isStart := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/start") }
	base := trLoseAnswer(isStart, trAnswer(http.StatusServiceUnavailable, `{"error":"service unavailable"}`))
	srv, _, m := trEnv(t, 1, flytest.Options{}, base, &TransportOptions{BaseDelay: 5 * time.Millisecond})
	id := trMachineID(t, srv, "tr-001", "stopped")

	_, err := m.Start(context.Background(), "tr-001", id, "")
	if statusOf(err) != http.StatusPreconditionFailed || !isUncertain(err) {
		t.Fatalf("start: %v, want the retry's 412, marked uncertain", err)
	}
	if n := srv.Count("tr-001", "started"); n != 2 {
		t.Errorf("%d started machines, want 2: the first start happened", n)
	}
}

func TestTransportListPersistent503(t *testing.T) {
	srv, _, m := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{BaseDelay: 5 * time.Millisecond})
	srv.Inject(flytest.Fault{Op: flytest.OpList, Status: http.StatusServiceUnavailable})
	_, err := m.List(context.Background(), "tr-001", "")
	if statusOf(err) != http.StatusServiceUnavailable || !strings.HasPrefix(err.Error(), "503: ") {
		t.Fatalf("list: %v, want a 503", err)
	}
	if isUncertain(err) {
		t.Errorf("a list is never uncertain: %v", err)
	}
	// Four attempts, and no other layer's.
	if n := len(trCalls(srv, flytest.OpList)); n != 4 {
		t.Errorf("%d list attempts, want 4", n)
	}
}

func TestTransportGraphQLQueryRetried(t *testing.T) {
	srv, a, _ := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{BaseDelay: 5 * time.Millisecond})
	srv.Inject(flytest.Fault{Op: flytest.OpGraphQLOrg, Status: http.StatusInternalServerError, Times: 2})
	org, err := a.GetOrganizationBySlug(context.Background(), "tr-org")
	if err != nil {
		t.Fatalf("organization: %v", err)
	}
	if org.Slug != "tr-org" {
		t.Errorf("slug %q", org.Slug)
	}
	if got := fmt.Sprint(trStatuses(trCalls(srv, flytest.OpGraphQLOrg))); got != "[500 500 200]" {
		t.Errorf("statuses %s, want [500 500 200]", got)
	}
}

// TestTransportGraphQLOneRetryLoop: a query answered 502 or 503 every time
// is sent MaxAttempts times, by the transport alone: fly-go's rehttp above
// it, which resends after a 502 or 503, never sees one.
func TestTransportGraphQLOneRetryLoop(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusServiceUnavailable} {
		srv, a, _ := trEnv(t, 1, flytest.Options{}, nil, &TransportOptions{BaseDelay: time.Millisecond})
		srv.Inject(flytest.Fault{Op: flytest.OpGraphQLOrg, Status: status})
		_, err := a.GetOrganizationBySlug(context.Background(), "tr-org")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(status)) {
			t.Errorf("%d: organization: %v, want an error naming the %d", status, err, status)
		}
		if n := len(trCalls(srv, flytest.OpGraphQLOrg)); n != 4 {
			t.Errorf("%d: the query was sent %d times, want MaxAttempts 4", status, n)
		}
	}
}

func TestTransportRateLimitPerApp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const apps = 50
		srv, m := trMemEnv(t, apps, flytest.Options{RateLimit: true}, TransportOptions{RateLimit: true})
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, apps)
		for i := range apps {
			wg.Go(func() {
				for range 2 { // the client's burst per app
					if _, err := m.List(context.Background(), fmt.Sprintf("tr-%03d", i+1), ""); err != nil {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		calls := trCalls(srv, flytest.OpList)
		if len(calls) != 2*apps {
			t.Errorf("%d lists, want %d", len(calls), 2*apps)
		}
		for _, c := range calls {
			if c.Status != http.StatusOK {
				t.Errorf("list of %s answered %d", c.App, c.Status)
			}
		}
		// One limiter for all would take 2*apps-2 seconds.
		if elapsed > 5*time.Second {
			t.Errorf("lists of %d apps took %v: apps should not wait for each other", apps, elapsed)
		}
	})
}

func TestTransportRateLimitOneApp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lists = 10
		// Without the client-side limit the server refuses some.
		srv, m := trMemEnv(t, 1, flytest.Options{RateLimit: true}, TransportOptions{MaxAttempts: 1})
		refused := 0
		for range lists {
			if _, err := m.List(context.Background(), "tr-001", ""); statusOf(err) == http.StatusTooManyRequests {
				refused++
			}
		}
		if refused == 0 {
			t.Fatalf("no list of %d was refused without the client limit: the test proves nothing", lists)
		}

		srv, m = trMemEnv(t, 1, flytest.Options{RateLimit: true}, TransportOptions{RateLimit: true, MaxAttempts: 1})
		for i := range lists {
			if _, err := m.List(context.Background(), "tr-001", ""); err != nil {
				t.Fatalf("list %d: %v", i+1, err)
			}
		}
		for _, c := range trCalls(srv, flytest.OpList) {
			if c.Status != http.StatusOK {
				t.Errorf("list answered %d: the client should have waited", c.Status)
			}
		}
	})
}

func TestRTClassify(t *testing.T) {
	const gqlQuery = `{"query":"query($slug: String!) { organization(slug: $slug) { id } }","variables":{"slug":"x"}}`
	const gqlMutation = `{"query":"mutation($input: X!) { createApp(input: $input) { id } }"}`
	tests := []struct {
		method, path, body string
		key                string // limiter key, "" if none
		read, retry, gone  bool
	}{
		{"GET", "/v1/apps/a/machines", "", "list a", true, true, false},
		{"POST", "/v1/apps/a/machines", "{}", "create a", false, false, false},
		{"GET", "/v1/apps/a/machines/m1", "", "get a/m1", true, true, false},
		{"POST", "/v1/apps/a/machines/m1", "{}", "update a/m1", false, false, false},
		{"DELETE", "/v1/apps/a/machines/m1", "", "destroy a/m1", false, true, true},
		{"POST", "/v1/apps/a/machines/m1/start", "", "start a/m1", false, true, false},
		{"POST", "/v1/apps/a/machines/m1/stop", "{}", "stop a/m1", false, true, false},
		{"POST", "/v1/apps/a/machines/m1/suspend", "", "suspend a/m1", false, true, false},
		{"POST", "/v1/apps/a/machines/m1/lease", "", "lease a/m1", false, true, false},
		{"DELETE", "/v1/apps/a/machines/m1/lease", "", "lease release a/m1", false, true, true},
		{"GET", "/v1/apps/a/machines/m1/lease", "", "lease GET a/m1", true, true, false},
		{"POST", "/v1/apps/a/machines/m1/metadata/k", "{}", "metadata POST a/m1", false, false, false},
		{"POST", "/v1/apps/a/machines/m1/signal", "{}", "signal POST a/m1", false, false, false},
		{"GET", "/v1/apps/a/volumes", "", "", true, true, false},
		{"POST", "/graphql", gqlQuery, "", true, true, false},
		{"POST", "/graphql", gqlMutation, "", false, false, false},
		{"POST", "/graphql", "not json", "", false, false, false},
	}
	lim := newRTLimiters(defaultLimits())
	for _, tt := range tests {
		ep := rtClassify(tt.method, tt.path, []byte(tt.body))
		key, _, _ := lim.key(ep)
		if key != tt.key || ep.read != tt.read || ep.retry != tt.retry || ep.goneOK != tt.gone {
			t.Errorf("%s %s: key %q read %v retry %v gone %v, want %q %v %v %v",
				tt.method, tt.path, key, ep.read, ep.retry, ep.goneOK, tt.key, tt.read, tt.retry, tt.gone)
		}
	}
}

func TestRTRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 30 ", 30 * time.Second, true},
		{"0", 0, true},
		{"Sat, 01 Mar 2025 12:00:05 GMT", 5 * time.Second, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := rtRetryAfter(tt.h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("rtRetryAfter(%q) = %v, %v; want %v, %v", tt.h, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRTLimitersEvictRefilled(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newRTLimiters(defaultLimits())
	s.now = func() time.Time { return now }
	l := defaultLimits().Action
	for i := range 1000 {
		s.reserve(fmt.Sprintf("start app/m%d", i), l)
	}
	if n := s.size(); n != 1000 {
		t.Fatalf("%d limiters, want 1000: none had refilled", n)
	}
	// Empty one bucket: it must survive sweeps until it has refilled.
	s.reserve("list busy", l)
	s.reserve("list busy", l)
	now = now.Add(1500 * time.Millisecond)
	for i := range 1000 {
		s.reserve(fmt.Sprintf("stop app/m%d", i), l)
	}
	if n := s.size(); n > 1100 {
		t.Errorf("%d limiters after the first thousand refilled, want about 1000", n)
	}
	// 1.5s after being emptied "list busy" holds 1.5 tokens: one now, the
	// next half a second later.
	if _, r := s.reserve("list busy", l); r.DelayFrom(now) != 0 {
		t.Errorf("first reservation waits %v, want 0", r.DelayFrom(now))
	}
	if _, r := s.reserve("list busy", l); r.DelayFrom(now) != 500*time.Millisecond {
		t.Errorf("second reservation waits %v, want 500ms: the emptied limiter was dropped", r.DelayFrom(now))
	}
}

// BenchmarkTransport measures the transport's cost per request, rate
// limiter included, over a base that answers at once.
func BenchmarkTransport(b *testing.B) {
	base := trRoundTripper(trAnswer(http.StatusOK, `[]`))
	rt := NewTransport(base, TransportOptions{RateLimit: true, Limits: &Limits{Action: Limit{Rate: 1e9, Burst: 1e6}}})
	req, err := http.NewRequest(http.MethodGet, "http://fly.test/v1/apps/a/machines", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
	}
}

// statusOf returns the HTTP status of a Machines API error, 0 if none.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return 0
}

// isUncertain reports whether err, the failure of a Machines API request,
// carries the verdict "may have taken effect" (the applier reads it
// through scale.APIError).
func isUncertain(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.uncertain
	}
	return errors.Is(err, errUncertain)
}
