package cmd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// credentialShapes are the shapes of credential that issue 19 found
// printed: passwords that make a URL unparseable, characters that the
// Markdown and JSON encoders escape, a password that parses (so that it is
// sent, as basic authentication a server echoes), and one shorter than
// redact.MinSecretLen.
var credentialShapes = []struct{ name, secret string }{
	{"slash", "Xk9q/Zt7Lm2w"},
	{"hash", "Hj4k#Lp9Qz2v"},
	{"question mark", "Rt7m?Nq2Wx8c"},
	{"double quote", `Pq8v"Bn3Kd5f`},
	{"backtick", "Bk5t`Yu1Op4g"},
	{"less than", "Lm6z<Xc4Vb7h"},
	{"space", "Gh2j Kl8Mn3r"},
	{"bad escape", "Wd9%zzTy4Ui6"},
	{"markdown", "tok*en|with*stars|99x"},
	{"json", `tok"en\with"q\99x`},
	{"plain", "Qw3rTy9Uio0p"},
	{"short", "Zq9x"},
}

// shapesToken is the Fly API token of the runs whose planted secret is
// elsewhere.
const shapesToken = "FlyV1 fm2_Sh4pesOfCredent1als"

// shapeServers are the servers the planted settings point at: each echoes
// what it was sent.
type shapeServers struct {
	fly    string // flytest, for GraphQL and the Machines API
	echo   string // answers every request 400, echoing it
	gw     *promtest.Pushgateway
	closed string // host:port where nothing listens
}

