package cmd

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// configSecrets lists every secret value of the configuration: the values
// of the variables, flags and config file keys whose names say they hold
// secrets (FAS_API_TOKEN, --prometheus-token, token: ...), and the
// credentials of every URL among them (user:password@, ?token=). What
// ${VAR} expansion took from a secret variable is among the variables'.
func configSecrets(c *cli.Context, file *fileConfig) []string {
	out := envSecrets(envOf(c))
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		v := strings.TrimSpace(c.String(name))
		if IsSecretOption(name) {
			out = append(out, v)
		}
		out = append(out, redact.URLSecrets(v)...)
	}
	if file != nil {
		out = append(out, structSecrets(reflect.ValueOf(*file))...)
		for _, col := range file.MetricCollectors {
			out = append(out, col.secrets()...)
		}
	}
	return append(out, sourceSecrets(c, file)...)
}

// envSecrets returns the values of the environment's secret variables
// (their names say so: FAS_API_TOKEN, FLY_API_TOKEN, *_PASSWORD, ...) and
// the credentials of every URL the environment holds. A value shorter
// than redact.MinSecretLen, which is redacted as a whole word, counts only
// for the variables of the configuration (FAS_*, FLY_*, and those the
// sources' Configs name, TEMPORAL_TLS_KEY_DATA): the
// XDG_SESSION_ID=3 of a desktop must not blank every "3" of the report.
func envSecrets(env Env) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := strings.TrimSpace(env[k])
		if IsSecretOption(k) && (len(v) >= redact.MinSecretLen || configVar(k)) {
			out = append(out, v)
		}
		out = append(out, redact.URLSecrets(v)...)
	}
	return out
}

// configVar reports whether the variable named k configures fly-autoscaler.
func configVar(k string) bool {
	return strings.HasPrefix(k, "FAS_") || strings.HasPrefix(k, "FLY_") || sourceVars[k]
}

// structSecrets walks a config file struct: the string fields whose YAML
// key names a secret, and the credentials of every URL it holds.
func structSecrets(v reflect.Value) []string {
	var out []string
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			f := v.Field(i)
			if f.Kind() == reflect.String && IsSecretOption(key) {
				out = append(out, f.String())
			}
			out = append(out, structSecrets(f)...)
		}
	case reflect.Slice:
		for i := range v.Len() {
			out = append(out, structSecrets(v.Index(i))...)
		}
	case reflect.String:
		out = append(out, redact.URLSecrets(v.String())...)
	}
	return out
}

// redactError returns err with every secret replaced, the given ones and
// those s knows (s may be nil), keeping its exit code.
func redactError(err error, secrets []string, s *Streams) error {
	msg := err.Error()
	clean := s.Redact(redact.Redact(msg, secrets...))
	if clean == msg {
		return err
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return &UsageError{Msg: clean}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.code, msg: clean}
	}
	return errors.New(clean)
}
