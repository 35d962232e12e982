package cmd

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/temporal"
	"github.com/superfly/fly-autoscaler/scale"
)

// catTemporal is the help category of the Temporal collector's flags.
const catTemporal = "Temporal"

// temporalFields maps the keys temporal.Config.Validate names to the flags
// of the collector built from flags (from the Config's tags).
var temporalFields = mustKind("temporal").fieldFlags()

// temporalFromFile completes a temporal.Config decoded from a config
// file collector: its rate and its list of queue types.
func temporalFromFile(cfg any, raw map[string]string) (any, error) {
	tc := cfg.(temporal.Config)
	rps, err := requestsPerSecond(raw["requests-per-second"])
	if err != nil {
		return nil, fmt.Errorf("requests-per-second: %w", err)
	}
	tc.RequestsPerSecond = rps
	tc.QueueTypes = splitList(tc.QueueTypes...)
	return tc, nil
}

// temporalFromFlags is the collector the --temporal-* flags (FAS_TEMPORAL_*)
// define, or nil when they define none. Its errors name the flags.
func temporalFromFlags(s settings) (*temporal.Config, error) {
	str := func(flag string) string { return s.str(flag, "") }
	tc := temporal.Config{
		Name: str("temporal-metric-name"), Address: str("temporal-address"), Namespace: str("temporal-namespace"),
		TaskQueue: str("temporal-task-queue"), QueueTypes: splitList(str("temporal-queue-types")), Query: str("temporal-query"),
		CertData: str("temporal-cert-data"), KeyData: str("temporal-key-data"), APIKey: str("temporal-api-key"),
		TLSCA: str("temporal-tls-ca"), TLSServerName: str("temporal-tls-server-name"),
		TLSInsecureSkipVerify: s.c.Bool("temporal-tls-insecure-skip-verify"),
	}
	// The TLS and pacing options alone define no collector: a worker's
	// environment may hold TEMPORAL_TLS_* for its own use.
	if tc.Name == "" && tc.Address == "" && tc.Namespace == "" && tc.TaskQueue == "" && tc.Query == "" {
		return nil, nil
	}
	for _, f := range []struct{ flag, val, what string }{
		{"temporal-metric-name", tc.Name, "the name the expressions use for the Temporal value"},
		{"temporal-address", tc.Address, "the Temporal frontend's host:port, e.g. localhost:7233"},
		{"temporal-namespace", tc.Namespace, "the Temporal namespace"},
	} {
		if f.val == "" {
			return nil, usagef("%s: missing: %s", s.flagWhere(f.flag), f.what)
		}
	}
	measure := s.flagWhere("temporal-task-queue") + " or " + s.flagWhere("temporal-query")
	switch {
	case tc.TaskQueue != "" && tc.Query != "":
		return nil, usagef("%s: set one, not both (the task queue's backlog, or the number of running workflows the query matches)", strings.Replace(measure, " or ", " and ", 1))
	case tc.TaskQueue == "" && tc.Query == "":
		return nil, usagef("%s: set one: the task queue whose backlog is measured (e.g. jobs-$APP_NAME), or a query that counts running workflows", measure)
	}
	rps, err := requestsPerSecond(str("temporal-requests-per-second"))
	if err != nil {
		return nil, usagef("%s: %v", s.flagWhere("temporal-requests-per-second"), err)
	}
	tc.RequestsPerSecond = rps
	if err := tc.Validate(); err != nil {
		return nil, usagef("%s", temporalFlagError(s, tc, err))
	}
	return &tc, nil
}

// requestsPerSecond parses a positive rate; "" is the default (0).
func requestsPerSecond(v string) (float64, error) {
	if v = strings.TrimSpace(v); v == "" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
		return 0, fmt.Errorf("%q is not a rate: use a positive number of requests per second, e.g. 10", v)
	}
	return r, nil
}

// temporalFlagError rewrites an error of TemporalConfig.Validate
// ("temporal metric "w": namespace: empty") to name the flag and its
// variable ("--temporal-namespace (FAS_TEMPORAL_NAMESPACE): empty").
func temporalFlagError(s settings, tc temporal.Config, err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, fmt.Sprintf("temporal metric %q: ", tc.Name))
	msg = strings.TrimPrefix(msg, "temporal: ")
	// "cert-data, key-data: ..." names two fields.
	if head, rest, ok := strings.Cut(msg, ": "); ok && strings.Contains(head, ", ") {
		var flags []string
		for key := range strings.SplitSeq(head, ", ") {
			if i := slices.IndexFunc(temporalFields, func(f struct{ key, flag string }) bool { return f.key == key }); i >= 0 {
				flags = append(flags, s.flagWhere(temporalFields[i].flag))
			}
		}
		if len(flags) == strings.Count(head, ", ")+1 {
			return strings.Join(flags, ", ") + ": " + rest
		}
	}
	for _, f := range temporalFields {
		if rest, ok := strings.CutPrefix(msg, f.key); ok && (rest == "" || rest[0] == ' ' || rest[0] == ':' || rest[0] == ',') {
			return s.flagWhere(f.flag) + ": " + strings.TrimLeft(rest, ": ")
		}
	}
	return "--temporal-* (FAS_TEMPORAL_*): " + msg
}

// temporalSources builds the run's Temporal sources. None connects yet:
// each does on first use.
func temporalSources(rc *runConfig) ([]query.Source, error) {
	var opts []temporal.Option
	if rc.verbose && rc.log != nil {
		opts = append(opts, temporal.WithLogger(rc.log))
	}
	return appendSources(nil, rc.temporal, temporal.New, opts...)
}

// closeMetrics closes the connections of the run's metric sources.
func closeMetrics(deps scale.Deps) {
	if c, ok := deps.Metrics.(io.Closer); ok {
		_ = c.Close()
	}
}
