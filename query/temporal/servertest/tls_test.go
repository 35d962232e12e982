package servertest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/temporal"
)

// serverName is the name in the test server's certificate.
const serverName = "temporal.test"

// tlsProxy terminates TLS (HTTP/2 by ALPN, as gRPC needs) on a loopback
// port and forwards the bytes to the plain-text frontend at target. With
// mutual, it requires a client certificate signed by the CA.
func tlsProxy(t *testing.T, p *promtest.PKI, target string, mutual bool) string {
	t.Helper()
	certPEM, keyPEM := p.Issue(t, serverName)
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	if mutual {
		pool := x509.NewCertPool()
		pool.AddCert(p.CA)
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Go(func() {
				if err := c.(*tls.Conn).Handshake(); err != nil {
					c.Close()
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				track(up)
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			})
		}
	})
	return ln.Addr().String()
}

// TestTLS: mutual TLS with the original's cert-data and key-data, the CA
// and server name of the certificate, and an API key, through a TLS proxy
// in front of the real server.
func TestTLS(t *testing.T) {
	s := startServer(t)
	s.startJobs(t, "jobs-app-a", 2)
	p := promtest.NewPKI(t)
	mutual := tlsProxy(t, p, s.GetFrontendHostPort(), true)
	clientCert, clientKey := p.Issue(t, "fly-autoscaler")
	const apiKey = "tmprl-api-key-for-the-tls-test"

	good := temporal.Config{Address: mutual, TaskQueue: "jobs-$APP_NAME", QueueTypes: []string{"workflow"},
		CertData: clientCert, KeyData: clientKey, TLSCA: p.CAPEM, TLSServerName: serverName, APIKey: apiKey}
	src := newSource(t, s, good)
	eventually(t, "backlog over mutual TLS", func() error {
		v, err := collect(src, "app-a")
		if err == nil && v != 2 {
			// The backlog is approximate and catches up with the jobs.
			err = fmt.Errorf("backlog %v, want 2", v)
		}
		return err
	})
	if rs := s.metricRequests("jobs-app-a"); len(rs) == 0 || rs[len(rs)-1].auth != "Bearer "+apiKey {
		t.Errorf("the API key did not reach the server as a bearer token")
	}

	for _, tc := range []struct {
		name   string
		change func(*temporal.Config)
		want   string
	}{
		{"no client certificate", func(c *temporal.Config) { c.CertData, c.KeyData = "", "" }, "connect to "},
		{"system CAs only", func(c *temporal.Config) { c.TLSCA = "" }, "certificate"},
		{"wrong server name", func(c *temporal.Config) { c.TLSServerName = "other.test" }, "other.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			src := newSource(t, s, cfg, temporal.WithConnectTimeout(3*time.Second))
			_, err := collect(src, "app-a")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one that says %q", err, tc.want)
			}
			if strings.Contains(err.Error(), apiKey) || strings.Contains(err.Error(), strings.Split(clientKey, "\n")[1]) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
	t.Run("skip verify", func(t *testing.T) {
		cfg := good
		cfg.TLSCA, cfg.TLSServerName, cfg.TLSInsecureSkipVerify = "", "", true
		if _, err := collect(newSource(t, s, cfg), "app-a"); err != nil {
			t.Errorf("tls-insecure-skip-verify: %v", err)
		}
	})
}
