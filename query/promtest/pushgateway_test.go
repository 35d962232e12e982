package promtest_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/superfly/fly-autoscaler/query/promtest"
)

func TestStartPushgateway(t *testing.T) {
	gw := promtest.StartPushgateway(t)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "promtest_pushed", Help: "A pushed test value."})
	g.Set(42)
	if err := push.New(gw.URL(), "promtest").Collector(g).Grouping("instance", "a").Push(); err != nil {
		t.Fatalf("push: %v", err)
	}
	samples := gw.Metrics(t)["promtest_pushed"]
	if len(samples) != 1 {
		t.Fatalf("got %d promtest_pushed samples, want 1: %v", len(samples), samples)
	}
	s := samples[0]
	if s.Value != 42 || s.Labels["job"] != "promtest" || s.Labels["instance"] != "a" {
		t.Errorf("sample %+v, want 42 with job=promtest, instance=a", s)
	}
}
