package cmd

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commandLine finds "fly-autoscaler WORD" where fly-autoscaler is the
// command run: at the start of a line, after a backtick, "$ ", "&& " or "| ".
var commandLine = regexp.MustCompile("(?:^|`|\\$ |&& |\\| )fly-autoscaler +(\\S+)")

// TestDocsCommandLines: every command line in the docs names a command
// (fly-autoscaler --output json would print the help, not a report).
func TestDocsCommandLines(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "README.md"), filepath.Join("..", "CONTRIBUTING.md"), filepath.Join("..", "deploy", "fly.toml"))
	var commands []string
	for _, c := range newApp(&Streams{}, Env{}).Commands {
		commands = append(commands, c.Names()...)
	}
	commands = append(commands, "help", "--help", "--version")
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range commandLine.FindAllStringSubmatch(strings.TrimLeft(line, " #"), -1) {
				found++
				if word := strings.Trim(m[1], "`'\""); !slices.Contains(commands, word) {
					t.Errorf("%s:%d: fly-autoscaler %s: not a command (%s)", f, i+1, word, strings.TrimSpace(line))
				}
			}
		}
	}
	if found < 5 {
		t.Errorf("only %d command lines found: the pattern is broken", found)
	}
}
