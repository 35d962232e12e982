package promtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Pushgateway is a running prometheus-pushgateway on 127.0.0.1, keeping what
// it receives in memory only.
//
//	gw := promtest.StartPushgateway(t)
//	// push to gw.URL(), then read back:
//	samples := gw.Metrics(t)["my_metric"]
type Pushgateway struct {
	url    string
	stderr *lockedBuffer
}

// PushgatewayBinary returns the path of the prometheus-pushgateway binary:
// $PROMTEST_PUSHGATEWAY, else prometheus-pushgateway or pushgateway in
// $PATH, else /usr/bin/prometheus-pushgateway.
func PushgatewayBinary() (string, error) {
	if p := os.Getenv("PROMTEST_PUSHGATEWAY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PROMTEST_PUSHGATEWAY: %w", err)
		}
		return p, nil
	}
	for _, name := range []string{"prometheus-pushgateway", "pushgateway"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	const debian = "/usr/bin/prometheus-pushgateway"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("prometheus-pushgateway binary not found in $PATH or /usr/bin (install it with: apt-get install -y prometheus-pushgateway)")
}

// StartPushgateway starts prometheus-pushgateway on a free loopback port
// and returns once it is ready; it stops when the test ends. Like Start, it
// skips the test under -short or when the binary is missing, and fails
// instead when CI=true.
func StartPushgateway(t testing.TB) *Pushgateway {
	t.Helper()
	bin := requireBinary(t, "Pushgateway", PushgatewayBinary)
	gw := &Pushgateway{stderr: &lockedBuffer{}}
	dir := t.TempDir()
	gw.url = startProcess(t, "pushgateway", bin, dir, gw.stderr, DefaultStartTimeout, func(addr string) []string {
		return []string{"--web.listen-address=" + addr, "--persistence.file=" /* in memory only */, "--log.level=warn"}
	})
	return gw
}

// URL returns the Pushgateway's base URL, to push to.
func (g *Pushgateway) URL() string { return g.url }

// Metrics reads the gateway's /metrics and returns every sample of every
// family by metric name (a counter's or gauge's value; untyped too). The
// gateway's own metrics (go_*, process_*, pushgateway_*) are included.
func (g *Pushgateway) Metrics(t testing.TB) map[string][]Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/metrics", nil)
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("promtest: read pushgateway metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("promtest: read pushgateway metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("promtest: parse pushgateway metrics: %v", err)
	}
	out := make(map[string][]Sample, len(families))
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			out[name] = append(out[name], Sample{Labels: labels(m), Value: value(m)})
		}
	}
	return out
}

// Stderr returns what the gateway has written so far.
func (g *Pushgateway) Stderr() string { return g.stderr.String() }

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	case m.Summary != nil:
		return m.GetSummary().GetSampleSum()
	case m.Histogram != nil:
		return m.GetHistogram().GetSampleSum()
	}
	return 0
}
