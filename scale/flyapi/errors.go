package flyapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/superfly/fly-go/flaps"

	"github.com/superfly/fly-autoscaler/scale"
)

// apiError is a failed Machines API request as the domain reads it: a
// scale.APIError with the transport's verdict on whether it may have taken
// effect, matching (errors.Is) the scale error its status and text mean.
type apiError struct {
	err       error // as fly-go returned it
	msg       string
	uncertain bool
	kind      error // scale.ErrBusy, ...; nil if none applies
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) Uncertain() bool { return e.uncertain }

func (e *apiError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.err, e.kind}
	}
	return []error{e.err}
}

var _ scale.APIError = (*apiError)(nil)

// classify gives an error of fly-go's Machines API client its meaning:
// "<status>: <message>" without fly-go's "failed to ... VM" prefix, the
// transport's verdict on uncertainty (see isUncertain), and the scale error
// of its status: 409 busy, 404 not found, and a 412 whose text names the
// machine's current state (the Machines API offers no code for it) already
// started or already stopped. unauthorized is the caller's advice on a 401.
func classify(err error, unauthorized string) error {
	if err == nil {
		return nil
	}
	e := &apiError{err: err, msg: err.Error(), uncertain: isUncertain(err)}
	var fe *flaps.FlapsError
	if !errors.As(err, &fe) {
		return e
	}
	status, msg := receivedStatus(fe.ResponseStatusCode, fe.Error())
	e.msg = fmt.Sprintf("%d: %s", status, msg)
	switch fe.ResponseStatusCode {
	case http.StatusUnauthorized:
		e.msg = unauthorizedMsg(unauthorized)
	case http.StatusConflict:
		e.kind = scale.ErrBusy
	case http.StatusNotFound:
		e.kind = scale.ErrNotFound
	case http.StatusPreconditionFailed:
		e.kind = currentState(err.Error())
	}
	return e
}

// stoppedStates are the states a 412's text may name for a machine that a
// stop or suspend finds already there or on its way.
var stoppedStates = []string{"stopped", "suspended", "stopping", "suspending"}

// currentState reads the Machines API's refusal of a start, stop or suspend
// (412 failed_precondition) for the state it names: "... current state:
// 'started'", or "still active" for a start.
func currentState(msg string) error {
	if strings.Contains(msg, "still active") || strings.Contains(msg, "current state: 'started'") {
		return scale.ErrAlreadyStarted
	}
	for _, st := range stoppedStates {
		if strings.Contains(msg, "current state: '"+st+"'") {
			return scale.ErrAlreadyStopped
		}
	}
	return nil
}

func unauthorizedMsg(advice string) string {
	if advice == "" {
		return "401 unauthorized"
	}
	return "401 unauthorized: " + advice
}

// isUncertain reports whether err, the failure of a request that changes
// something (a create, a destroy, ...), may nevertheless have taken effect:
// for a create, the machine may exist; for a destroy, it may be gone. It is
// the one definition of "uncertain" (see the package documentation); the
// applier reads it through scale.APIError.
//
// Over a transport from NewTransport the transport has judged: every 5xx
// answer it passes on, and any answer it marks uncertain, carries its
// verdict, and its network errors match errUncertain or not. Errors that
// did not pass through it are judged by the same rule: a 5xx answer, or a
// network error after the request could have been sent.
func isUncertain(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errUncertain) {
		return true
	}
	var fe *flaps.FlapsError
	if errors.As(err, &fe) {
		var body struct {
			Uncertain *bool `json:"uncertain"`
		}
		if json.Unmarshal(fe.ResponseBody, &body) == nil && body.Uncertain != nil {
			return *body.Uncertain // the transport's verdict
		}
		return fe.ResponseStatusCode >= 500
	}
	var rt *rtError
	if errors.As(err, &rt) {
		return false // judged by the transport: not sent, or not changing anything
	}
	return !rtNotSent(err)
}

// stripURL keeps the operation and cause of a transport error, not the URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// gqlError is a GraphQL client error with a cleaned message.
type gqlError struct {
	msg string
	err error
}

func (e *gqlError) Error() string { return e.msg }
func (e *gqlError) Unwrap() error { return e.err }

// graphQLError drops the query text fly-go puts in front of a GraphQL error
// ("failed to run query(...) { ... }: <cause>") and the URL of a transport
// error, keeping the cause.
func graphQLError(err error, unauthorized string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return stripURL(ue)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "failed to run ") {
		if i := strings.LastIndex(msg, "}: "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	if strings.HasSuffix(msg, "non-200 status code: 401") {
		msg = unauthorizedMsg(unauthorized)
	}
	if msg != err.Error() {
		return &gqlError{msg: msg, err: err}
	}
	return err
}

// httpNote is the note the transport adds to a 502 or 503 it passes on as a
// 500: "(HTTP 503)" or "(HTTP 503; uncertain: ...)".
var httpNote = regexp.MustCompile(`\(HTTP (\d{3})(?:; |\))`)

// receivedStatus returns the status the Machines API really answered, and
// msg without the transport's note of it: a 503 is reported as a 503.
func receivedStatus(status int, msg string) (int, string) {
	m := httpNote.FindStringSubmatchIndex(msg)
	if m == nil {
		return status, msg
	}
	orig, _ := strconv.Atoi(msg[m[2]:m[3]])
	if strings.HasSuffix(msg[m[0]:m[1]], ")") {
		return orig, strings.TrimRight(msg[:m[0]], " ") + msg[m[1]:]
	}
	return orig, msg[:m[0]+1] + msg[m[1]:]
}
