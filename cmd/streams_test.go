package cmd

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/superfly/fly-autoscaler/scale"
)

// writeLog records each write it receives, for the tests that look at
// where the output was cut.
type writeLog struct{ writes []string }

func (l *writeLog) Write(p []byte) (int, error) {
	l.writes = append(l.writes, string(p))
	return len(p), nil
}

// controlSeq matches one terminal control sequence of the kinds the
// program writes: CSI (colours, bold, faint, erase line) with the carriage
// returns before it.
var controlSeq = regexp.MustCompile("\r*\x1b\\[[0-9;?]*[ -/]*[@-~]")

// programSequences returns every control sequence the program writes: the
// progress line's, drawn and cleared, and the table's colours and styles
// in each colour profile a terminal may have.
func programSequences(t *testing.T) []string {
	t.Helper()
	var out strings.Builder
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		p := startProgress(&buf, time.Millisecond, time.Millisecond)
		p.Update(5, 50)
		time.Sleep(5 * time.Millisecond)
		p.Update(50, 50)
		time.Sleep(5 * time.Millisecond)
		p.Stop()
		out.WriteString(buf.String())
	})
	r := &scale.Report{Apps: []scale.AppResult{
		{App: "a-up", Status: scale.StatusScaled, Observed: true, Current: scale.Counts{Started: 1}, Target: scale.Counts{Started: 2}},
		{App: "b-down", Status: scale.StatusScaled, Observed: true, Current: scale.Counts{Started: 2}, Target: scale.Counts{Started: 1}},
		{App: "c-failed", Status: scale.StatusFailed, Reason: "metrics: boom", Warnings: []string{"a warning"}},
		{App: "d-skipped", Status: scale.StatusSkipped, Reason: "no machine"},
		{App: "e-blocked", Status: scale.StatusBlocked, Reason: "lease"},
		{App: "f-same", Status: scale.StatusUnchanged, Observed: true},
	}}
	for _, profile := range []termenv.Profile{termenv.ANSI, termenv.ANSI256, termenv.TrueColor} {
		var buf bytes.Buffer
		re := lipgloss.NewRenderer(&buf)
		re.SetColorProfile(profile)
		if err := renderTable(&buf, r, RenderOptions{Color: true, Width: 60}, re); err != nil {
			t.Fatal(err)
		}
		out.Write(buf.Bytes())
	}
	seen := map[string]bool{}
	var seqs []string
	for _, s := range controlSeq.FindAllString(out.String(), -1) {
		if !seen[s] {
			seen[s] = true
			seqs = append(seqs, s)
		}
	}
	for _, want := range []string{"\r\x1b[K", "\x1b[1m", "\x1b[0m", "\x1b[31m", "\x1b[2m"} {
		if !seen[want] {
			t.Fatalf("the program's output holds no %q; sequences found: %q", want, seqs)
		}
	}
	return seqs
}

// TestRedactWriterNeverSplitsControlSequences: every control sequence the
// program writes reaches the terminal in one piece, whether it comes in one
// write, one byte at a time or cut at any point, even when secrets begin
// with each of its bytes (so that the writer has a reason to hold any of
// them back). Before, the "K" of the progress line's "\r\x1b[K" was held
// back and printed at the start of the next line.
func TestRedactWriterNeverSplitsControlSequences(t *testing.T) {
	seqs := programSequences(t)
	var secrets []string
	for _, seq := range seqs {
		for i := range len(seq) {
			secrets = append(secrets, seq[i:i+1]+"-secret-"+strings.Repeat("x", 12))
		}
	}
	for _, seq := range seqs {
		text := "reconciling 5/50 apps" + seq + "fly-autoscaler: 5 of 50 apps failed\n"
		var splits [][]string
		// One byte at a time.
		var bytewise []string
		for i := range len(text) {
			bytewise = append(bytewise, text[i:i+1])
		}
		splits = append(splits, bytewise, []string{text})
		// Cut once at every point.
		for i := 1; i < len(text); i++ {
			splits = append(splits, []string{text[:i], text[i:]})
		}
		for _, writes := range splits {
			s, _, _ := BufferStreams()
			log := &writeLog{}
			rw := s.Err.(*redactWriter)
			rw.w = log
			s.AddSecrets(secrets...)
			for _, w := range writes {
				if _, err := rw.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(log.writes, ""); got != text {
				t.Fatalf("%q written as %q: got %q", text, writes, got)
			}
			// No write ends inside the sequence.
			start := strings.Index(text, seq)
			off := 0
			for _, w := range log.writes {
				off += len(w)
				if off > start && off < start+len(seq) {
					t.Errorf("sequence %q written in %d writes %q: cut at byte %d of it", seq, len(writes), log.writes, off-start)
					break
				}
			}
		}
	}
}

// TestRedactWriterProgressThenReport: the progress line cleared on stderr,
// the report on stdout, then an error on stderr: stderr's clear sequence
// is written whole before stdout's report, so no stray "K" starts the
// error's line, even with a secret that begins with k.
func TestRedactWriterProgressThenReport(t *testing.T) {
	t.Parallel()
	var term writeLog
	s, _, _ := BufferStreams()
	s.Out.(*redactWriter).w = &term
	s.Err.(*redactWriter).w = &term
	s.AddSecrets("kx9-secret-value-123456")
	_, _ = s.Err.Write([]byte("\rreconciling 5/50 apps\x1b[K"))
	_, _ = s.Err.Write([]byte("\r\x1b[K"))
	_, _ = s.Out.Write([]byte("APP  RESULT\na    failed\n"))
	PrintError(s, &exitError{code: 1, msg: "5 of 50 apps failed"})
	got := strings.Join(term.writes, "")
	want := "\rreconciling 5/50 apps\x1b[K\r\x1b[KAPP  RESULT\na    failed\nfly-autoscaler: 5 of 50 apps failed\n"
	if got != want {
		t.Errorf("terminal got %q\nwant %q", got, want)
	}
}
