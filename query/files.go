// Helpers the sources share: credentials files and secret lists.

package query

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MaxFileSize bounds the credentials, key and CA files a source reads:
// they hold a few KiB. A larger one is a mistake (a log, an image).
const MaxFileSize = 1 << 20

// openFile opens path, a regular file of at most MaxFileSize. A FIFO, a
// socket, a device or a directory is refused without waiting: opening a
// FIFO for reading would wait for a writer, and /dev/zero never ends.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("%s: %v", path, err)
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, FileKind(fi.Mode()))
	case fi.Size() > MaxFileSize:
		f.Close()
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a credentials, key or CA file may hold", path, fi.Size(), MaxFileSize)
	}
	return f, nil
}

// FileKind names what a path that is not a regular file is.
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a file"
}

// ReadableFile checks that path, when set, names a regular file of at most
// MaxFileSize that can be opened.
func ReadableFile(path string) error {
	if path == "" {
		return nil
	}
	f, err := openFile(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// ReadFile reads path, a regular file of at most MaxFileSize; it never
// reads more, whatever the file became since it was checked.
func ReadFile(path string) ([]byte, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: more than the %d bytes a credentials, key or CA file may hold", path, MaxFileSize)
	}
	return b, nil
}

// FileSecrets returns the lines of a credentials file that are not its
// "-----BEGIN ... -----" armour: the JWT and the seed.
func FileSecrets(path string) []string {
	if path == "" {
		return nil
	}
	b, err := ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "***") || strings.Contains(line, " ") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// NonEmpty returns the strings of ss that are not blank, trimmed, reusing
// ss.
func NonEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
