package cmd

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/charmbracelet/x/term"

	"github.com/superfly/fly-autoscaler/query/redact"
)

// Streams are the output streams of one invocation and what is known about
// them. Commands write the report to Out and logs to Err; tests swap in
// buffers (see BufferStreams).
//
// Out and Err, as built by SystemStreams and BufferStreams, pass every byte
// through one redactor that knows every secret of the run (AddSecrets): the
// last line of defence, behind the redaction each layer does at the source.
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

	secrets *secretSet
}

// SystemStreams returns the process's stdout and stderr, detecting whether
// each is a terminal.
func SystemStreams() *Streams {
	s := newStreams(os.Stdout, os.Stderr)
	s.OutIsTerminal, s.ErrIsTerminal = isTerminal(os.Stdout), isTerminal(os.Stderr)
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
	return newStreams(out, errOut), out, errOut
}

func newStreams(out, errOut io.Writer) *Streams {
	set := &secretSet{r: redact.NewRedactor()}
	return &Streams{Out: &redactWriter{w: out, set: set}, Err: &redactWriter{w: errOut, set: set}, secrets: set}
}

// AddSecrets makes the streams redact each value, in each of the forms it
// may be printed in (redact.SecretForms), from now on.
func (s *Streams) AddSecrets(values ...string) {
	if s == nil || s.secrets == nil {
		return
	}
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	for _, v := range values {
		s.secrets.r.Add(redact.SecretForms(v)...)
	}
}

// Redact returns text with the secrets known to the streams replaced, for
// text that leaves by another way than the streams (an error returned to
// main).
func (s *Streams) Redact(text string) string {
	if s == nil || s.secrets == nil {
		return redact.RedactURL(text)
	}
	return s.secrets.redact(text)
}

