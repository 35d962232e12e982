// The processes under test: starting, waiting for and stopping a server
// binary on a free loopback port, and the buffer its stderr goes to.

package promtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// startProcess starts bin on a free loopback port with the arguments args
// gives for that address, waits until it answers, and stops it when the
// test ends. A port taken in the meantime is retried twice with another.
// It returns the process's base URL.
func startProcess(t testing.TB, name, bin, dir string, stderr *lockedBuffer, timeout time.Duration, args func(addr string) []string) string {
	t.Helper()
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("promtest: %v", err)
		}
		cmd := exec.Command(bin, args(addr)...)
		cmd.Dir = dir
		cmd.Stdout = stderr
		cmd.Stderr = stderr
		setProcAttr(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatalf("promtest: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		base := "http://" + addr
		if err := waitReady(base, exited, timeout); err != nil {
			stop(cmd, exited) // closes exited, so waitErr is set
			lastErr = fmt.Errorf("%w (exit: %v)", err, waitErr)
			if strings.Contains(stderr.String(), "address already in use") {
				continue
			}
			break
		}
		t.Cleanup(func() {
			stop(cmd, exited)
			if t.Failed() {
				t.Logf("promtest: %s stderr:\n%s", name, stderr.tail(8192))
			}
		})
		return base
	}
	t.Fatalf("promtest: %s did not start: %v\nstderr:\n%s", name, lastErr, stderr.tail(4096))
	return ""
}

// promDuration formats d as a Prometheus duration ("1s", "500ms").
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func waitReady(base string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return errors.New("prometheus exited before it was ready")
		default:
		}
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends Prometheus gracefully, then by force after 10 s.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = interrupt(cmd)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// newLocalServer starts an httptest.Server on 127.0.0.1 (never another
// interface).
func newLocalServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("promtest: listen: %v", err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	return srv
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
// ClosedAddr returns a loopback address ("127.0.0.1:port") nothing listens
// on, for tests of a server that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// requireBinary returns the binary find finds, of the server named what.
// It skips the test under -short or when there is none, or fails it
// instead when CI=true, so that CI cannot pass by skipping.
func requireBinary(t testing.TB, what string, find func() (string, error)) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("promtest: real %s skipped in -short mode", what)
	}
	bin, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtest: %v; CI=true, so the test fails rather than skips", err)
		}
		t.Skipf("promtest: %v; skipping", err)
	}
	return bin
}

// lockedBuffer collects the output of the process.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