// echoServer answers every request with 400 and a JSON body that echoes
// its Authorization header, path and query: an API error, a Prometheus
// error and a Pushgateway refusal alike.
func echoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, _ := json.Marshal(fmt.Sprintf("denied %s at %s?%s", r.Header.Get("Authorization"), r.URL.Path, r.URL.RawQuery))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%s,"errors":[{"message":%s}]}`, msg, msg)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// plant is one setting a credential can be given to: it returns the
// arguments, variables and config file of a run with secret in it.
type plant struct {
	name string
	run  func(sv shapeServers, secret string) (args []string, env Env, yaml string)
}

// withUser puts user:secret@ into the URL base (http://host:port).
func withUser(base, user, secret string) string {
	return strings.Replace(base, "://", "://"+user+":"+secret+"@", 1)
}

func hostOf(u string) string { return strings.TrimPrefix(u, "http://") }

// plants are every URL-valued and secret setting, as a flag, a variable,
// a config key and a ${VAR} expansion.
func plants() []plant {
	promArgs := []string{"--prometheus-metric-name", "q", "--prometheus-query", "up", "--started-machine-count", "q"}
	promYAML := func(address, token string) string {
		return "app-name: web\norg: my-org\nstarted-machine-count: q\nmetric-collectors:\n  - {type: prometheus, metric-name: q, query: up, address: '" +
			address + "', token: '" + token + "'}\n"
	}
	one := []string{"--started-machine-count", "1"}
	return []plant{
		{"--prometheus-address", func(sv shapeServers, s string) ([]string, Env, string) {
			return append([]string{"--prometheus-address", withUser(sv.echo, "user", s)}, promArgs...), nil, ""
		}},
		{"FAS_PROMETHEUS_ADDRESS", func(sv shapeServers, s string) ([]string, Env, string) {
			return promArgs, Env{"FAS_PROMETHEUS_ADDRESS": withUser(sv.echo, "user", s)}, ""
		}},
		{"YAML address", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, nil, promYAML(withUser(sv.echo, "user", s), "")
		}},
		{"YAML address ${VAR}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"PROM_URL": withUser(sv.echo, "user", s)}, promYAML("${PROM_URL}", "")
		}},
		{"--prometheus-token", func(sv shapeServers, s string) ([]string, Env, string) {
			return append([]string{"--prometheus-address", sv.echo, "--prometheus-token", s}, promArgs...), nil, ""
		}},
		{"YAML token ${VAR}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"PROM_TOKEN": s}, promYAML(sv.echo, "${PROM_TOKEN}")
		}},
		{"--pushgateway", func(sv shapeServers, s string) ([]string, Env, string) {
			return append([]string{"--pushgateway", withUser(sv.echo, "user", s)}, one...), nil, ""
		}},
		{"YAML pushgateway ${VAR}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"GW_URL": withUser(sv.echo, "user", s)}, "app-name: web\norg: my-org\nstarted-machine-count: 1\npushgateway: '${GW_URL}'\n"
		}},
		{"FLY_API_BASE_URL", func(sv shapeServers, s string) ([]string, Env, string) {
			return one, Env{"FLY_API_BASE_URL": withUser(sv.echo, "user", s)}, ""
		}},
		{"FLY_FLAPS_BASE_URL", func(sv shapeServers, s string) ([]string, Env, string) {
			return one, Env{"FLY_FLAPS_BASE_URL": withUser(sv.echo, "user", s)}, ""
		}},
		{"FAS_API_TOKEN echoed by the Machines API", func(sv shapeServers, s string) ([]string, Env, string) {
			return one, Env{"FAS_API_TOKEN": s, "FLY_FLAPS_BASE_URL": sv.echo}, ""
		}},
		{"FAS_API_TOKEN echoed by GraphQL", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--apps", "w*", "--started-machine-count", "1"}, Env{"FAS_API_TOKEN": s, "FLY_API_BASE_URL": sv.echo}, ""
		}},
		{"YAML api-token", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"FAS_API_TOKEN": ""}, "app-name: web\norg: my-org\nstarted-machine-count: 1\napi-token: '" + s + "'\n"
		}},
		{"YAML api-token !!int", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, nil, "app-name: web\nstarted-machine-count: 1\napi-token: !!int '" + s + "'\n"
		}},
		{"YAML api-token !!seq", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, nil, "app-name: web\nstarted-machine-count: 1\napi-token: !!seq '" + s + "'\n"
		}},
		{"YAML concurrency !!float", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, nil, "app-name: web\nstarted-machine-count: 1\nconcurrency: !!float '" + s + "'\n"
		}},
		{"token in key position", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, nil, "app-name: web\nstarted-machine-count: 1\n'" + s + "': x\n"
		}},
		{"policy named ${FAS_API_TOKEN}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"FAS_API_TOKEN": s}, "org: my-org\napp-name: web\nstarted-machine-count: 1\npolicies:\n  - name: '${FAS_API_TOKEN}'\n    apps: [web]\n    started-machine-count: 2\n"
		}},
		{"org ${FAS_API_TOKEN}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"FAS_API_TOKEN": s}, "org: '${FAS_API_TOKEN}'\napp-name: 'w*'\nstarted-machine-count: 1\n"
		}},
		{"--nats-url, second URL", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--nats-url", "nats://" + sv.closed + "," + withUser("nats://"+sv.closed, "bob", s),
				"--nats-metric-name", "q", "--nats-stream", "st", "--nats-consumer", "c", "--started-machine-count", "q"}, nil, ""
		}},
		{"FAS_NATS_URL, second URL after a space", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--nats-metric-name", "q", "--nats-stream", "st", "--nats-consumer", "c", "--started-machine-count", "q"},
				Env{"FAS_NATS_URL": "nats://" + sv.closed + ", " + withUser("nats://"+sv.closed, "bob", s)}, ""
		}},
		{"YAML nats url ${VAR}, second URL", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"NATS_URLS": "nats://" + sv.closed + "," + withUser("nats://"+sv.closed, "bob", s)},
				"app-name: web\norg: my-org\nstarted-machine-count: q\nmetric-collectors:\n" +
					"  - {type: nats, metric-name: q, stream: st, consumer: c, url: '${NATS_URLS}'}\n"
		}},
		{"--nats-token", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--nats-url", "nats://" + sv.closed, "--nats-token", s,
				"--nats-metric-name", "q", "--nats-stream", "st", "--nats-consumer", "c", "--started-machine-count", "q"}, nil, ""
		}},
		{"--kafka-brokers, second broker", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--kafka-brokers", sv.closed + ",bob:" + s + "@" + sv.closed,
				"--kafka-metric-name", "q", "--kafka-topic", "tp", "--started-machine-count", "q"}, nil, ""
		}},
		{"YAML brokers ${VAR}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"BROKER": "bob:" + s + "@" + sv.closed}, "app-name: web\norg: my-org\nstarted-machine-count: q\nmetric-collectors:\n" +
				"  - {type: kafka, metric-name: q, topic: tp, brokers: ['" + sv.closed + "', '${BROKER}']}\n"
		}},
		{"YAML brokers string, second after a space", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"KAFKA_PASSWORD_X": s}, "app-name: web\norg: my-org\nstarted-machine-count: q\nmetric-collectors:\n" +
				"  - {type: kafka, metric-name: q, topic: tp, brokers: '" + sv.closed + ", bob:${KAFKA_PASSWORD_X}@" + sv.closed + "'}\n"
		}},
		{"--kafka-password", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--kafka-brokers", sv.closed, "--kafka-sasl-mechanism", "plain", "--kafka-username", "bob", "--kafka-password", s,
				"--kafka-metric-name", "q", "--kafka-topic", "tp", "--started-machine-count", "q"}, nil, ""
		}},
		{"--temporal-address", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--temporal-address", "user:" + s + "@" + sv.closed, "--temporal-metric-name", "q", "--temporal-namespace", "ns",
				"--temporal-task-queue", "tq", "--started-machine-count", "q"}, nil, ""
		}},
		{"YAML temporal address ${VAR}", func(sv shapeServers, s string) ([]string, Env, string) {
			return nil, Env{"TEMPORAL_ADDR": "user:" + s + "@" + sv.closed}, "app-name: web\norg: my-org\nstarted-machine-count: q\nmetric-collectors:\n" +
				"  - {type: temporal, metric-name: q, namespace: ns, task-queue: tq, address: '${TEMPORAL_ADDR}'}\n"
		}},
		{"--temporal-api-key", func(sv shapeServers, s string) ([]string, Env, string) {
			return []string{"--temporal-address", sv.closed, "--temporal-api-key", s, "--temporal-metric-name", "q", "--temporal-namespace", "ns",
				"--temporal-task-queue", "tq", "--started-machine-count", "q"}, nil, ""
		}},
	}
}

// secretFormsOf returns the forms in which secret could be printed,
// computed here rather than by the redactor: itself, percent-encoded and
// decoded, JSON-escaped (with and without <, >, & escaped), Go-quoted,
// Markdown-escaped, and the base64 of user:secret for each user a URL
// gave it with.
func secretFormsOf(secret string, users ...string) []string {
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	if d, err := url.PathUnescape(secret); err == nil {
		forms = append(forms, d)
	}
	for _, html := range []bool{true, false} {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(secret)
		forms = append(forms, strings.Trim(strings.TrimSpace(b.String()), `"`))
	}
	forms = append(forms, strings.Trim(strconv.Quote(secret), `"`))
	var md strings.Builder
	for _, r := range secret {
		if strings.ContainsRune("\\|`*_<>[]#~", r) {
			md.WriteByte('\\')
		}
		md.WriteRune(r)
	}
	forms = append(forms, md.String())
	for _, u := range users {
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(u+":"+secret)))
	}
	// The run of letters and digits a password starts with, which a parser
	// quotes when it stops at the first character it cannot read (invalid
	// port ":Xk9q" after host), counts as a word of its own.
	head := secret
	if i := strings.IndexFunc(secret, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}); i >= 0 {
		head = secret[:i]
	}
	if len(head) >= 4 && len(head) < redact.MinSecretLen {
		forms = append(forms, head)
	}
	return slices.Compact(forms)
}

