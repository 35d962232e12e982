//go:build race

package cmd

// raceEnabled is whether the tests run under the race detector, which
// slows the child processes of the re-exec tests several times over.
const raceEnabled = true