// Flush writes what the streams held back: the end of a write that could
// have been the start of a secret.
func (s *Streams) Flush() error {
	if s == nil {
		return nil
	}
	var first error
	for _, w := range []io.Writer{s.Out, s.Err} {
		if rw, ok := w.(*redactWriter); ok {
			if err := rw.flush(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// secretSet is the redactor shared by the streams of one invocation.
type secretSet struct {
	mu sync.Mutex
	r  *redact.Redactor
}

// redact returns text with the secrets of the set replaced.
func (set *secretSet) redact(text string) string {
	set.mu.Lock()
	defer set.mu.Unlock()
	return set.r.Redact(text)
}

// redactWriter redacts what it writes. A secret may be split over two
// writes, so the end of a write that could start one is held back until
// the next write (or Flush) says whether it does.
type redactWriter struct {
	w       io.Writer
	set     *secretSet
	pending []byte
	// redacted is set when what was written last ends with the marker:
	// a secret split over two writes is marked once.
	redacted bool
	// passThrough writes without redacting: tests set it to check that
	// the redaction at the source (the report, the logs, the errors)
	// suffices without this net.
	passThrough bool
}

// redactChunk bounds the text one redaction pass copies (a few times: the
// text, its lowercase form, the result): a large write, such as the table
// of a 10,000-app run, is redacted a few whole lines at a time, as if
// written so. Lines stay whole, so that a URL's credentials, which are
// found by their form rather than held back like a known secret, are seen
// in one piece.
const redactChunk = 32 << 10

func (rw *redactWriter) Write(p []byte) (int, error) {
	rw.set.mu.Lock()
	defer rw.set.mu.Unlock()
	for off := 0; off < len(p); {
		n := lineChunk(p[off:], redactChunk)
		if err := rw.write(p[off : off+n]); err != nil {
			return off, err
		}
		off += n
	}
	return len(p), nil
}

// lineChunk returns the length of the first piece of p to redact: its
// whole lines up to size bytes, or the first line when it is longer, or
// all of p when it has no more line ends.
func lineChunk(p []byte, size int) int {
	if len(p) <= size {
		return len(p)
	}
	if i := bytes.LastIndexByte(p[:size], '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(p[size:], '\n'); i >= 0 {
		return size + i + 1
	}
	return len(p)
}

// write redacts and writes p after what was held back; rw.set.mu is held.
func (rw *redactWriter) write(p []byte) error {
	if rw.passThrough {
		_, err := rw.w.Write(p)
		return err
	}
	text := rw.set.r.Redact(string(rw.pending) + string(p))
	if rw.redacted && len(rw.pending) == 0 {
		text = strings.TrimPrefix(text, redact.Redacted)
	}
	hold := rw.set.r.Holdback(text)
	if i := strings.LastIndex(text, redact.Redacted); i >= 0 {
		hold = min(hold, len(text)-i-len(redact.Redacted)) // never split the marker
	}
	// Never split a terminal control sequence: what is held back starts
	// after the last whole one, and one that is not finished yet (with
	// the carriage returns before it: the progress line's "\r\x1b[K") is
	// held back whole, to be written in one piece with its end.
	complete, open := controlSequences(text)
	hold = min(hold, len(text)-complete)
	if open >= 0 && len(text)-open <= maxHeldSequence {
		hold = max(hold, len(text)-open)
	}
	out := text[:len(text)-hold]
	rw.pending = append(rw.pending[:0], text[len(text)-hold:]...)
	if out != "" {
		rw.redacted = strings.HasSuffix(out, redact.Redacted)
	}
	_, err := io.WriteString(rw.w, out)
	return err
}

// maxHeldSequence bounds the unfinished control sequence a write holds
// back: the program's are a few bytes; an ESC followed by anything but the
// end of one (text that only looks like the start of a string sequence) is
// written on.
const maxHeldSequence = 64

// controlSequences scans text for terminal control sequences (ECMA-48:
// CSI "\x1b[" parameters, intermediates and a final byte; OSC, DCS and
// the other strings up to BEL or "\x1b\\"; two-byte escapes). It returns
// the end of the last whole one (0 when there is none) and the start of an
// unfinished one at the end of text, taking the carriage returns just
// before it along (-1 when there is none). A carriage return that ends text
// counts as unfinished too: a control sequence may follow it.
func controlSequences(text string) (complete, open int) {
	open = -1
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], 0x1b)
		if j < 0 {
			break
		}
		start := i + j
		end := sequenceEnd(text, start)
		if end < 0 {
			open = start
			break
		}
		complete, i = end, end
	}
	if open < 0 && strings.HasSuffix(text, "\r") {
		open = len(text) - 1
	}
	for open > complete && open > 0 && text[open-1] == '\r' {
		open--
	}
	return complete, open
}

// sequenceEnd returns the end of the control sequence that starts at
// text[start] (an ESC), or -1 when text ends before it does.
func sequenceEnd(text string, start int) int {
	i := start + 1
	if i >= len(text) {
		return -1
	}
	switch c := text[i]; {
	case c == '[': // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, a final byte 0x40-0x7e
		for i++; i < len(text); i++ {
			if b := text[i]; b >= 0x40 && b <= 0x7e {
				return i + 1
			} else if b < 0x20 || b > 0x3f {
				return i // malformed: it ends where it stops being one
			}
		}
		return -1
	case c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X': // strings up to BEL or ST
		for i++; i < len(text); i++ {
			if text[i] == 0x07 {
				return i + 1
			}
			if text[i] == 0x1b {
				if i+1 >= len(text) {
					return -1
				}
				if text[i+1] == '\\' {
					return i + 2
				}
			}
		}
		return -1
	case c >= 0x20 && c <= 0x2f: // intermediates, then a final byte
		for ; i < len(text); i++ {
			if text[i] >= 0x30 && text[i] <= 0x7e {
				return i + 1
			}
		}
		return -1
	default:
		return i + 1
	}
}

func (rw *redactWriter) flush() error {
	rw.set.mu.Lock()
	defer rw.set.mu.Unlock()
	if len(rw.pending) == 0 {
		return nil
	}
	_, err := rw.w.Write(rw.pending)
	rw.pending = rw.pending[:0]
	return err
}

// underlying returns the writer that w redacts for, or w: a terminal is
// detected on the file itself.
func underlying(w io.Writer) io.Writer {
	if rw, ok := w.(*redactWriter); ok {
		return rw.w
	}
	return w
}

func isTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(f.Fd())
}