// holdsSecret returns the first form of the secret, or 6-character piece
// of one, that text holds, ignoring letter case. A form shorter than
// redact.MinSecretLen counts where it stands as a whole word.
func holdsSecret(text string, forms []string) (string, bool) {
	lower := strings.ToLower(text)
	isWord := func(c byte) bool {
		return c >= 0x80 || c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z')
	}
	for _, f := range forms {
		f = strings.ToLower(f)
		if len(f) < redact.MinSecretLen {
			for off := 0; ; {
				i := strings.Index(lower[off:], f)
				if i < 0 {
					break
				}
				start, end := off+i, off+i+len(f)
				if (start == 0 || !isWord(lower[start-1])) && (end == len(lower) || !isWord(lower[end])) {
					return f, true
				}
				off = start + 1
			}
			continue
		}
		for i := 0; i+redact.MinSecretLen <= len(f); i++ {
			piece := f[i : i+redact.MinSecretLen]
			if piece[0] == ' ' || piece[len(piece)-1] == ' ' {
				continue // the text's own spaces
			}
			if strings.Contains(lower, piece) {
				return piece, true
			}
		}
	}
	return "", false
}

// runShape runs Main with env and args on streams whose redacting writer
// is turned off: what they hold was redacted at its source (the report
// when it was built, the logs' values, the errors), not by the net.
func runShape(t *testing.T, env Env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	s, out, errOut := BufferStreams()
	s.Out.(*redactWriter).passThrough = true
	s.Err.(*redactWriter).passThrough = true
	err := Main(t.Context(), append([]string{"fly-autoscaler"}, args...), env, s)
	if err != nil {
		fmt.Fprintln(s.Err, err.Error())
	}
	_ = s.Flush()
	return ExitCode(err), out.String(), errOut.String()
}

