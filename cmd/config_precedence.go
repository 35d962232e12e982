package cmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// settings reads each option from the flag or its variable, falling back
// to the config file: flags > variables (FAS_*, through urfave/cli's
// EnvVars) > file.
//
// urfave/cli's altsrc would read the file for us, but not as the original
// fly-autoscaler's file must be read: lists given as one comma-separated
// string, metric-collectors as a list of objects, ${VAR} expansion, unknown
// keys refused with the closest known one. So the file is decoded here
// (config_file.go) and only its fallback role is played by settings. An
// empty variable counts as unset, where urfave/cli would let it hide the
// file's value or the next variable.
type settings struct {
	c    *cli.Context
	env  Env
	file *fileConfig
	path string
}

// str returns the flag's value, else the file's. An empty value (a
// variable set to "", FAS_X=) counts as unset: urfave/cli would report it as
// set and so hide the file's value.
func (s settings) str(flag, fileVal string) string {
	v := strings.TrimSpace(s.c.String(flag))
	if v == "" {
		v = s.envValue(flag)
	}
	if v != "" || s.file == nil {
		return v
	}
	return strings.TrimSpace(fileVal)
}

// list returns the patterns or regions of a slice flag, comma-separated
// values split, else the file's; an empty flag or variable counts as unset.
func (s settings) list(flag string, fileVals []string) []string {
	if vals := splitList(s.c.StringSlice(flag)...); len(vals) > 0 || s.file == nil {
		return vals
	}
	return splitList(fileVals...)
}

// envValue returns the first non-empty variable of flag: urfave takes the
// first variable that exists, so an empty FAS_API_TOKEN would hide
// FLY_API_TOKEN.
func (s settings) envValue(flag string) string {
	for _, f := range s.c.Command.Flags {
		if slices.Contains(f.Names(), flag) {
			for _, name := range flagVars(f) {
				if v := strings.TrimSpace(s.env.Get(name)); v != "" {
					return v
				}
			}
		}
	}
	return ""
}

// has reports whether the flag or its variable gives the option a value:
// not an empty string, not an empty list. A boolean is set by the command
// line or a non-empty variable.
func (s settings) has(flag string) bool {
	if !s.c.IsSet(flag) {
		return false
	}
	for _, f := range s.c.Command.Flags {
		if !slices.Contains(f.Names(), flag) {
			continue
		}
		switch f := f.(type) {
		case sliceFlag:
			return len(splitList(s.c.StringSlice(flag)...)) > 0
		case boolFlag:
			if s.c.Bool(flag) {
				return true
			}
			// false: from a variable that says so, or --flag=false; an
			// empty variable alone is no value.
			for _, ev := range f.EnvVars {
				if s.env.Get(ev) != "" {
					return true
				}
			}
			return !slices.ContainsFunc(f.EnvVars, func(ev string) bool { _, ok := s.env.Lookup(ev); return ok })
		}
		break
	}
	return strings.TrimSpace(s.c.String(flag)) != ""
}

// where names an option for an error message: the flag and its variable,
// or, when the value came from the config file, the key at its line
// ("config.yml:4: concurrency"; "app-name in config.yml" for a key the file
// does not set).
func (s settings) where(flag string) string {
	if s.file != nil && !s.has(flag) {
		key := flag
		if flag == "apps" {
			key = "app-name" // the original's key
		}
		return s.file.keyAt(s.path, key)
	}
	return s.flagWhere(flag)
}

// keyAt names a top-level key of the file at path for an error: its file
// and line, "config.yml:4: concurrency", or "concurrency in config.yml"
// when the file does not set it.
func (f *fileConfig) keyAt(path, key string) string {
	if line, ok := f.lines.keys[key]; ok {
		return fmt.Sprintf("%s:%d: %s", path, line, key)
	}
	return fmt.Sprintf("%s in %s", key, path)
}

// collectorAt names the i-th metric collector of the file at path:
// "config.yml:12: metric-collectors[1]".
func (f *fileConfig) collectorAt(path string, i int) string {
	if i < len(f.lines.collectors) {
		return fmt.Sprintf("%s:%d: metric-collectors[%d]", path, f.lines.collectors[i], i)
	}
	return fmt.Sprintf("metric-collectors[%d] in %s", i, path)
}

// flagWhere names a flag and its variable, "--org (FAS_ORG)", for the
// options that have no config file key.
func (s settings) flagWhere(flag string) string {
	for _, f := range s.c.Command.Flags {
		if slices.Contains(f.Names(), flag) {
			if ev, ok := f.(interface{ GetEnvVars() []string }); ok && len(ev.GetEnvVars()) > 0 {
				return fmt.Sprintf("--%s (%s)", flag, ev.GetEnvVars()[0])
			}
		}
	}
	return "--" + flag
}

// splitList splits comma-separated patterns, keeping the commas inside
// braces ({a,b} is one glob).
func splitList(vals ...string) []string {
	var out []string
	for _, v := range vals {
		depth, start := 0, 0
		for i, r := range v {
			switch r {
			case '{':
				depth++
			case '}':
				if depth > 0 {
					depth--
				}
			case ',':
				if depth == 0 {
					out = appendTrimmed(out, v[start:i])
					start = i + 1
				}
			}
		}
		out = appendTrimmed(out, v[start:])
	}
	return out
}

func appendTrimmed(out []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		out = append(out, s)
	}
	return out
}
