package cmd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promfake"
	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

// The secrets planted by TestSecretsNeverPrinted. The API token is a
// realistic Fly token (a scheme, two macaroons, base64 punctuation); the
// others are valid identifiers, so that they can reach every field.
const (
	secretAPIToken  = "FlyV1 fm2_lJPECAAAAAAAAMTIxqfK3ZeBPabcd+xyzPIECE/zz==,fm2_secondPIECEofTHEtoken"
	secretPromToken = "prom_SecretToken_0123456789abcdef"
	secretURLToken  = "QueryTok3n_Secret_ABCDEFG"
	secretPassword  = "PushPassw0rd_Secret_XYZ"
)

var plantedSecrets = []string{secretAPIToken, secretPromToken, secretURLToken, secretPassword}

// assertNoSecret fails if text holds a planted secret or any run of
// redact.PieceLen characters of one, in any letter case.
func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, sec := range plantedSecrets {
		for i := 0; i+redact.PieceLen <= len(sec); i++ {
			if piece := strings.ToLower(sec[i : i+redact.PieceLen]); strings.Contains(lower, piece) {
				t.Errorf("%s holds %q, a piece of a secret:\n%s", what, sec[i:i+redact.PieceLen], text)
				return
			}
		}
	}
}

// echoingProm is a Prometheus HTTP API that answers queries containing
// "fail" with an error whose body echoes the request's Authorization
// header and FAS_API_TOKEN, as a careless proxy might, "scalar(...)" with
// 3, and any other query with two series that carry no app label.
func echoingProm(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(&promfake.Handler{Answer: func(_ context.Context, q promfake.Request) promfake.Reply {
		if strings.Contains(q.Query, "fail") {
			return promfake.Reply{Status: http.StatusBadRequest,
				Body: fmt.Sprintf(`{"status":"error","errorType":"bad_data","error":"denied %q for %q"}`, q.Authorization, secretAPIToken)}
		}
		if strings.HasPrefix(q.Query, "scalar(") {
			return promfake.Reply{Body: `{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}`}
		}
		return promfake.Reply{Body: `{"status":"success","data":{"resultType":"vector","result":[` +
			`{"metric":{"instance":"a"},"value":[1,"3"]},{"metric":{"instance":"b"},"value":[1,"4"]}]}}`}
	}})
	t.Cleanup(srv.Close)
	return srv.URL
}

