package cmd

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Progress line timing: nothing is drawn for runs shorter than
// progressDelay, then the line is redrawn every progressInterval.
const (
	progressDelay    = time.Second
	progressInterval = 100 * time.Millisecond
)

// progressEnabled reports whether a run draws a progress line on stderr:
// only on a terminal, with NO_COLOR unset or empty, and neither --quiet nor
// --verbose (whose logs would tear the line apart).
func progressEnabled(s *Streams, rc *runConfig) bool {
	return s.ErrIsTerminal && !rc.noColor && !rc.render.Quiet && !rc.verbose
}

// progress draws "reconciling 340/1000 apps" on one line of w, redrawn in
// place with \r, and clears it when stopped. A nil *progress does nothing,
// so callers need not check whether it is enabled.
type progress struct {
	w           io.Writer
	done, total atomic.Int64
	stopOnce    sync.Once
	stop        chan struct{}
	finished    chan struct{}
}

// startProgress starts drawing on w after delay, every interval.
func startProgress(w io.Writer, delay, interval time.Duration) *progress {
	p := &progress{w: w, stop: make(chan struct{}), finished: make(chan struct{})}
	go p.loop(delay, interval)
	return p
}

// Update records that done of total apps are finished. It matches
// scale.Config.Progress and is safe for concurrent use.
func (p *progress) Update(done, total int) {
	if p == nil {
		return
	}
	p.total.Store(int64(total))
	// Workers finish in any order: keep the highest count seen.
	for {
		cur := p.done.Load()
		if int64(done) <= cur || p.done.CompareAndSwap(cur, int64(done)) {
			return
		}
	}
}

// Stop clears the line, if one was drawn, and returns once nothing more
// will be written.
func (p *progress) Stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.finished
}

func (p *progress) loop(delay, interval time.Duration) {
	defer close(p.finished)
	wait := time.NewTimer(delay)
	defer wait.Stop()
	select {
	case <-p.stop:
		return
	case <-wait.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var drawn string
	for {
		if total := p.total.Load(); total > 0 {
			if line := fmt.Sprintf("reconciling %d/%d apps", p.done.Load(), total); line != drawn {
				// \r back to the start, the line, then erase what a
				// longer previous line left to its right.
				fmt.Fprintf(p.w, "\r%s\x1b[K", line)
				drawn = line
			}
		}
		select {
		case <-p.stop:
			if drawn != "" {
				fmt.Fprint(p.w, "\r\x1b[K")
			}
			return
		case <-tick.C:
		}
	}
}
