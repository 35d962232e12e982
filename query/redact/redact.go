// Package redact is the redaction policy of every package that prints
// text which may hold a secret: which values are secrets (IsSecretName,
// URLSecrets), the forms each may be printed in (SecretForms), and the
// Redactor that replaces them. cmd registers every credential of the
// configuration when it is read; the sources redact their own errors.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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
	r := NewRedactor()
	for _, sec := range secrets {
		r.Add(SecretForms(sec)...)
	}
	return r.Redact(s)
}

// RedactURL returns raw without its credentials, for printing an address.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw // the common case, without the regexp
	}
	return urlPattern.ReplaceAllStringFunc(raw, stripCredentials)
}

// stripCredentials removes "user:password@" from the authority of one URL
// and replaces the value of each query parameter whose name says it is a
// secret. It works on the text rather than through url.Parse so that a URL
// that does not parse is still cleaned: the userinfo ends at the last "@"
// that a host follows, even when the password holds a "/", "?" or "#".
func stripCredentials(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	if at := userinfoEnd(rest); at >= 0 {
		u = u[:i+3] + rest[at+1:]
	}
	q := strings.IndexByte(u, '?')
	if q < 0 {
		return u
	}
	query, frag, _ := strings.Cut(u[q+1:], "#")
	params := strings.Split(query, "&")
	for j, p := range params {
		if k, v, ok := strings.Cut(p, "="); ok && v != "" && IsSecretName(k) {
			params[j] = k + "=" + redacted
		}
	}
	out := u[:q+1] + strings.Join(params, "&")
	if frag != "" || strings.Contains(u[q+1:], "#") {
		out += "#" + frag
	}
	return out
}

// hostAfterAt matches what follows the "@" that ends a URL's userinfo: a
// host (a name, an address, a bracketed IPv6 address, or nothing), an
// optional port, then the end of the authority.
var hostAfterAt = regexp.MustCompile(`^(?:\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._~%-]*)(?::[^/?#\s@]*)?(?:[/?#,;]|\s|$)`)

// userinfoEnd returns the index in rest (a URL after its "://") of the "@"
// that ends its userinfo, or -1. It is the last "@" that a host follows,
// so a password may hold "/", "?", "#", "@" or a space. A candidate
// without a ":" (a lone user name) that holds a "/", "?" or "#" is taken
// for a path's "@" instead.
func userinfoEnd(rest string) int {
	for at := strings.LastIndexByte(rest, '@'); at >= 0; at = strings.LastIndexByte(rest[:at], '@') {
		if !hostAfterAt.MatchString(rest[at+1:]) {
			continue
		}
		cand := rest[:at]
		if !strings.Contains(cand, ":") && strings.ContainsAny(cand, "/?#") {
			return -1
		}
		return at
	}
	return -1
}

// URLSecrets returns the credentials raw carries, whether or not it parses
// as a URL: the password of its userinfo (or a lone user name, which is a
// token), the values of query parameters whose name says they are
// secrets, each also percent-decoded, and the base64 of "user:password"
// that basic authentication sends (a server may echo the header). A
// comma-separated list of URLs (NATS servers, Kafka brokers) gives the
// credentials of each.
func URLSecrets(raw string) []string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "@") && !strings.Contains(raw, "?") {
		return nil // the common case: no userinfo, no query
	}
	var out []string
	add := func(vs ...string) {
		for _, v := range vs {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	if n := strings.Count(raw, "://"); n == 1 || (n == 0 && !strings.Contains(raw, ",")) {
		// One URL, whose password may hold a comma.
		add(oneURLSecrets(raw)...)
	}
	if strings.Contains(raw, ",") {
		for _, part := range strings.Split(raw, ",") {
			add(oneURLSecrets(strings.TrimSpace(part))...)
		}
	}
	return out
}

// oneURLSecrets returns the credentials of one URL (see URLSecrets).
func oneURLSecrets(raw string) []string {
	rest, scheme := raw, false
	if i := strings.Index(raw, "://"); i >= 0 {
		rest, scheme = raw[i+3:], true
	}
	var out []string
	decoded := func(v string) []string {
		if d, err := url.PathUnescape(v); err == nil && d != v {
			return []string{v, d}
		}
		return []string{v}
	}
	if at := userinfoEnd(rest); at >= 0 {
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		// "host:9090/?x=a@b" (no scheme) is no userinfo: without a scheme,
		// only a user name made of the characters a URL's may hold counts.
		if scheme || (hasPass && validUser(user)) {
			if hasPass {
				out = append(out, decoded(pass)...)
				for _, u := range decoded(user) {
					for _, p := range decoded(pass) {
						out = append(out, base64.StdEncoding.EncodeToString([]byte(u+":"+p)))
					}
				}
			} else {
				out = append(out, decoded(user)...)
			}
			rest = rest[at+1:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		query, _, _ := strings.Cut(rest[q+1:], "#")
		for _, p := range strings.Split(query, "&") {
			k, v, ok := strings.Cut(p, "=")
			if dk, err := url.QueryUnescape(k); err == nil {
				k = dk
			}
			if ok && v != "" && IsSecretName(k) {
				out = append(out, v)
				if d, err := url.QueryUnescape(v); err == nil && d != v {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// validUser reports whether s can be the user name of a URL written
// without its scheme ("bob:pw@kafka:9092"), not the text before an "@" of
// a query ("rate(x[5m]) @ 1609746000").
func validUser(s string) bool {
	for _, r := range s {
		if !(r < 0x80 && (r == '-' || r == '.' || r == '_' || r == '~' || r == '%' || r == '!' || r == '$' || r == '&' ||
			r == '\'' || r == '*' || r == '+' || r == '=' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'))) {
			return false
		}
	}
	return true
}

// SecretForms returns the forms in which a secret value may be printed:
// itself, without its "FlyV1 " or "Bearer " scheme, each comma-separated
// part (a Fly token is a list of macaroons), and each of these
// URL-escaped, JSON-escaped (with and without the escaping of <, > and &),
// quoted as Go quotes (%q, slog's text logs) and Markdown-escaped.
func SecretForms(value string) []string {
	var out []string
	add := func(v string) {
		v = strings.TrimSpace(v)
		if v == "" {
			return
		}
		for _, f := range escapedForms(v) {
			if f != "" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	add(value)
	_, rest, _ := CutScheme(strings.TrimSpace(value))
	add(rest)
	if strings.Contains(rest, ",") {
		for _, part := range strings.Split(rest, ",") {
			add(part)
		}
	}
	return out
}

// escapedForms returns v and the forms the output's encoders turn it into.
func escapedForms(v string) []string {
	out := []string{v, url.QueryEscape(v), url.PathEscape(v), markdownEscape(v)}
	if q := strconv.Quote(v); len(q) >= 2 {
		out = append(out, q[1:len(q)-1])
	}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			if j := strings.TrimSpace(b.String()); len(j) >= 2 {
				out = append(out, j[1:len(j)-1])
			}
		}
	}
	return out
}

// markdownEscape backslash-escapes what the Markdown report escapes (see
// cmd's mdEscape): the characters that end a table cell or start markup.
func markdownEscape(s string) string {
	if !strings.ContainsAny(s, "\\|`*_<>[]#~") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\|`*_<>[]#~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
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
