package cmd

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/redact"
	"github.com/superfly/fly-autoscaler/scale"
)

// TestPushRunGroups checks the push protocol without a real gateway: the
// run's group is replaced (PUT) after every run, the success group only
// after a successful one.
func TestPushRunGroups(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		reqs []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(gw.Close)

	ok := &scale.Report{Org: "my-org", Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
		Apps: []scale.AppResult{{App: "a", Status: scale.StatusUnchanged}}}
	failed := &scale.Report{Org: "my-org", Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
		Apps: []scale.AppResult{{App: "a", Status: scale.StatusFailed}}}
	dry := &scale.Report{Org: "my-org", DryRun: true, Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
		Apps: []scale.AppResult{{App: "a", Status: scale.StatusPlanned}}}
	dryFailed := &scale.Report{Org: "my-org", DryRun: true, Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
		Apps: []scale.AppResult{{App: "a", Status: scale.StatusFailed}}}
	sharded := &scale.Report{Org: "my-org", Shard: "2/4", Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
		Apps: []scale.AppResult{{App: "a", Status: scale.StatusUnchanged}}}
	for _, tc := range []struct {
		name string
		rep  *scale.Report
		want []string
	}{
		{"success", ok, []string{"PUT /metrics/job/fly-autoscaler/org/my-org", "PUT /metrics/job/fly-autoscaler/org/my-org/run/success"}},
		{"failure", failed, []string{"PUT /metrics/job/fly-autoscaler/org/my-org"}},
		// A dry run has a group of its own and never refreshes the
		// last success time.
		{"dry run", dry, []string{"PUT /metrics/job/fly-autoscaler/dry_run/true/org/my-org"}},
		// Each shard has groups of its own; "2/4" holds a slash, so the
		// client sends it base64-encoded (Mi80).
		{"shard", sharded, []string{"PUT /metrics/job/fly-autoscaler/org/my-org/run/success/shard@base64/Mi80", "PUT /metrics/job/fly-autoscaler/org/my-org/shard@base64/Mi80"}},
		{"failed dry run", dryFailed, []string{"PUT /metrics/job/fly-autoscaler/dry_run/true/org/my-org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reqs = nil
			mu.Unlock()
			var logs bytes.Buffer
			rc := &runConfig{pushgateway: gw.URL}
			rc.scale.Org = "my-org"
			pushRun(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), rc, tc.rep)
			mu.Lock()
			got := slices.Clone(reqs)
			mu.Unlock()
			// Grouping labels come in map order: compare sets of paths
			// with the labels after the job sorted by name.
			for i, r := range got {
				got[i] = sortGrouping(r)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("requests %q, want %q", got, tc.want)
			}
			if logs.Len() != 0 {
				t.Errorf("logged %q, want nothing", logs.String())
			}
		})
	}
}

func TestRedactPush(t *testing.T) {
	t.Parallel()
	rc := &runConfig{pushgateway: "https://u:Xk9qZt7Lm2w@gw.example.com", token: "FlyV1 fm2_s3cr3tT0k"}
	msg := `Put "https://u:Xk9qZt7Lm2w@gw.example.com/metrics/job/fly-autoscaler": unauthorized for user u, password Xk9qZt7Lm2w, token FlyV1 fm2_s3cr3tT0k`
	got := redactPush(msg, rc)
	for _, secret := range []string{"Xk9qZt7Lm2w", "fm2_s3cr3tT0k", "u:"} {
		if strings.Contains(got, secret) {
			t.Errorf("redacted text still holds %q: %s", secret, got)
		}
	}
	if !strings.Contains(got, "unauthorized for user u,") || !strings.Contains(got, "https://gw.example.com/metrics/job/fly-autoscaler") {
		t.Errorf("redaction mangled the message: %s", got)
	}
}

// sortGrouping returns "PUT /metrics/job/J/k2/v2/k1/v1" with the grouping
// labels after the job sorted by name: /metrics/job/J/k1/v1/k2/v2.
func sortGrouping(req string) string {
	method, path, _ := strings.Cut(req, " ")
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/job/"), "/")
	var pairs []string
	for i := 1; i+1 < len(parts); i += 2 {
		pairs = append(pairs, parts[i]+"/"+parts[i+1])
	}
	slices.Sort(pairs)
	return method + " /metrics/job/" + strings.Join(append([]string{parts[0]}, pairs...), "/")
}

// TestPushRefusesSecretLabels: a label value that holds a secret the run
// knows (a report that was not redacted) stops the push before anything
// reaches a real Pushgateway, with a warning that names the label, not the
// value.
func TestPushRefusesSecretLabels(t *testing.T) {
	t.Parallel()
	gw := promtest.StartPushgateway(t)
	const secret = "Qw3rTy9Uio0p"
	red := redact.NewRedactor(redact.SecretForms(secret)...)
	for _, tc := range []struct {
		name, org, app, policy, label string
	}{
		{name: "org", org: secret, app: "web", label: "org"},
		{name: "app", org: "my-org", app: "web-" + secret, label: "app"},
		{name: "policy", org: "my-org", app: "web", policy: "p-" + strings.ToLower(secret), label: "policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			rc := &runConfig{pushgateway: gw.URL(), redact: red.Redact}
			rep := &scale.Report{Org: tc.org, Matched: 1, StartedAt: time.Unix(1000, 0), Elapsed: time.Second,
				Apps: []scale.AppResult{{App: tc.app, Policy: tc.policy, Status: scale.StatusUnchanged}}}
			pushRun(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), rc, rep)
			if !strings.Contains(logs.String(), "holds a secret") || !strings.Contains(logs.String(), "label="+tc.label) {
				t.Errorf("logged %q, want a warning naming the label %s", logs.String(), tc.label)
			}
			if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(secret)) {
				t.Errorf("the warning quotes the secret: %s", logs.String())
			}
			for name := range gw.Metrics(t) {
				if strings.HasPrefix(name, "fly_autoscaler_") {
					t.Errorf("the gateway holds %s: the push was not stopped", name)
				}
			}
		})
	}
}