// echoingGateway is a Pushgateway that refuses every push with a body that
// echoes the request's URL and Authorization header.
func echoingGateway(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("refused %s %s", r.URL, r.Header.Get("Authorization")), http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSecretsNeverPrinted plants secrets in every path by which one could
// reach the output (URL credentials, values echoed by errors, lowercased
// or by urfave/cli, values that ${VAR} expansion put into other options,
// answers of the APIs echoing them) and in every option that is echoed
// anywhere, and runs each in every output format, with and without
// --verbose, with text and JSON logs.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	prom := echoingProm(t)
	gateway := echoingGateway(t)
	closed := "http://" + promtest.ClosedAddr(t)
	withToken := func(base string) string { return base + "/?token=" + secretURLToken }
	withPass := func(base string) string {
		return strings.Replace(base, "http://", "http://user:"+secretPassword+"@", 1)
	}
	metric := []string{"--prometheus-address", prom, "--prometheus-metric-name", "q", "--prometheus-query", "sum(q)"}
	type testCase struct {
		name string
		args []string
		env  map[string]string
		yaml string
		// stripped is set when the secret is removed at the source
		// without a mark (the userinfo of a URL).
		stripped bool
	}
	cases := []testCase{
		{name: "pushgateway ?token= and password, unreachable", args: []string{"--apps", "web", "--started-machine-count", "2",
			"--pushgateway", withPass(withToken(closed))}},
		{name: "pushgateway ?token= and password, echoing", args: []string{"--apps", "web", "--started-machine-count", "2",
			"--pushgateway", withPass(withToken(gateway))}},
		{name: "prometheus address with ?token=", args: []string{"--apps", "web", "--started-machine-count", "q",
			"--prometheus-address", withToken(prom), "--prometheus-metric-name", "q", "--prometheus-query", "up"}},
		{name: "prometheus address with a password", args: []string{"--apps", "web", "--started-machine-count", "q",
			"--prometheus-address", withPass(closed), "--prometheus-metric-name", "q", "--prometheus-query", "up"}, stripped: true},
		{name: "--log-format lowercased", args: []string{"--apps", "web", "--started-machine-count", "1", "--log-format", secretPromToken}},
		{name: "--scale-down lowercased", env: map[string]string{"FAS_SCALE_DOWN": secretPromToken}, args: []string{"--apps", "web", "--started-machine-count", "1"}},
		{name: "--initial-machine-state lowercased", args: []string{"--apps", "web", "--created-machine-count", "1", "--initial-machine-state", secretPromToken}},
		{name: "FAS_DRY_RUN", env: map[string]string{"FAS_DRY_RUN": secretPromToken}, args: []string{"--apps", "web", "--started-machine-count", "1"}},
		{name: "--dry-run=", args: []string{"--apps", "web", "--started-machine-count", "1", "--dry-run=" + secretPromToken}},
		{name: "unknown flag", args: []string{"--apps", "web", "--" + secretPromToken}},
		{name: "unknown command", args: []string{"@" + secretPromToken}},
		{name: "org from a token", yaml: "org: ${FAS_PROMETHEUS_TOKEN}\napp-name: 'w*'\nstarted-machine-count: 1\n"},
		{name: "org echoed in the report", args: []string{"--org", secretPromToken, "--apps", "web", "--started-machine-count", "1"}},
		{name: "regions from a token", yaml: "app-name: web\ncreated-machine-count: 9\nregions: ${FAS_PROMETHEUS_TOKEN}\n"},
		{name: "metric-name from a token",
			yaml: "app-name: web\nstarted-machine-count: ${FAS_PROMETHEUS_TOKEN}\nmetric-collectors:\n  - {type: prometheus, metric-name: '${FAS_PROMETHEUS_TOKEN}', address: '" + prom + "', query: 'scalar(up)', token: '${FAS_PROMETHEUS_TOKEN}'}\n"},
		{name: "glob from a token", args: []string{"--org", "my-org", "--apps", secretPromToken + "*", "--started-machine-count", "1"}},
		{name: "app-label from a token", yaml: "app-name: web\nstarted-machine-count: q\nmetric-collectors:\n  - {type: prometheus, metric-name: q, address: '" + prom + "', query: 'sum by (x) (q)', app-label: '${FAS_PROMETHEUS_TOKEN}'}\n"},
		{name: "expression from a token", yaml: "app-name: web\nstarted-machine-count: ${FAS_API_TOKEN} +\n"},
		{name: "FAS_API_TOKEN in a Prometheus error body", args: append([]string{"--apps", "web", "--started-machine-count", "q",
			"--prometheus-token", secretPromToken}, append(metric[:4:4], "--prometheus-query", "fail")...)},
		{name: "process group", args: []string{"--apps", "web", "--created-machine-count", "9", "--process-group", secretPromToken}},
		{name: "exclude", args: []string{"--apps", "web", "--exclude", secretPromToken + "["}},
		{name: "app name", args: []string{"--apps", secretPromToken + "!", "--started-machine-count", "1"}},
		{name: "config path", args: []string{"--config", filepath.Join(os.TempDir(), secretPromToken+".yml")}},
		{name: "on-empty", args: append([]string{"--apps", "web", "--started-machine-count", "q", "--prometheus-on-empty", secretPromToken}, metric...)},
		{name: "query echoed", args: []string{"--apps", "web", "--started-machine-count", "q", "--prometheus-address", prom,
			"--prometheus-metric-name", "q", "--prometheus-query", "fail_" + secretPromToken}},
	}
	for _, flag := range []string{"concurrency", "timeout", "every", "max-scale-up", "max-scale-down", "max-machines",
		"max-failure-ratio", "min-started-duration", "output", "started-machine-count"} {
		cases = append(cases, testCase{name: "--" + flag, args: []string{"--apps", "web", "--created-machine-count", "1", "--" + flag, secretPromToken}})
	}
	for _, key := range []string{"concurrency", "timeout", "max-scale-up", "max-machines", "scale-down", "initial-machine-state", "pushgateway"} {
		cases = append(cases, testCase{name: "YAML " + key, yaml: "app-name: web\nstarted-machine-count: 1\n" + key + ": ${FAS_PROMETHEUS_TOKEN}\n"})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The secret must have reached the output, redacted: a case
			// that never prints it proves nothing.
			reached := false
			defer func() {
				if !reached && !tc.stripped && !t.Failed() {
					t.Errorf("no output held %s: the case does not reach its path", redact.Redacted)
				}
			}()
			for _, format := range Formats {
				for _, logFormat := range []string{LogText, LogJSON} {
					for _, verbose := range []bool{false, true} {
						org, err := flytest.LoadOrg(filepath.Join("..", "testdata", "flytest", "small.json"))
						if err != nil {
							t.Fatal(err)
						}
						srv := flytest.New(org, flytest.Options{Token: secretAPIToken})
						setenv(t, "FLY_API_BASE_URL", srv.URL)
						setenv(t, "FLY_FLAPS_BASE_URL", srv.URL)
						setenv(t, "FAS_API_TOKEN", secretAPIToken)
						setenv(t, "FAS_PROMETHEUS_TOKEN", secretPromToken)
						for k, v := range tc.env {
							setenv(t, k, v)
						}
						args := []string{"run", "--output", format, "--log-format", logFormat}
						if tc.name == "unknown command" {
							args = nil
						}
						if verbose {
							args = append(args, "--verbose")
						}
						args = append(args, tc.args...)
						if tc.yaml != "" {
							args = append(args, "--config", writeFile(t, "config.yml", tc.yaml))
						}
						code, out, stderr := runCLI(t, args...)
						srv.Close()
						what := fmt.Sprintf("%s, verbose %v, %s logs: exit %d", format, verbose, logFormat, code)
						reached = reached || strings.Contains(out+stderr, redact.Redacted)
						assertNoSecret(t, what+": stdout", out)
						assertNoSecret(t, what+": stderr", stderr)
						if code == ExitOK && out == "" {
							t.Errorf("%s: nothing printed", what)
						}
					}
				}
			}
		})
	}
}