// TestSecretShapesNeverPrinted plants each credential shape into every
// URL-valued and secret setting, against servers that echo the
// Authorization header, the path and the query of each request in their
// error bodies, and checks that no form of the secret, nor any 6-character
// piece of one, appears in any output format, in text or JSON logs, with
// or without --verbose, or in what a real Pushgateway stores. The
// streams' redacting writer is off: the redaction at the source must
// suffice.
func TestSecretShapesNeverPrinted(t *testing.T) {
	t.Parallel()
	org, err := flytest.LoadOrg(filepath.Join("..", "testdata", "flytest", "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	fly := flytest.New(org, flytest.Options{})
	t.Cleanup(fly.Close)
	sv := shapeServers{fly: fly.URL, echo: echoServer(t), gw: promtest.StartPushgateway(t), closed: promtest.ClosedAddr(t)}
	for _, shape := range credentialShapes {
		forms := secretFormsOf(shape.secret, "user", "bob")
		for _, p := range plants() {
			t.Run(shape.name+"/"+p.name, func(t *testing.T) {
				args, env, yaml := p.run(sv, shape.secret)
				base := Env{"FLY_API_BASE_URL": sv.fly, "FLY_FLAPS_BASE_URL": sv.fly, "FAS_API_TOKEN": shapesToken}
				for k, v := range env {
					base[k] = v
				}
				if yaml == "" {
					args = append([]string{"--org", "my-org", "--apps", "web"}, args...)
				} else {
					args = append([]string{"--config", writeFile(t, "config.yml", yaml)}, args...)
				}
				if !slices.Contains(args, "--pushgateway") && !strings.Contains(yaml, "pushgateway:") {
					args = append(args, "--pushgateway", sv.gw.URL())
				}
				for _, format := range Formats {
					for _, logFormat := range []string{LogText, LogJSON} {
						for _, verbose := range []bool{false, true} {
							run := append([]string{"run", "--dry-run", "--timeout", "2s", "--output", format, "--log-format", logFormat}, args...)
							if verbose {
								run = append(run, "--verbose")
							}
							code, out, stderr := runShape(t, base, run...)
							what := fmt.Sprintf("%s, %s logs, verbose %v: exit %d", format, logFormat, verbose, code)
							if f, ok := holdsSecret(out, forms); ok {
								t.Errorf("%s: stdout holds %q:\n%s", what, f, out)
							}
							if f, ok := holdsSecret(stderr, forms); ok {
								t.Errorf("%s: stderr holds %q:\n%s", what, f, stderr)
							}
						}
					}
				}
				// eval shows the metrics and targets of the same settings.
				for _, format := range Formats {
					run := append([]string{"eval", "--timeout", "2s", "--output", format, "--log-format", LogJSON, "--verbose"}, args...)
					code, out, stderr := runShape(t, base, run...)
					what := fmt.Sprintf("eval, %s: exit %d", format, code)
					if f, ok := holdsSecret(out+stderr, forms); ok {
						t.Errorf("%s: the output holds %q:\n%s\n%s", what, f, out, stderr)
					}
				}
				for name, samples := range sv.gw.Metrics(t) {
					for _, smp := range samples {
						for k, v := range smp.Labels {
							if f, ok := holdsSecret(k+"="+v, forms); ok {
								t.Errorf("the Pushgateway stores %s{%s=%q}, which holds %q", name, k, v, f)
							}
						}
					}
				}
			})
		}
	}
}
