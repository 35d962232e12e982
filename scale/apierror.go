package scale

import "errors"

// The meanings the clients behind Apps and Machines (scale/flyapi) give
// their failures, matched with errors.Is. The domain decides from these,
// never from HTTP statuses or error texts.
var (
	// ErrBusy: someone else holds the machine's lease.
	ErrBusy = errors.New("busy: someone else holds the machine's lease")
	// ErrNotFound: the machine, or its lease, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyStarted: a start refused because the machine is started.
	ErrAlreadyStarted = errors.New("already started")
	// ErrAlreadyStopped: a stop or suspend refused because the machine is
	// stopped, suspended, or on its way there.
	ErrAlreadyStopped = errors.New("already stopped")
)

// APIError is a failed API request as its client judged it.
type APIError interface {
	error
	// Uncertain reports whether the request may nevertheless have taken
	// effect: for a create, the machine may exist; for a destroy, it may be
	// gone.
	Uncertain() bool
}

// uncertain reports whether a failed action may nevertheless have taken
// effect. An error no client judged (an APIError) is taken as uncertain:
// the applier then counts the app again before anything is done in its
// place, which costs a list where the other guess could cost a machine.
func uncertain(err error) bool {
	var e APIError
	if errors.As(err, &e) {
		return e.Uncertain()
	}
	return err != nil
}
