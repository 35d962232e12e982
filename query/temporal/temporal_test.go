package temporal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/redact"
)

func TestTemporalConfigValidate(t *testing.T) {
	pki := promtest.NewPKI(t)
	cert, key := pki.Issue(t, "client")
	_, otherKey := pki.Issue(t, "other")
	base := Config{Name: "jobs", Address: "localhost:7233", Namespace: "default", TaskQueue: "jobs-$APP_NAME"}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"backlog", func(*Config) {}, ""},
		{"running", func(c *Config) { c.TaskQueue, c.Query = "", `WorkflowType="x"` }, ""},
		{"no name", func(c *Config) { c.Name = "" }, "temporal: metric-name: empty"},
		{"bad name", func(c *Config) { c.Name = "job-count" }, `temporal metric "job-count": metric-name: want letters`},
		{"no address", func(c *Config) { c.Address = "" }, "address: empty"},
		{"address without port", func(c *Config) { c.Address = "localhost" }, `address "localhost": want host:port`},
		{"address as URL", func(c *Config) { c.Address = "https://x:7233" }, "want host:port"},
		{"no namespace", func(c *Config) { c.Namespace = " " }, "namespace: empty"},
		{"both measures", func(c *Config) { c.Query = "true" }, "task-queue and query: set one, not both"},
		{"no measure", func(c *Config) { c.TaskQueue = "" }, "task-queue or query: set one"},
		{"queue types", func(c *Config) { c.QueueTypes = []string{"Workflow", "nexus"} }, ""},
		{"unknown queue type", func(c *Config) { c.QueueTypes = []string{"workflows"} }, `queue-types: "workflows": want workflow, activity or nexus`},
		{"queue type twice", func(c *Config) { c.QueueTypes = []string{"activity", "activity"} }, `queue-types: "activity" given twice`},
		{"queue types with query", func(c *Config) { c.TaskQueue, c.Query, c.QueueTypes = "", "true", []string{"activity"} }, "queue-types: only with task-queue"},
		{"negative rate", func(c *Config) { c.RequestsPerSecond = -1 }, "requests-per-second"},
		{"NaN rate", func(c *Config) { c.RequestsPerSecond = Rate(math.NaN()) }, "requests-per-second"},
		{"mutual TLS", func(c *Config) { c.CertData, c.KeyData = cert, key }, ""},
		{"cert without key", func(c *Config) { c.CertData = cert }, "key-data: empty while cert-data is set"},
		{"key without cert", func(c *Config) { c.KeyData = key }, "cert-data: empty while key-data is set"},
		{"key of another cert", func(c *Config) { c.CertData, c.KeyData = cert, otherKey }, "cert-data, key-data: tls: private key does not match public key"},
		{"not PEM", func(c *Config) { c.CertData, c.KeyData = "cert", "key" }, "cert-data, key-data: tls: failed to find any PEM data"},
		{"CA PEM", func(c *Config) { c.TLSCA = pki.CAPEM }, ""},
		{"CA file missing", func(c *Config) { c.TLSCA = "/no/such/ca.pem" }, "tls-ca: /no/such/ca.pem: no such file or directory"},
		{"CA not a certificate", func(c *Config) { c.TLSCA = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----" }, "tls-ca: no PEM certificate found"},
		{"API key with a line break", func(c *Config) { c.APIKey = "ab\ncd" }, "api-key: contains a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), strings.Split(key, "\n")[1])) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestTemporalTLSConfig(t *testing.T) {
	pki := promtest.NewPKI(t)
	cert, key := pki.Issue(t, "client")
	ca := pki.CAPEM
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(ca), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{Name: "jobs", Address: "ns.acct.tmprl.cloud:7233", Namespace: "ns", Query: "true"}

	_, conf, err := base.normalize()
	if err != nil || conf != nil {
		t.Fatalf("plain configuration: TLS %v, %v; want none", conf, err)
	}
	for _, tc := range []struct {
		name       string
		change     func(*Config)
		serverName string
		certs      int
		roots      bool
		skip       bool
	}{
		{"API key implies TLS", func(c *Config) { c.APIKey = "k" }, "ns.acct.tmprl.cloud", 0, false, false},
		{"mutual TLS", func(c *Config) { c.CertData, c.KeyData = cert, key }, "ns.acct.tmprl.cloud", 1, false, false},
		{"CA from PEM, server name", func(c *Config) { c.TLSCA, c.TLSServerName = ca, "ca" }, "ca", 0, true, false},
		{"CA from a file", func(c *Config) { c.TLSCA = caFile }, "ns.acct.tmprl.cloud", 0, true, false},
		{"skip verify", func(c *Config) { c.TLSInsecureSkipVerify = true }, "ns.acct.tmprl.cloud", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			_, conf, err := c.normalize()
			if err != nil {
				t.Fatal(err)
			}
			if conf == nil {
				t.Fatal("no TLS")
			}
			if conf.ServerName != tc.serverName || len(conf.Certificates) != tc.certs || (conf.RootCAs != nil) != tc.roots || conf.InsecureSkipVerify != tc.skip {
				t.Errorf("server name %q, %d certificates, roots %v, skip verify %v", conf.ServerName, len(conf.Certificates), conf.RootCAs != nil, conf.InsecureSkipVerify)
			}
		})
	}
}

func TestTemporalSecretsNeverPrinted(t *testing.T) {
	cert, key := promtest.NewPKI(t).Issue(t, "client")
	c := Config{Name: "jobs", Address: "localhost:7233", Namespace: "n", TaskQueue: "q", CertData: cert, KeyData: key, APIKey: "tmprl-secret-api-key"}
	src, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	secrets := c.Secrets()
	if len(secrets) < 3 {
		t.Fatalf("secrets %d, want the API key, the key and its PEM lines", len(secrets))
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c), src.String(), fmt.Sprintf("%#v", src), fmt.Sprintf("%v", src)} {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%q shows a secret", s)
			}
		}
	}
	if !strings.Contains(c.String(), "api-key="+redact.Redacted) || !strings.Contains(c.String(), "key-data="+redact.Redacted) {
		t.Errorf("%q does not say which secrets are set", c.String())
	}
	// A server that echoes a secret back: the error keeps its kind and
	// loses the secret.
	err = src.requestError(&requestFailure{status.New(codes.PermissionDenied, "token tmprl-secret-api-key refused")})
	if strings.Contains(err.Error(), "tmprl-secret-api-key") || !strings.Contains(err.Error(), redact.Redacted) || !strings.HasPrefix(err.Error(), "permission denied") {
		t.Errorf("error %q", err)
	}
}

