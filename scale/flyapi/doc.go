// Package flyapi is the autoscaler's access to the Fly APIs: fly-go's
// GraphQL client behind scale.Apps, this package's own Machines API client
// behind scale.Machines, the Transport under both (retries, rate limits
// and the judgement of "uncertain"), and the classification of API errors
// into the meanings the domain decides from (scale.ErrBusy,
// scale.ErrNotFound, scale.ErrAlreadyStarted, scale.ErrAlreadyStopped,
// scale.APIError). It is the only package that knows HTTP statuses and the
// Machines API; the domain, package scale, knows neither.
//
// # One way to call the Machines API
//
// Every Machines API call the product makes (list, start, stop, suspend,
// launch, destroy, lease acquire, refresh and release, metadata set and
// delete) goes through one client (machines.go): it builds the request
// fly-go's flaps client would send (method, path, query, JSON body,
// Authorization from fly-go's tokens, FlyV1 macaroons included, User-Agent,
// lease nonce), decodes the answer into fly-go's types, and reads the
// outcome of the Transport's attempts directly. The Machines API's base is
// Options.MachinesBaseURL (the caller reads FLY_FLAPS_BASE_URL). fly-go's
// flaps client is not used: it adds retry loops of its own (rehttp,
// resending any request, a create included, after a 502 or 503; a GET
// resent after a connection reset; AcquireLease retrying a busy lease for a
// minute), hands a caller only the last HTTP answer, so that the attempts'
// verdict could reach it only in rewritten answers, and reads its base URL
// from the environment alone. It also costs more: over the same Transport
// and fake server, with a real macaroon, it spends 1.19 times this client's
// CPU on a list and 1.8 to 2.1 times on a start and stop or a lease taken
// and released, with 1.2 and 2.1 times the allocations
// (BenchmarkMachinesClient).
//
// # Retries
//
// Transport.exchange is the one retry loop. A 429 means the request was
// not carried out: it is retried whatever the method, after the wait its
// Retry-After asks for (seconds or an HTTP date) or else a capped, jittered
// exponential backoff. A 500, 502, 503 or 504 or a network error is retried
// the same way only when sending the request twice does no more than
// sending it once:
//
//   - GET and HEAD (list, get, lease and metadata reads), and GraphQL
//     queries (a POST whose document has no mutation or subscription);
//   - start, stop and suspend of a machine: each drives the machine to a
//     state, and a second one finds it there;
//   - acquire and refresh of a lease: a lease is exclusive, so a second
//     acquire after one that took effect is refused (409, busy), and a
//     refresh only extends the lease its nonce names;
//   - destroy of a machine and release of a lease. When a retry of these
//     finds the machine or lease gone (404) after an earlier attempt failed
//     with a 5xx or a lost connection, the Machines client reports success:
//     what was asked for holds, whether that earlier attempt did it or not.
//
// Anything else, create (POST /v1/apps/{app}/machines), update, metadata
// and every GraphQL mutation included, is sent once, unless it certainly
// never left: a request that could not connect is retried whatever it is.
// Attempts are bounded by MaxAttempts, except that a 429 is retried until
// the request context's deadline when it has one; each one waits for the
// rate limiter, and no wait runs past that deadline: when a wait would end
// at or after it, the last answer or error is returned at once. A
// Retry-After is waited out with up to a tenth more of jitter (at most a
// second); one that asks for the time left or more (without a deadline,
// more than MaxRetryAfter) is not waited for, and the error says so, naming
// the Retry-After and the time left.
//
// fly-go's GraphQL client sends through Transport.RoundTrip. fly-go wraps
// it in rehttp, which resends any request after a 502 or 503 or a
// temporary network error, and resends a query after a connection reset;
// so that this loop stays the only one, RoundTrip returns an error, without
// a Temporary method and hiding its network causes, in place of a 502 or
// 503 it did not retry further and of any network error.
//
// Without a Transport from NewTransport (Options.Transport nil or another
// RoundTripper) the Machines client sends each request once.
//
// # Uncertainty
//
// A failed request that is not a read and may nevertheless have taken
// effect is marked uncertain: its final answer is a 5xx, or a network error
// after the request could have been sent, or any failure that follows such
// an attempt (a retried start may find the machine started: 412). The
// Machines client reports it as scale.APIError.Uncertain, and its message
// says "(uncertain: the request may have taken effect)"; a caller seeing
// one should list the app again before deciding, since a create may have
// made a machine.
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
