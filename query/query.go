// Package query collects metric values for apps. It knows nothing of Fly
// machines: a value is a plain float64 named by its metric name.
//
// A Source is one metric collector: Prometheus, Temporal, NATS JetStream or
// Kafka. A source is either per-app, queried once for every app, or
// fleet-wide (a FleetSource whose FleetWide reports true), queried once per
// run with the result split among the apps. A Set bundles the sources of one run: Start sends the
// fleet-wide queries before the run's apps are known, Prefetch opens the
// sources that need the apps and waits for all, Collect gives every
// metric's value for one app.
//
// Each source lives in a package of its own (query/prometheus,
// query/temporal, query/nats, query/kafka) with a Config (a SourceConfig),
// a New and a Build. The tags of a Config's fields describe its options for
// cmd, which derives the flags, variables, config file keys, their decoding
// and the secrets from them: key (the YAML key), flag, help ({WORD} for the
// flag's placeholder), env (variables, when not FAS_ and the flag in
// capitals), secret:"true", template:"true" (a $APP_NAME template),
// defines:"true" (set from flags, it defines a source), need (what a source
// from flags must set) and negate:"true" (the key is the field's opposite).
//
// No error or printed value of this package contains a token or the
// credentials of an address.
package query

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Source is one metric collector. Its Name is the metric name, the variable
// that scaling expressions refer to.
type Source interface {
	// Name returns the metric name.
	Name() string
	// Collect returns the metric's value for app. The caller's ctx bounds
	// the query. Errors need not name the metric: the Set adds it.
	Collect(ctx context.Context, app string) (float64, error)
}

// FleetSource is a Source that can answer for every app with one query.
// A Set calls CollectFleet at most once per run for a source whose FleetWide
// reports true, and Collect for the others.
type FleetSource interface {
	Source
	// FleetWide reports whether one CollectFleet answers for every app.
	FleetWide() bool
	// CollectFleet runs the fleet-wide query and returns the lookup that
	// gives each app its value.
	CollectFleet(ctx context.Context) (Lookup, error)
}

// CollectApp is the Collect of a source that may be fleet-wide: one that
// is runs its fleet-wide query and looks app up in the result; one that is
// not checks app's name and calls perApp.
func CollectApp(ctx context.Context, s FleetSource, app string, perApp func(ctx context.Context, app string) (float64, error)) (float64, error) {
	if s.FleetWide() {
		lookup, err := s.CollectFleet(ctx)
		if err != nil {
			return 0, err
		}
		return lookup(app)
	}
	if err := ValidAppName(app); err != nil {
		return 0, err
	}
	return perApp(ctx, app)
}

// Lookup gives the value of a fleet-wide query for one app. It does no I/O
// and is safe for concurrent use.
type Lookup func(app string) (float64, error)

// Errors that result checks wrap; test with errors.Is.
var (
	// ErrNoData means the query returned no sample, or NaN, for the app
	// under OnEmptyError.
	ErrNoData = errors.New("no data")
	// ErrManySeries means the query returned several series where one was
	// expected.
	ErrManySeries = errors.New("several series")
	// ErrResultType means the result is neither a scalar nor an instant
	// vector of floats.
	ErrResultType = errors.New("unexpected result type")
)

// resultError is an error with its own text that still matches a sentinel
// with errors.Is.
type resultError struct {
	kind error
	msg  string
}

func (e *resultError) Error() string        { return e.msg }
func (e *resultError) Is(target error) bool { return target == e.kind }

// ResultErrorf returns an error worded by format that matches kind.
func ResultErrorf(kind error, format string, args ...any) error {
	return &resultError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// identPattern is what a metric name matches: it is a variable of the
// scaling expressions.
var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckName checks the name of a metric of the given kind ("prometheus",
// "nats", ...) as every source does, and returns the function that words
// the source's other configuration errors: the kind and the metric first.
func CheckName(kind, name string) (errorf func(format string, args ...any) error, err error) {
	if name == "" {
		return nil, fmt.Errorf("%s: metric-name: empty", kind)
	}
	errorf = func(format string, args ...any) error {
		return fmt.Errorf("%s metric %q: %s", kind, name, fmt.Sprintf(format, args...))
	}
	if !identPattern.MatchString(name) {
		return nil, errorf("metric-name: want letters, digits and underscores, not starting with a digit")
	}
	return errorf, nil
}

// OnEmpty says what a query that has no value for an app (an empty vector,
// no series for the app, or NaN) means.
type OnEmpty int

const (
	// OnEmptyError makes a missing value an error, so the app is skipped
	// rather than scaled on a made-up number. It is the default.
	OnEmptyError OnEmpty = iota
	// OnEmptyZero reads a missing value as 0, for metrics whose series
	// only exist while there is work (queue depth, in-flight requests).
	OnEmptyZero
)

// String returns "error" or "zero".
func (o OnEmpty) String() string {
	switch o {
	case OnEmptyError:
		return "error"
	case OnEmptyZero:
		return "zero"
	}
	return fmt.Sprintf("OnEmpty(%d)", int(o))
}

// ParseOnEmpty parses "error" or "zero" (case-insensitive); the empty string
// is OnEmptyError.
func ParseOnEmpty(s string) (OnEmpty, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "error":
		return OnEmptyError, nil
	case "zero":
		return OnEmptyZero, nil
	}
	return 0, fmt.Errorf("on-empty %q: want \"error\" or \"zero\"", s)
}

// MarshalText implements encoding.TextMarshaler.
func (o OnEmpty) MarshalText() ([]byte, error) {
	if o != OnEmptyError && o != OnEmptyZero {
		return nil, fmt.Errorf("invalid on-empty value %d", int(o))
	}
	return []byte(o.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, so YAML and flag
// packages can read "error" and "zero".
func (o *OnEmpty) UnmarshalText(b []byte) error {
	v, err := ParseOnEmpty(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}
