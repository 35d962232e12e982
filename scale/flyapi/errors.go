package flyapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/superfly/fly-autoscaler/scale"
)

// apiError is a failed Machines API request as the domain reads it: a
// scale.APIError with the attempts' verdict on whether it may have taken
// effect, matching (errors.Is) the scale error its status and text mean,
// and errUncertain when uncertain.
type apiError struct {
	status    int   // the API's answer; 0 when there was none
	err       error // the network error, when there was no answer
	msg       string
	uncertain bool
	kind      error // scale.ErrBusy, ...; nil if none applies
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) Uncertain() bool { return e.uncertain }

func (e *apiError) Unwrap() []error {
	var out []error
	for _, err := range []error{e.err, e.kind} {
		if err != nil {
			out = append(out, err)
		}
	}
	if e.uncertain {
		out = append(out, errUncertain)
	}
	return out
}

var _ scale.APIError = (*apiError)(nil)

// answerError gives a Machines API error answer its meaning: "<status>:
// <message>" (the message as fly-go reads it from the body: "message", or
// else "error"), the attempts' verdict on uncertainty, noted in the text,
// why a retryable answer was not retried, and the scale error of its status:
// 409 busy, 404 not found, and a 412 whose text names the machine's current
// state (the Machines API offers no code for it) already started or already
// stopped. unauthorized is the caller's advice on a 401.
func answerError(status int, body []byte, uncertain bool, gaveUp, unauthorized string) *apiError {
	msg := apiMessage(status, body)
	e := &apiError{status: status, uncertain: uncertain}
	switch status {
	case http.StatusUnauthorized:
		e.msg = unauthorizedMsg(unauthorized)
		return e
	case http.StatusConflict:
		e.kind = scale.ErrBusy
	case http.StatusNotFound:
		e.kind = scale.ErrNotFound
	case http.StatusPreconditionFailed:
		e.kind = currentState(msg)
	}
	var notes []string
	if uncertain {
		notes = append(notes, errUncertain.Error())
	}
	if gaveUp != "" {
		notes = append(notes, "not retried: "+gaveUp)
	}
	e.msg = fmt.Sprintf("%d: %s", status, msg)
	if len(notes) > 0 {
		e.msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return e
}

// apiMessage reads an error answer's message as fly-go does: the JSON
// body's "message", or else its "error"; a body that is not JSON is quoted
// (at most 500 bytes), and an empty one is the status's text.
func apiMessage(status int, body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Message != "" {
			return e.Message
		}
		if e.Error != "" {
			return e.Error
		}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" || strings.HasPrefix(msg, "{") {
		return http.StatusText(status)
	}
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	return msg
}

// networkError is a Machines API request that got no answer: the error of
// its last attempt, how many there were and whether the request may have
// taken effect (an attempt may have reached the API).
func networkError(x exchange, uncertain bool) *apiError {
	msg := x.err.Error()
	if x.sent > 1 {
		msg += fmt.Sprintf(" (%d attempts)", x.sent)
	}
	if uncertain {
		msg += " (" + errUncertain.Error() + ")"
	}
	return &apiError{err: x.err, msg: msg, uncertain: uncertain}
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
