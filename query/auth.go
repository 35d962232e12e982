package query

import (
	"net/http"
	"net/url"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// Authorization returns the Authorization header value for token, or for the
// credentials of the address when token is empty: a Fly macaroon token
// ("FlyV1 ...") and a token that already carries "Bearer " are sent verbatim,
// any other token as "Bearer <token>".
func Authorization(token string, user *url.Userinfo) string {
	if token != "" {
		if _, _, ok := redact.CutScheme(token); ok {
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