// TestRedactingStreams: the writer of Streams redacts a secret split over
// several writes, in any letter case, and what it held back comes out on
// Flush.
func TestRedactingStreams(t *testing.T) {
	t.Parallel()
	s, out, _ := BufferStreams()
	s.AddSecrets(secretAPIToken)
	macaroon := "fm2_secondPIECEofTHEtoken"
	for _, chunk := range []string{"token=fm2_sec", "ondpiece", "OFTHEtoken done\n", "tail fm2_"} {
		fmt.Fprint(s.Out, chunk)
	}
	if got := out.String(); got != "token=REDACTED done\n" && !strings.HasPrefix(got, "token=REDACTED done\ntail") {
		t.Errorf("before Flush: %q", got)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "token=REDACTED done\ntail fm2_" {
		t.Errorf("after Flush: %q", got)
	}
	assertNoSecret(t, "stdout", out.String())
	if strings.Contains(strings.ToLower(out.String()), strings.ToLower(macaroon)) {
		t.Errorf("macaroon printed: %s", out)
	}
}

// TestRedactingStreamsLargeWrite: a large write reaches the output a few
// whole lines at a time, about 32 KiB each, not copied whole, and a secret
// or a URL's credentials anywhere in it are still removed.
func TestRedactingStreamsLargeWrite(t *testing.T) {
	t.Parallel()
	s, _, _ := BufferStreams()
	rec := &largestWrite{}
	s.Out.(*redactWriter).w = rec
	s.AddSecrets(secretAPIToken)
	var in strings.Builder
	for i := 0; in.Len() < 200<<10; i++ {
		switch i % 500 {
		case 250:
			fmt.Fprintf(&in, "app-%05d token %s\n", i, secretAPIToken)
		case 499:
			fmt.Fprintf(&in, "app-%05d pushed to https://user:%s@push.example/metrics\n", i, secretPassword)
		default:
			fmt.Fprintf(&in, "app-%05d scaled from 2 to 4 started machines\n", i)
		}
	}
	if n, err := io.WriteString(s.Out, in.String()); err != nil || n != in.Len() {
		t.Fatalf("wrote %d of %d: %v", n, in.Len(), err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if rec.max > 32<<10 || rec.cut {
		t.Errorf("largest piece %d bytes (of %d), cut within a line: %v; want whole lines, at most 32 KiB", rec.max, in.Len(), rec.cut)
	}
	got := rec.buf.String()
	assertNoSecret(t, "stdout", got)
	if strings.Contains(got, secretPassword) || !strings.Contains(got, "https://push.example/metrics") {
		t.Errorf("a URL's credentials were not removed")
	}
	if want := strings.Count(in.String(), "\n"); strings.Count(got, "\n") != want {
		t.Errorf("%d lines out, want %d", strings.Count(got, "\n"), want)
	}
}
