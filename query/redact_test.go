package query_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/prometheus"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// assertClean fails if any form of the values of err, or the source and its
// configuration, shows a secret.
func assertClean(t *testing.T, err error, secrets []string, printed ...any) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	texts := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		texts = append(texts, apiErr.Msg, apiErr.Detail)
	}
	for _, p := range printed {
		texts = append(texts, fmt.Sprintf("%v", p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprint(p))
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %q leaked in %q", s, text)
			}
		}
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	const (
		token = "fo1_TOKENSECRET123"
		pass  = "PASSWORDSECRET456"
		user  = "USERTOKENSECRET789"
	)
	secrets := []string{token, pass, user, "TOKENSECRET", "PASSWORDSECRET", "USERTOKENSECRET"}

	// echo answers 401 with the Authorization header in the body, as a
	// careless proxy might.
	echo := newLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "unauthorized: %s", r.Header.Get("Authorization"))
	}))
	fail := newLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"bad auth %s"}`, r.Header.Get("Authorization"))
	}))
	closed := closedAddr(t)
	withUser := func(base, userinfo string) string {
		return strings.Replace(base, "http://", "http://"+userinfo+"@", 1)
	}

	tests := []struct {
		name    string
		address string
		token   string
		query   string
	}{
		{name: "password in address, 401", address: withUser(echo.URL, "admin:"+pass)},
		{name: "token as user in address, 401", address: withUser(echo.URL, user)},
		{name: "token field, 401", address: echo.URL, token: token},
		{name: "macaroon token field, 401", address: echo.URL, token: "FlyV1 " + token},
		{name: "token field, api error echoing it", address: fail.URL, token: token},
		{name: "password in address, connection refused", address: withUser(closed, "admin:"+pass)},
		{name: "token as user in address, connection refused", address: withUser(closed, user)},
		{name: "token field, connection refused", address: closed, token: token},
		{name: "per-app query, connection refused", address: withUser(closed, user), token: token, query: perAppQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.query == "" {
				tt.query = "up"
			}
			cfg := prometheus.Config{Name: "q", Address: tt.address, Query: tt.query, Token: tt.token}
			p := newProm(t, cfg)
			_, err := p.Collect(context.Background(), "my-app")
			assertClean(t, err, secrets, cfg, p)

			set, serr := query.NewSet(p)
			if serr != nil {
				t.Fatal(serr)
			}
			set.Prefetch(context.Background(), []string{"my-app"})
			_, err = set.Collect(context.Background(), "my-app")
			assertClean(t, err, secrets, set)
		})
	}

	t.Run("invalid address", func(t *testing.T) {
		cfg := prometheus.Config{Name: "q", Address: "http://admin:" + pass + "@host:port/", Query: "up", Token: token}
		_, err := prometheus.New(cfg)
		assertClean(t, err, secrets, cfg)
		cfg.Address = "ftp://" + user + "@host/"
		_, err = prometheus.New(cfg)
		assertClean(t, err, secrets, cfg)
	})
}

// TestRedactErrorTakesEveryForm: a source's error that echoes one of its
// secrets escaped (a password percent-encoded in a URL, or quoted) is
// redacted in that form too, and still unwraps to the error it came from.
func TestRedactErrorTakesEveryForm(t *testing.T) {
	t.Parallel()
	const secret = `p@ss/w0rd:"Zx9"`
	red := redact.ForSecrets(secret)
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.Trim(strconv.Quote(secret), `"`)} {
		cause := errors.New("nats: authorization violation for " + form)
		err := query.RedactError(cause, red)
		if strings.Contains(err.Error(), form) || !strings.Contains(err.Error(), redact.Redacted) {
			t.Errorf("form %q: %q", form, err)
		}
		if !errors.Is(err, cause) {
			t.Errorf("form %q: no longer unwraps to its cause", form)
		}
	}
	if cause := errors.New("nothing secret"); query.RedactError(cause, red) != cause {
		t.Errorf("an error without a secret is not returned as it is")
	}
}
