package query

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// The redaction policy lives in query/redact; these are its names as this
// package and its users have long called them.
const (
	Redacted     = redact.Redacted
	MinSecretLen = redact.MinSecretLen
	PieceLen     = redact.PieceLen
)

const redacted = Redacted

// Redactor replaces secrets in text (see redact.Redactor).
type Redactor = redact.Redactor

var (
	IsSecretName = redact.IsSecretName
	Redact       = redact.Redact
	RedactURL    = redact.RedactURL
	URLSecrets   = redact.URLSecrets
	SecretForms  = redact.SecretForms
	NewRedactor  = redact.NewRedactor
	CutScheme    = redact.CutScheme
)

// CredentialSecrets returns the strings that must never appear in text about a source
// configured with token and the userinfo of its address.
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

// RedactError returns err with secrets removed from its text. The result
// still unwraps to err, so errors.Is and errors.As keep working; the body of
// a Prometheus API error (its Detail) is cleaned in place.
func RedactError(err error, secrets []string) error {
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

// Authorization returns the Authorization header value for token, or for the
// credentials of the address when token is empty: a Fly macaroon token
// ("FlyV1 ...") and a token that already carries "Bearer " are sent verbatim,
// any other token as "Bearer <token>".
func Authorization(token string, user *url.Userinfo) string {
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

// AuthTransport sets the Authorization header on every request.
type AuthTransport struct {
	Header string
	Base   http.RoundTripper
}

func (t *AuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Header != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", t.Header)
	}
	return t.Base.RoundTrip(req)
}
