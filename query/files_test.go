package query_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/fly-autoscaler/query"
)

// TestSourceFilesAreBounded: a credentials, key or CA file is read only
// when it is a regular file of at most MaxFileSize; a FIFO, a device or a
// directory is refused at once, without waiting for a writer or reading
// without end.
func TestSourceFilesAreBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Repeat("k", size)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string // "" for a file that is read
	}{
		{write("small", 100), ""},
		{write("limit", query.MaxFileSize), ""},
		{write("over", query.MaxFileSize+1), "1048577 bytes, more than"},
		{fifo, "not a regular file (a FIFO)"},
		{"/dev/zero", "not a regular file (a character device)"},
		{dir, "not a regular file (a directory)"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		done := make(chan struct{})
		var b []byte
		var readErr, checkErr error
		go func() {
			defer close(done)
			checkErr = query.ReadableFile(tc.path)
			b, readErr = query.ReadFile(tc.path)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still reading after 10s", tc.path)
		}
		if tc.want == "" {
			if checkErr != nil || readErr != nil || len(b) == 0 {
				t.Errorf("%s: %v, %v, %d bytes", tc.path, checkErr, readErr, len(b))
			}
			continue
		}
		for _, err := range []error{checkErr, readErr} {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
			}
		}
	}
	if got := query.FileSecrets("/dev/zero"); got != nil {
		t.Errorf("FileSecrets(/dev/zero) = %d lines", len(got))
	}
}
