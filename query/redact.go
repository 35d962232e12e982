package query

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// redacted replaces a secret in text.
const redacted = "REDACTED"

// urlPattern finds URLs in free text, such as the "Post \"https://...\"" of a
// *url.Error.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// Redact returns s with the userinfo (user:password@) of every URL in it
// removed and every non-empty secret replaced by REDACTED. Use it on any text
// that may hold an address or a token before it is printed.
func Redact(s string, secrets ...string) string {
	// Longest first, so a secret that contains another is replaced whole.
	sorted := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		if sec != "" {
			sorted = append(sorted, sec)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, sec := range sorted {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return urlPattern.ReplaceAllStringFunc(s, stripUserinfo)
}

// RedactURL returns raw without its userinfo, for printing an address.
func RedactURL(raw string) string {
	return Redact(raw)
}

// stripUserinfo removes "user:password@" from the authority of one URL. It
// works on the text rather than through url.Parse so that a URL that does not
// parse is still cleaned.
func stripUserinfo(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return u
	}
	return u[:i+3] + rest[at+1:]
}

// secrets returns the strings that must never appear in text about a source
// configured with token and the userinfo of its address.
func secrets(token string, user *url.Userinfo) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	add(token)
	if _, rest, ok := cutScheme(token); ok {
		add(rest)
	}
	if user != nil {
		pass, hasPass := user.Password()
		add(pass)
		if !hasPass {
			// "https://TOKEN@host": a lone user name is a token.
			add(user.Username())
		}
	}
	return out
}

// redactError returns err with secrets removed from its text. The result
// still unwraps to err, so errors.Is and errors.As keep working; the body of
// a Prometheus API error (its Detail) is cleaned in place.
func redactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		apiErr.Msg = Redact(apiErr.Msg, secrets...)
		apiErr.Detail = Redact(apiErr.Detail, secrets...)
	}
	msg := err.Error()
	clean := Redact(msg, secrets...)
	if apiErr != nil && apiErr.Detail != "" && !strings.Contains(clean, apiErr.Detail) {
		// The answer's body says what went wrong; client_golang keeps it
		// out of Error().
		clean += ": " + truncate(strings.Join(strings.Fields(apiErr.Detail), " "), 200)
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// cutScheme splits an authorization scheme ("FlyV1 ", "Bearer ") off token.
func cutScheme(token string) (scheme, rest string, ok bool) {
	for _, s := range []string{"FlyV1 ", "Bearer "} {
		if len(token) > len(s) && strings.EqualFold(token[:len(s)], s) {
			return token[:len(s)-1], token[len(s):], true
		}
	}
	return "", token, false
}

// authorization returns the Authorization header value for token, or for the
// credentials of the address when token is empty: a Fly macaroon token
// ("FlyV1 ...") and a token that already carries "Bearer " are sent verbatim,
// any other token as "Bearer <token>".
func authorization(token string, user *url.Userinfo) string {
	if token != "" {
		if _, _, ok := cutScheme(token); ok {
			return token
		}
		return "Bearer " + token
	}
	if user != nil {
		pass, _ := user.Password()
		r := http.Request{Header: http.Header{}}
		r.SetBasicAuth(user.Username(), pass)
		return r.Header.Get("Authorization")
	}
	return ""
}

// authTransport sets the Authorization header on every request.
type authTransport struct {
	header string
	base   http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.header != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", t.header)
	}
	return t.base.RoundTrip(req)
}
