package redact

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{`Post "https://user:pass@host/api/v1/query": EOF`, nil, `Post "https://host/api/v1/query": EOF`},
		{`Post "https://tok@host:9090/x": EOF`, nil, `Post "https://host:9090/x": EOF`},
		{`a http://u:p@one/ and https://u2:p2@two?x=1#f`, nil, `a http://one/ and https://two?x=1#f`},
		{`http://host/path@notuserinfo`, nil, `http://host/path@notuserinfo`},
		{`no url here`, nil, `no url here`},
		{`header was Bearer s3cr3t`, []string{"s3cr3t", ""}, `header was Bearer REDACTED`},
		{`FlyV1 fm2_abc,fm2_def`, []string{"fm2_abc", "FlyV1 fm2_abc,fm2_def"}, `REDACTED`},
		{`user:p%40ss@`, []string{"p@ss", "p%40ss"}, `user:REDACTED@`},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.secrets...); got != tt.want {
			t.Errorf("Redact(%q, %q) = %q, want %q", tt.in, tt.secrets, got, tt.want)
		}
	}
	if got := RedactURL("https://user:pass@api.fly.io/prometheus/org"); got != "https://api.fly.io/prometheus/org" {
		t.Errorf("RedactURL = %q", got)
	}
}

func TestIsSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"FAS_API_TOKEN": true, "DB_PWD": true, "TEMPORAL_TLS_KEY_DATA": true, "api-key": true, "key-data": true,
		"PWD": false, "OLDPWD": false, "FAS_TEMPORAL_ADDRESS": false, "cert-data": false,
	} {
		if got := IsSecretName(name); got != want {
			t.Errorf("IsSecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRedactorPolicy(t *testing.T) {
	const tok = "FlyV1 fm2_AbCdEfGhIjKlMnOp,fm2_QrStUvWxYz012345"
	r := NewRedactor(SecretForms(tok)...)
	for in, want := range map[string]string{
		"token " + tok + " end":                   "token REDACTED end",
		"lowered fm2_abcdefghijklmnop":            "lowered REDACTED",
		"a piece: CdEfGhIj.":                      "a piece: REDACTED.",
		"short: CdEfG":                            "short: CdEfG",
		"escaped " + url.QueryEscape(tok):         "escaped REDACTED",
		"https://u:pw@host/x?token=abc&job=j#f":   "https://host/x?token=REDACTED&job=j#f",
		"http://host:9/?access_token=x&api_key=y": "http://host:9/?access_token=REDACTED&api_key=REDACTED",
		"no secret, no url: app, tok, fm2_zz":     "no secret, no url: app, tok, fm2_zz",
	} {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	// A value shorter than MinSecretLen is redacted only as a whole word.
	for in, want := range map[string]string{
		"the app is up":         "the REDACTED is up",
		"apps, my-app, app_x":   "apps, my-app, app_x",
		"Bearer APP.":           "Bearer REDACTED.",
		"u:app@host and app":    "u:REDACTED@host and REDACTED",
		"application happy app": "application happy REDACTED",
	} {
		if got := Redact(in, "app"); got != want {
			t.Errorf("Redact(%q, app) = %q, want %q", in, got, want)
		}
	}
	short := NewRedactor("tok")
	for s, want := range map[string]int{"Bearer to": 2, "Bearer tok": 3, "x tokens": 0, "atok": 0, "to": 2} {
		if n := short.Holdback(s); n != want {
			t.Errorf("Holdback(%q) of a short secret = %d, want %d", s, n, want)
		}
	}
	// Holdback keeps the end of a text that may start a secret.
	if n := r.Holdback("text fm2_A"); n != len("fm2_A") {
		t.Errorf("Holdback = %d, want %d", n, len("fm2_A"))
	}
	if n := r.Holdback("text done\n"); n != 0 {
		t.Errorf("Holdback of a finished line = %d", n)
	}
	for raw, want := range map[string]string{
		"https://user:pass-word@host/?token=t0k3n-value&x=1": "dXNlcjpwYXNzLXdvcmQ=,pass-word,t0k3n-value",
		"host:9091/?password=hunter22":                       "hunter22",
		"https://lonetoken@host":                             "lonetoken",
		"not a url":                                          "",
		// The userinfo is found in URLs that do not parse, whatever the
		// password holds, and in every URL of a list.
		"http://admin:Xk9q/Zt7Lm2w@127.0.0.1:9":           "Xk9q/Zt7Lm2w,YWRtaW46WGs5cS9adDdMbTJ3",
		"nats://127.0.0.1:1, nats://bob:Qw3rTy9Uio0p@h:2": "Qw3rTy9Uio0p,Ym9iOlF3M3JUeTlVaW8wcA==",
		"k:1,bob:pa%zz@k:2":                               "Ym9iOnBhJXp6,pa%zz",
		"rate(x[5m]) @ 1609746000":                        "",
		"http://host/path@notuserinfo":                    "",
	} {
		got := URLSecrets(raw)
		slices.Sort(got)
		if strings.Join(got, ",") != want {
			t.Errorf("URLSecrets(%q) = %q, want %q", raw, got, want)
		}
	}
}

// BenchmarkRedactReport redacts a JSON report of 1,000 apps, as the
// command's output streams do, with a Fly token and a Prometheus token
// known in each of their forms, none of which the report holds.
func BenchmarkRedactReport(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, `{"app":"bench-%05d","policy":"","status":"unchanged","reason":"","elapsed_seconds":0.021,"metrics":{"queue_depth":20},"current":{"started":2,"created":5},"target":{"started":2,"created":5},"warnings":[],"actions":[]},`+"\n", i)
	}
	text := sb.String()
	r := NewRedactor(append(SecretForms("FlyV1 fm2_lJPECAAAAAAAAMl7xBDmGvMkKxHCWWsuL6U1qqCXwrVodHRwczovL2FwaS5mbHkuaW8vdjGUAJLOAAP7jx8Lk7lodHRwczovL2FwaS5mbHkuaW8vYWFhL3YxxDzEd0PW4BzDpb2g"),
		SecretForms("glc_eyJvIjoiMTIzNDU2IiwibiI6InN0YWNrLTEyMzQ1Ni1obS1yZWFkIiwiayI6IkFCQ0RFRkdISUoifQ==")...)...)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if out := r.Redact(text); len(out) != len(text) {
			b.Fatal("the report was changed")
		}
	}
}

