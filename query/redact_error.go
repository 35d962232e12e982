package query

import (
	"errors"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// RedactError returns err with secrets removed from its text. The result
// still unwraps to err, so errors.Is and errors.As keep working; the body of
// a Prometheus API error (its Detail) is cleaned in place.
func RedactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	r := redact.NewRedactor(secrets...)
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		apiErr.Msg = r.Redact(apiErr.Msg)
		apiErr.Detail = r.Redact(apiErr.Detail)
	}
	msg := err.Error()
	clean := r.Redact(msg)
	if apiErr != nil && apiErr.Detail != "" && !strings.Contains(clean, apiErr.Detail) {
		// The answer's body says what went wrong; client_golang keeps it
		// out of Error().
		clean += ": " + truncate(strings.Join(strings.Fields(apiErr.Detail), " "), 200)
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
