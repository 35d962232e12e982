// Package redact is the redaction policy of every package that prints
// text which may hold a secret: which values are secrets (IsSecretName,
// URLSecrets), the forms each may be printed in (SecretForms), and the
// Redactor that replaces them. cmd registers every credential of the
// configuration when it is read; the sources redact their own errors.
package redact

import (
	"regexp"
	"slices"
	"strings"
)

// Redacted replaces a secret in text.
const Redacted = "REDACTED"

const redacted = Redacted

// The lengths of the policy.
const (
	// MinSecretLen is the length from which a secret is redacted wherever
	// it appears, and every run of PieceLen characters of it. A shorter
	// secret is redacted only where it stands as a whole word (see
	// Redactor.Add): blanking every "app" or "tok" inside other words would
	// mangle ordinary text.
	MinSecretLen = 6
	// PieceLen is the length of the pieces of a secret that are redacted
	// on their own: a message that quotes part of a token (a parser stops
	// at the first character it cannot read, a cell is truncated) shows no
	// run of this many characters of it.
	PieceLen = MinSecretLen
)

// urlPattern finds URLs in free text, such as the "Post \"https://...\"" of a
// *url.Error.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// secretName matches the names of variables, config keys and URL query
// parameters that hold secrets: FAS_API_TOKEN, password, ?access_token=.
var secretName = regexp.MustCompile(`(?i)token|passw|pwd|secret|key|auth|cred|sig|session`)

// notSecretNames match secretName but name no secret: the shell's working
// directories (PWD is not a password), whose pieces would blank words of
// every message that names a file below them.
var notSecretNames = []string{"PWD", "OLDPWD"}

// IsSecretName reports whether a variable, config key or URL query
// parameter of this name holds a secret.
func IsSecretName(name string) bool {
	return secretName.MatchString(name) && !slices.Contains(notSecretNames, name)
}

// Redact returns s with the credentials of every URL in it (user:password@,
// and the values of query parameters such as ?token=) removed and every
// secret, in any letter case, replaced by REDACTED, as well as any run of
// PieceLen characters of one; a value shorter than MinSecretLen only where
// it stands as a whole word. Use it on any text that may hold an address
// or a token before it is printed.
func Redact(s string, secrets ...string) string {
	return ForSecrets(secrets...).Redact(s)
}

// lowerASCII lowers ASCII letters only, so that byte offsets are kept.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// CutScheme splits an authorization scheme ("FlyV1 ", "Bearer ") off
// token: the policy's one prefix-stripping function.
func CutScheme(token string) (scheme, rest string, ok bool) {
	for _, s := range []string{"FlyV1 ", "Bearer "} {
		if len(token) > len(s) && strings.EqualFold(token[:len(s)], s) {
			return token[:len(s)-1], token[len(s):], true
		}
	}
	return "", token, false
}