// TestTemporalUnreachable: one bounded connection attempt per source,
// whose failure every app gets, the ones asking at once and the ones
// asking later.
func TestTemporalUnreachable(t *testing.T) {
	srv := promtest.Silent(t)
	src, err := New(Config{Name: "jobs", Address: srv.Addr(), Namespace: "default", TaskQueue: "jobs-$APP_NAME"},
		WithConnectTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = src.Collect(context.Background(), fmt.Sprintf("app-%d", i)) })
	}
	wg.Wait()
	_, late := src.Collect(context.Background(), "app-late")
	errs = append(errs, late)
	for i, err := range errs {
		if err == nil || !strings.HasPrefix(err.Error(), "connect to "+srv.Addr()+": ") {
			t.Errorf("app %d: %v, want the connection error", i, err)
		} else if err.Error() != errs[0].Error() {
			t.Errorf("app %d: %v, want the same error as the others: %v", i, err, errs[0])
		}
	}
	if n := srv.Accepted(); n != 1 {
		t.Errorf("%d connections for %d apps, want one attempt", n, len(errs))
	}

	// An app whose own deadline ends first stops waiting; the attempt goes
	// on for the others.
	src2, err := New(Config{Name: "jobs", Address: srv.Addr(), Namespace: "default", Query: "true"},
		WithConnectTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := src2.Collect(ctx, "app-a"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wait for the connection") {
		t.Errorf("impatient app: %v, want its own deadline", err)
	}
	if _, err := src2.Collect(context.Background(), "app-b"); err == nil || !strings.HasPrefix(err.Error(), "connect to ") {
		t.Errorf("patient app: %v, want the connection error", err)
	}
}

// TestTemporalClosed: a closed source fails every later Collect, and
// closing twice is harmless.
func TestTemporalClosed(t *testing.T) {
	for _, used := range []bool{false, true} {
		src, err := New(Config{Name: "jobs", Address: promtest.ClosedAddr(t), Namespace: "default", Query: "true"},
			WithConnectTimeout(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if used {
			if _, err := src.Collect(context.Background(), "app-a"); err == nil {
				t.Fatal("a closed port answered")
			}
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Collect(context.Background(), "app-a"); err == nil || (!used && !errors.Is(err, errClosed)) {
			t.Errorf("used %v: collect after close: %v", used, err)
		}
	}
}
