package redact

// Credentials in URLs, and the forms a secret may be printed in.

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
	out := []string{v, url.QueryEscape(v), url.PathEscape(v), MarkdownEscape(v)}
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

// MarkdownEscape backslash-escapes the characters that would end a
// Markdown table cell or start inline markup or HTML. The Markdown report
// escapes with it, so a secret's escaped form is one SecretForms lists.
func MarkdownEscape(s string) string {
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

// CredentialSecrets returns the strings that must never appear in text
// about a source configured with token and the userinfo of its address.
func CredentialSecrets(token string, user *url.Userinfo) []string {
	out := SecretForms(token)
	if user != nil {
		pass, hasPass := user.Password()
		out = append(out, SecretForms(pass)...)
		if !hasPass {
			// "https://TOKEN@host": a lone user name is a token.
			out = append(out, SecretForms(user.Username())...)
		} else {
			// What basic authentication sends, which a server may echo.
			out = append(out, base64.StdEncoding.EncodeToString([]byte(user.Username()+":"+pass)))
		}
	}
	return out
}
