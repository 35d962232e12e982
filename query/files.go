// Helpers the sources share: credentials files and secret lists.

package query

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadableFile checks that path, when set, names a file that can be opened.
func ReadableFile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%s: %v", path, err)
	}
	return f.Close()
}

// FileSecrets returns the lines of a credentials file that are not its
// "-----BEGIN ... -----" armour: the JWT and the seed.
func FileSecrets(path string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "***") || strings.Contains(line, " ") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// NonEmpty returns the strings of ss that are not blank, trimmed, reusing
// ss.
func NonEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
