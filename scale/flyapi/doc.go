// Package flyapi is the autoscaler's access to the Fly APIs: the fly-go
// clients behind scale.Apps and scale.Machines (the machine list and the
// lease acquisition are sent directly, as fly-go would send them; see
// machines.List and machines.AcquireLease), the HTTP transport under
// them (retries, rate limits and the judgement of "uncertain"), and the
// classification of API errors into the meanings the domain decides from
// (scale.ErrBusy, scale.ErrNotFound, scale.ErrAlreadyStarted,
// scale.ErrAlreadyStopped, scale.APIError). It is the only package that
// knows HTTP statuses and fly-go's flaps; the domain, package scale, knows
// neither.
//
// The transport (NewTransport) sends each request through a base transport,
// retrying only where a retry cannot do something twice, and, with
// TransportOptions.RateLimit, holding requests back to stay within Fly's
// rate limits.
//
// # Retries
//
// A 429 means the request was not carried out: it is retried whatever the
// method, after the wait its Retry-After asks for (seconds or an HTTP date)
// or else a capped, jittered exponential backoff. A 500, 502, 503 or 504 or a
// network error is retried the same way only when sending the request twice
// does no more than sending it once:
//
//   - GET and HEAD (list, get, lease and metadata reads), and GraphQL
//     queries (a POST whose document has no mutation or subscription);
//   - start, stop and suspend of a machine: each drives the machine to a
//     state, and a second one finds it there;
//   - acquire and refresh of a lease: a lease is exclusive, so a second
//     acquire after one that took effect is refused (409, busy), and a
//     refresh only extends the lease its nonce names;
//   - destroy of a machine and release of a lease. A retry of these that
//     finds the machine or lease gone (404) after an earlier attempt failed
//     with a 5xx or a lost connection is answered 200 ({"ok":true}): what
//     was asked for holds, whether that earlier attempt did it or not.
//
// Anything else, create (POST /v1/apps/{app}/machines), update and every
// GraphQL mutation included, is sent once, unless it
// certainly never left: a request that could not connect is retried
// whatever it is. Attempts are bounded by MaxAttempts, except that a 429 is
// retried until the request context's deadline when it has one; each one
// waits for the rate limiter, and no wait runs past that deadline: when a
// wait would end at or after it, the last answer or error is returned at
// once. A Retry-After is waited out with up to a tenth more of jitter (at
// most a second); one that asks for the time left or more (without a
// deadline, more than MaxRetryAfter) is not waited for, and the answer's
// message says so, naming the Retry-After and the time left.
//
// # Uncertainty
//
// fly-go wraps this transport in rehttp, which resends any request, POST
// included, after a 502 or 503 or a temporary network error. So that a
// create is never sent twice (and this transport stays the only one to
// retry, within its bounds), no 502 or 503 and no temporary error leaves it:
// a 502 or 503 goes up as a 500 with a Fly-Autoscaler-Original-Status header
// and the original status noted in the body's message, and network errors
// are wrapped in an error without a Temporary method.
//
// A failed request that is not a read and may nevertheless have taken effect
// is marked uncertain: its final answer is a 5xx, or a network error after
// the request could have been sent, or any failure that follows such an
// attempt (a retried start may find the machine started: 412). Such an
// answer gets a Fly-Autoscaler-Uncertain: 1 header, and its JSON body gets
// "uncertain": true and "(uncertain: the request may have taken effect)"
// appended to its "error" and "message"; such a network error says so too.
// Any other 5xx answer gets "uncertain": false, so that every 5xx carries
// the verdict (a 5xx from a client without this transport has none). The
// Machines client (NewClients) recognises both in the errors fly-go returns
// and reports them as scale.APIError.Uncertain; a caller seeing one should
// list the app again before deciding, since a create may have made a
// machine.
//
// Some retries happen above this transport and are out of its hands:
// fly-go's flaps client resends a GET up to twice after a connection reset,
// and its AcquireLease retries every error for up to a minute.
//
// # Rate limits
//
// With TransportOptions.RateLimit each Machines API request first takes
// a token from the limiter of its action and identifier (1 request/s, bursts of 2; get
// machine 5/s), waiting for one if need be, but never past the request
// context's deadline: a request that would have to wait beyond it fails at
// once with an error matching context.DeadlineExceeded, and a retry that
// would is not made. GraphQL and other paths are not limited (Fly publishes
// no GraphQL limits). Limiters that have refilled are dropped, which loses
// nothing since a full limiter is a new one, so memory follows the
// identifiers used in the last seconds, not the size of the fleet.
//
// The transport never reads or logs headers; it sees the Authorization
// header only to pass it on.
package flyapi
