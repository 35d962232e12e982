package query

import (
	"errors"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// RedactError returns err with the secrets of r (see redact.ForSecrets)
// removed from its text. The result still unwraps to err, so errors.Is and
// errors.As keep working; the body of a Prometheus API error (its Detail)
// is cleaned in place.
func RedactError(err error, r *redact.Redactor) error {
	if err == nil {
		return nil
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		apiErr.Msg = r.Redact(apiErr.Msg)
		apiErr.Detail = r.Redact(apiErr.Detail)
	}
	clean := r.Redact(err.Error())
	if apiErr != nil && apiErr.Detail != "" && !strings.Contains(clean, apiErr.Detail) {
		// The answer's body says what went wrong; client_golang keeps it
		// out of Error().
		clean += ": " + truncate(strings.Join(strings.Fields(apiErr.Detail), " "), 200)
	}
	return redact.Reword(err, clean)
}
