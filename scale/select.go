package scale

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/glob"
)

// Selector picks the apps a run reconciles: names or glob patterns
// (gobwas/glob: *, ?, [a-c], {a,b}) to include, and patterns to exclude.
type Selector struct {
	include []pattern
	exclude []pattern
}

type pattern struct {
	src string
	g   glob.Glob
}

// NewSelector compiles include and exclude patterns. The error names the
// offending pattern.
func NewSelector(include, exclude []string) (*Selector, error) {
	s := &Selector{}
	for _, list := range []struct {
		src []string
		dst *[]pattern
	}{{include, &s.include}, {exclude, &s.exclude}} {
		for _, p := range list.src {
			if err := checkBraces(p); err != nil {
				return nil, fmt.Errorf("pattern %q: %w", shorten(p), err)
			}
			g, err := glob.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", shorten(p), err)
			}
			*list.dst = append(*list.dst, pattern{src: p, g: g})
		}
	}
	return s, nil
}

// shorten cuts a pattern for an error to its first 60 bytes.
func shorten(p string) string {
	if len(p) <= 64 {
		return p
	}
	cut := 60
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return p[:cut] + "..."
}

// IsGlob reports whether p has glob syntax (otherwise it is a plain name).
func IsGlob(p string) bool { return strings.ContainsAny(p, `*?[]{}\`) }

// Names returns the include patterns when every one of them is a plain app
// name: such a run needs no listing of the org's apps. ok is false otherwise.
func (s *Selector) Names() (names []string, ok bool) {
	for _, p := range s.include {
		if IsGlob(p.src) {
			return nil, false
		}
		if !s.excluded(p.src) {
			names = append(names, p.src)
		}
	}
	return names, true
}

// Match reports whether the app name is selected.
func (s *Selector) Match(name string) bool {
	for _, p := range s.include {
		if p.g.Match(name) {
			return !s.excluded(name)
		}
	}
	return false
}

func (s *Selector) excluded(name string) bool {
	for _, p := range s.exclude {
		if p.g.Match(name) {
			return true
		}
	}
	return false
}

// MaxAlternatives bounds the alternatives of one glob ({a,b,c} has
// three): gobwas/glob compiles n of them in about n² steps, and 20,000 in
// minutes. A longer list is a list of globs.
const MaxAlternatives = 128

// Alternatives counts the alternatives of the braces of a glob: {a,b} has
// two; each brace counts its own, so {a,{b,c}} has four.
func Alternatives(p string) int {
	n, class := 0, false
	var open []int // alternatives of each open brace
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case class:
			class = c != ']'
		case c == '[':
			class = true
		case c == '{':
			open = append(open, 1)
		case c == ',' && len(open) > 0:
			open[len(open)-1]++
		case c == '}' && len(open) > 0:
			n += open[len(open)-1]
			open = open[:len(open)-1]
		}
	}
	return n
}

// checkBraces refuses an unclosed { or a } without its {: gobwas/glob
// would read "{a1" as the literal name a1, as it refuses an unclosed [.
// It refuses more than MaxAlternatives alternatives too.
func checkBraces(p string) error {
	if n := Alternatives(p); n > MaxAlternatives {
		return fmt.Errorf("%d alternatives in braces, at most %d: list the names or globs as separate items instead", n, MaxAlternatives)
	}
	depth, class := 0, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++ // an escaped character is literal
		case class:
			class = c != ']'
		case c == '[':
			class = true
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return fmt.Errorf("unexpected } at %d: no { opens it", i+1)
			}
			depth--
		}
	}
	if depth > 0 {
		return errors.New("unclosed {: close the alternatives, e.g. {a,b}")
	}
	return nil
}
