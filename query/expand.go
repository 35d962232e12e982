package query

import (
	"fmt"
	"strings"
)

// AppVar is the only variable a query may refer to.
const AppVar = "APP_NAME"

// maxAppNameLen is the longest app name Fly accepts: an app name is a DNS
// label (<app>.fly.dev).
const maxAppNameLen = 63

// Expand returns query with every $APP_NAME and ${APP_NAME} replaced by app.
// Nothing else is expanded: other $ text, such as $FAS_API_TOKEN or ${HOME},
// stays verbatim, so a query can never pull a secret out of the environment.
// $APP_NAME must not be followed by a letter, digit or underscore
// ($APP_NAMES stays verbatim). Expand does not check app; callers that put an
// untrusted name into a query check it with ValidAppName first.
func Expand(query, app string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + len(app))
	for i := 0; i < len(query); {
		if n := appVarAt(query[i:]); n > 0 {
			b.WriteString(app)
			i += n
			continue
		}
		b.WriteByte(query[i])
		i++
	}
	return b.String()
}

// UsesAppName reports whether query refers to $APP_NAME or ${APP_NAME}, that
// is, whether it must run once per app.
func UsesAppName(query string) bool {
	for i := 0; i < len(query); i++ {
		if appVarAt(query[i:]) > 0 {
			return true
		}
	}
	return false
}

// appVarAt returns the length of the app variable reference at the start of
// s, or 0 if s does not start with one.
func appVarAt(s string) int {
	if len(s) < 2 || s[0] != '$' {
		return 0
	}
	if braced := "${" + AppVar + "}"; strings.HasPrefix(s, braced) {
		return len(braced)
	}
	plain := "$" + AppVar
	if !strings.HasPrefix(s, plain) {
		return 0
	}
	if len(s) > len(plain) && isIdentByte(s[len(plain)]) {
		return 0
	}
	return len(plain)
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidAppName checks name against Fly's app-name rules: 1 to 63 lowercase
// letters, digits and dashes, starting with a letter or digit. A name that
// passes can be put between double quotes in PromQL without escaping.
func ValidAppName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid app name: empty")
	case len(name) > maxAppNameLen:
		return fmt.Errorf("invalid app name %q: %d characters, at most %d", truncate(name, maxAppNameLen+1), len(name), maxAppNameLen)
	case name[0] == '-':
		return fmt.Errorf("invalid app name %q: must start with a letter or digit", name)
	}
	for i, r := range name {
		if r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			continue
		}
		return fmt.Errorf("invalid app name %q: character %q at offset %d, want lowercase letters, digits and dashes", name, r, i)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
