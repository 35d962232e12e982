package cmd

import (
	"bytes"
	"os"
	"syscall"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/superfly/fly-autoscaler/query"
)

// Whatever its shape, a config file is cheap to read: it is a regular
// file (a FIFO would block the open, a device would never end), of at
// most maxConfigSize bytes, and its aliases may not expand it beyond that
// size either (a small file whose anchors are aliased over and over would
// decode into gigabytes).

// openConfig opens the config file, refusing anything but a regular file
// without blocking: a FIFO is opened non-blocking, then refused.
func openConfig(path string) (*os.File, error) {
	// Checked before the open, which fails on a socket, and again on the
	// file opened, which may have been replaced since.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, usagef("--config %s: not a regular file (%s): give the path of a YAML file", path, query.FileKind(fi.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, usagef("--config: %v", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, usagef("--config %s: not a regular file (%s): give the path of a YAML file", path, query.FileKind(fi.Mode()))
	}
	return f, nil
}

// fileLines are the lines of a config file's top-level keys and of the
// items of its metric-collectors, for errors that name them: "config.yml:4:
// concurrency: ...".
type fileLines struct {
	keys       map[string]int
	collectors []int
}

// checkConfigShape checks what the decoder would not, or only at a great
// cost: the text is UTF-8 (the error names the line), its aliases expand
// to at most maxConfigSize bytes, and no entry of policies or
// metric-collectors is empty. It returns the lines of the top-level keys.
// A file that is not valid YAML passes: the decoder reports it.
func checkConfigShape(path string, b []byte) (fileLines, error) {
	var lines fileLines
	// UTF-16 (with its byte order mark) is YAML too; the decoder reads it.
	utf16 := bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0xff, 0xfe})
	if !utf16 && !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return lines, usagef("%s:%d: not valid UTF-8: save the file as UTF-8 text", path, bytes.Count(b[:i], []byte("\n"))+1)
	}
	if line, r, ok := controlChar(b); ok && !utf16 {
		return lines, usagef("%s:%d: holds the control character U+%04X, which YAML does not allow in a file: remove it (in a double-quoted string, an escape such as \\x%02x is read)", path, line, r, r&0xff)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		return lines, nil
	}
	sizes := map[*yaml.Node]int{}
	if line, over := overExpanded(&doc, sizes, new(int)); over {
		return lines, usagef("%s:%d: with its aliases expanded the file is larger than 1 MiB: write the values out, or give a smaller configuration", path, line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return lines, nil // the decoder says what is wrong
	}
	lines.keys = map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		lines.keys[k.Value] = k.Line
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		switch k.Value {
		case "policies", "metric-collectors":
			if v.Kind != yaml.SequenceNode {
				continue
			}
			for j, item := range v.Content {
				if item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
					what := "a policy"
					if k.Value == "metric-collectors" {
						what = "a metric collector"
					}
					return lines, usagef("%s:%d: %s[%d]: empty entry: remove it, or give %s (a mapping of keys to values)", path, item.Line, k.Value, j, what)
				}
				if k.Value == "metric-collectors" {
					lines.collectors = append(lines.collectors, item.Line)
				}
			}
		}
	}
	return lines, nil
}

// overExpanded walks n in document order, adding to *total the size of
// each node with its aliases expanded (sizes memoizes an anchored node's),
// and returns the line of the node that takes the total over
// maxConfigSize.
func overExpanded(n *yaml.Node, sizes map[*yaml.Node]int, total *int) (line int, over bool) {
	if n.Kind == yaml.AliasNode {
		*total += expandedSize(n, sizes, map[*yaml.Node]bool{})
		return n.Line, *total > maxConfigSize
	}
	*total += len(n.Value) + 1
	if *total > maxConfigSize {
		return n.Line, true
	}
	for _, c := range n.Content {
		if line, over := overExpanded(c, sizes, total); over {
			return line, true
		}
	}
	return 0, false
}

// expandedSize is the size of n with every alias replaced by what it
// names: a byte per node and the bytes of each scalar, at most
// maxConfigSize+1. An alias to a node that holds it (which the decoder
// refuses) counts nothing.
func expandedSize(n *yaml.Node, sizes map[*yaml.Node]int, open map[*yaml.Node]bool) int {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1
		}
		n = n.Alias
	}
	if s, ok := sizes[n]; ok {
		return s
	}
	if open[n] {
		return 0
	}
	open[n] = true
	defer delete(open, n)
	size := len(n.Value) + 1
	for _, c := range n.Content {
		size = min(size+expandedSize(c, sizes, open), maxConfigSize+1)
	}
	sizes[n] = size
	return size
}

// controlChar finds the first character YAML refuses in a file's text
// (yaml.v3 would say so without a line): a C0 control but tab and line
// breaks, DEL, a C1 control but NEL, U+FFFE and U+FFFF.
func controlChar(b []byte) (line int, r rune, ok bool) {
	line = 1
	for _, r := range string(b) {
		switch {
		case r == '\n':
			line++
		case r == '\t', r == '\r', r == 0x85:
		case r < 0x20, r >= 0x7f && r <= 0x9f, r == 0xfffe, r == 0xffff:
			return line, r, true
		}
	}
	return 0, 0, false
}