// TestRedactEveryPosition: a secret, or any run of PieceLen characters of
// one, in any letter case, is redacted wherever it stands in a text: at its
// start, its end, alone, or amid other secrets' pieces and look-alikes that
// share its first characters (which the filter of where a piece can start
// lets through to the lookup).
func TestRedactEveryPosition(t *testing.T) {
	secrets := []string{"abc123", "Zq9-longer_Secret/value", "abc1XYZW"}
	r := NewRedactor(secrets...)
	for _, sec := range secrets {
		forms := []string{sec, strings.ToUpper(sec), strings.ToLower(sec)}
		if len(sec) >= 3+PieceLen {
			forms = append(forms, sec[3:3+PieceLen], sec[len(sec)-PieceLen:])
		}
		for _, form := range forms {
			for _, text := range []string{form, "x" + form, form + "y", "abc12 " + form + " abc1", "abc1" + form} {
				got := r.Redact(text)
				if strings.Contains(strings.ToLower(got), strings.ToLower(form)) || !strings.Contains(got, "REDACTED") {
					t.Errorf("Redact(%q) = %q: %q not redacted", text, got, form)
				}
			}
		}
	}
	for _, text := range []string{"", "abc12", "abc12 abc1 abc1X", "abc1234"[:5]} {
		if got := r.Redact(text); got != text {
			t.Errorf("Redact(%q) = %q, want it unchanged", text, got)
		}
	}
}
