package cmd

import (
	"runtime/debug"
	"testing"
)

// TestSetGC: without GOGC in the environment the collector runs at
// GCPercent; a GOGC the user set (which Go has applied) is left alone.
// Not parallel: it sets the process's collector.
func TestSetGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	SetGC(Env{"PATH": "/usr/bin"})
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, GCPercent)
	}
	for _, v := range []string{"200", "off"} {
		SetGC(Env{"GOGC": v})
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("GOGC=%s: GC percent changed to %d, want it left as Go set it", v, got)
		}
	}
}
