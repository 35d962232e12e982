package cmd

import (
	"bytes"
	"io"
	"os"

	"github.com/charmbracelet/x/term"
)

// Streams are the output streams of one invocation and what is known about
// them. Commands write the report to Out and logs to Err; tests swap in
// buffers (see BufferStreams).
type Streams struct {
	Out io.Writer
	Err io.Writer

	// OutIsTerminal and ErrIsTerminal report whether the streams are
	// attached to a terminal.
	OutIsTerminal bool
	ErrIsTerminal bool

	// Color is true when Out is a terminal and NO_COLOR is unset or empty.
	Color bool

	// Width is the number of columns of the terminal on Out, or 0 when Out
	// is not a terminal (piped output is never truncated).
	Width int
}

// SystemStreams returns the process's stdout and stderr, detecting whether
// each is a terminal.
func SystemStreams() *Streams {
	s := &Streams{
		Out:           os.Stdout,
		Err:           os.Stderr,
		OutIsTerminal: isTerminal(os.Stdout),
		ErrIsTerminal: isTerminal(os.Stderr),
	}
	// https://no-color.org: a non-empty NO_COLOR disables colour.
	s.Color = s.OutIsTerminal && os.Getenv("NO_COLOR") == ""
	if s.OutIsTerminal {
		if w, _, err := term.GetSize(os.Stdout.Fd()); err == nil && w > 0 {
			s.Width = w
		}
	}
	return s
}

// BufferStreams returns streams writing to two buffers, neither of them a
// terminal, for tests.
func BufferStreams() (s *Streams, out, errOut *bytes.Buffer) {
	out, errOut = &bytes.Buffer{}, &bytes.Buffer{}
	return &Streams{Out: out, Err: errOut}, out, errOut
}

func isTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(f.Fd())
}
