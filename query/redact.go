package query

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// Redacted replaces a secret in text.
const Redacted = "REDACTED"

const redacted = Redacted

// The redaction policy, one for every package that prints text which may
// hold a secret (cmd's output streams, this package's errors).
const (
	// MinSecretLen is the length below which a value is not treated as a
	// secret: blanking "app" or "tok" would mangle ordinary words, and no
	// real token or password is that short.
	MinSecretLen = 6
	// PieceLen is the length of the pieces of a secret that are redacted
	// on their own: a message that quotes part of a token (a parser stops
	// at the first character it cannot read, a cell is truncated) shows no
	// run of this many characters of it.
	PieceLen = 8
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
// PieceLen characters of one. Values shorter than MinSecretLen are not
// secrets. Use it on any text that may hold an address or a token before it
// is printed.
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
// that does not parse is still cleaned.
func stripCredentials(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
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

// URLSecrets returns the credentials raw carries: the password of its
// userinfo (or a lone user name, which is a token), and the values of
// query parameters whose name says they are secrets.
func URLSecrets(raw string) []string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		// "host:9090/?token=x", a URL whose scheme was forgotten, still
		// carries its credentials.
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil
	}
	var out []string
	if u.User != nil {
		if pass, ok := u.User.Password(); ok {
			out = append(out, pass)
		} else {
			out = append(out, u.User.Username())
		}
	}
	for k, vs := range u.Query() {
		if IsSecretName(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// SecretForms returns the forms in which a secret value may be printed:
// itself, without its "FlyV1 " or "Bearer " scheme, each comma-separated
// part (a Fly token is a list of macaroons), and URL-escaped. Forms shorter
// than MinSecretLen are left out.
func SecretForms(value string) []string {
	var out []string
	add := func(v string) {
		v = strings.TrimSpace(v)
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if len(f) >= MinSecretLen && !slices.Contains(out, f) {
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

// Redactor replaces secrets, and every run of PieceLen characters of one,
// in text, ignoring letter case (a value echoed lowercased is still found).
// It is not safe for concurrent use.
type Redactor struct {
	// pieces holds, per length, the lowercased pieces to find: the
	// PieceLen-character windows of each secret, or a shorter secret whole.
	pieces map[int]map[string]bool
	// prefixes holds the proper prefixes of the pieces, for Holdback.
	prefixes map[string]bool
	lens     []int
	// starts is a filter of where a piece can start: the bit of the first
	// four bytes of every piece (see startBit) is set. Most of a text's
	// positions are ruled out by one bit, not a map lookup per length.
	starts [1 << (startBits - 6)]uint64
	// added holds the secrets added, each added once.
	added map[string]bool
}

// startBits is the size, in bits of hash, of Redactor.starts: 2^16 bits
// (8 KiB), so that a few hundred pieces leave a random position of a
// text about one chance in a hundred of a lookup.
const startBits = 16

// startBit hashes the four bytes at the start of s (at least four) to a
// bit of Redactor.starts. Every piece is at least MinSecretLen long.
func startBit(s string) uint32 {
	v := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
	return (v * 0x9E3779B1) >> (32 - startBits)
}

// NewRedactor returns a Redactor of secrets, each taken as it is (see
// SecretForms for the forms a value may take).
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{pieces: map[int]map[string]bool{}, prefixes: map[string]bool{}, added: map[string]bool{}}
	r.Add(secrets...)
	return r
}

// Add adds secrets; those shorter than MinSecretLen are ignored.
func (r *Redactor) Add(secrets ...string) {
	for _, sec := range secrets {
		if len(sec) < MinSecretLen {
			continue
		}
		sec = lowerASCII(sec)
		if r.added[sec] {
			continue
		}
		r.added[sec] = true
		n := min(len(sec), PieceLen)
		if r.pieces[n] == nil {
			r.pieces[n] = map[string]bool{}
			r.lens = append(r.lens, n)
			slices.Sort(r.lens)
		}
		for i := 0; i+n <= len(sec); i++ {
			piece := sec[i : i+n]
			if piece[0] == ' ' || piece[n-1] == ' ' {
				continue // the neighbours cover it; the text's spaces stay
			}
			r.pieces[n][piece] = true
			bit := startBit(piece)
			r.starts[bit/64] |= 1 << (bit % 64)
			for j := 1; j < n; j++ {
				r.prefixes[piece[:j]] = true
			}
		}
	}
}

// Redact returns s with every secret and every piece of one replaced by
// REDACTED, and the credentials of URLs removed.
func (r *Redactor) Redact(s string) string {
	if len(r.lens) > 0 {
		s = r.replace(s)
	}
	return RedactURL(s)
}

func (r *Redactor) replace(s string) string {
	lower := lowerASCII(s)
	var b strings.Builder
	last, end := 0, -1 // [start, end) is the span being covered
	start := 0
	for i := range len(lower) - MinSecretLen + 1 {
		if bit := startBit(lower[i:]); r.starts[bit/64]&(1<<(bit%64)) == 0 {
			continue
		}
		for _, n := range r.lens {
			if i+n <= len(lower) && r.pieces[n][lower[i:i+n]] {
				if i > end {
					if end >= 0 {
						b.WriteString(s[last:start])
						b.WriteString(redacted)
						last = end
					}
					start = i
				}
				end = max(end, i+n)
			}
		}
	}
	if end < 0 {
		return s
	}
	b.WriteString(s[last:start])
	b.WriteString(redacted)
	b.WriteString(s[end:])
	return b.String()
}

// Holdback returns the length of the longest end of s that could be the
// start of a secret: a writer that redacts a stream keeps it back until
// the next write tells.
func (r *Redactor) Holdback(s string) int {
	if len(r.lens) == 0 {
		return 0
	}
	for k := min(len(s), r.lens[len(r.lens)-1]-1); k > 0; k-- {
		if r.prefixes[lowerASCII(s[len(s)-k:])] {
			return k
		}
	}
	return 0
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

// secrets returns the strings that must never appear in text about a source
// configured with token and the userinfo of its address.
func secrets(token string, user *url.Userinfo) []string {
	out := SecretForms(token)
	if user != nil {
		pass, hasPass := user.Password()
		out = append(out, SecretForms(pass)...)
		if !hasPass {
			// "https://TOKEN@host": a lone user name is a token.
			out = append(out, SecretForms(user.Username())...)
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
	r := NewRedactor(secrets...)
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		apiErr.Msg = r.Redact(apiErr.Msg)
		apiErr.Detail = r.Redact(apiErr.Detail)
	}
	msg := err.Error()
	clean := r.Redact(msg)
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

// authorization returns the Authorization header value for token, or for the
// credentials of the address when token is empty: a Fly macaroon token
// ("FlyV1 ...") and a token that already carries "Bearer " are sent verbatim,
// any other token as "Bearer <token>".
func authorization(token string, user *url.Userinfo) string {
	if token != "" {
		if _, _, ok := CutScheme(token); ok {
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
