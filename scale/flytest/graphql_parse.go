package flytest

// The GraphQL query parser: enough of the language for the queries fly-go
// and flyapi send.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseQuery parses an executable GraphQL document holding one query
// (named or anonymous) and returns its root selection set. Fragments and
// directives are not supported.
func parseQuery(src string, vars map[string]any) ([]*gqlField, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &gqlParser{toks: toks, vars: vars}
	if t := p.peek(); t.kind == tokName {
		switch t.text {
		case "query":
			p.pos++
		case "mutation", "subscription":
			return nil, fmt.Errorf("flytest: %s operations are not supported", t.text)
		default:
			return nil, fmt.Errorf("syntax error: unexpected %q", t.text)
		}
		if p.peek().kind == tokName { // operation name
			p.pos++
		}
		if p.peekPunct("(") { // variable definitions
			if err := p.skipBalanced("(", ")"); err != nil {
				return nil, err
			}
		}
	}
	fields, err := p.selectionSet()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tokEOF {
		return nil, fmt.Errorf("syntax error: unexpected %q after the operation", p.peek().text)
	}
	return fields, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokName
	tokPunct
	tokString
	tokNumber
)

type token struct {
	kind tokKind
	text string
}

func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			toks = append(toks, token{tokName, src[i:j]})
			i = j
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && strings.IndexByte("0123456789.eE+-", src[j]) >= 0 {
				j++
			}
			toks = append(toks, token{tokNumber, src[i:j]})
			i = j
		case c == '"':
			if strings.HasPrefix(src[i:], `"""`) {
				return nil, errors.New("flytest: block strings are not supported")
			}
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, errors.New("syntax error: unterminated string")
			}
			var s string
			if err := json.Unmarshal([]byte(src[i:j+1]), &s); err != nil {
				return nil, fmt.Errorf("syntax error: bad string %s", src[i:j+1])
			}
			toks = append(toks, token{tokString, s})
			i = j + 1
		case strings.IndexByte("{}()[]:$!=@", c) >= 0:
			toks = append(toks, token{tokPunct, string(c)})
			i++
		case strings.HasPrefix(src[i:], "..."):
			return nil, errors.New("flytest: fragments are not supported")
		default:
			return nil, fmt.Errorf("syntax error: unexpected character %q", c)
		}
	}
	return toks, nil
}

type gqlParser struct {
	toks []token
	pos  int
	vars map[string]any
}

func (p *gqlParser) peek() token {
	if p.pos >= len(p.toks) {
		return token{kind: tokEOF}
	}
	return p.toks[p.pos]
}

func (p *gqlParser) next() token {
	t := p.peek()
	p.pos++
	return t
}

func (p *gqlParser) peekPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *gqlParser) expect(s string) error {
	if t := p.next(); t.kind != tokPunct || t.text != s {
		return fmt.Errorf("syntax error: expected %q, got %q", s, t.text)
	}
	return nil
}

func (p *gqlParser) name() (string, error) {
	t := p.next()
	if t.kind != tokName {
		return "", fmt.Errorf("syntax error: expected a name, got %q", t.text)
	}
	return t.text, nil
}

func (p *gqlParser) skipBalanced(open, close string) error {
	depth := 0
	for {
		t := p.next()
		switch {
		case t.kind == tokEOF:
			return fmt.Errorf("syntax error: unbalanced %q", open)
		case t.kind == tokPunct && t.text == open:
			depth++
		case t.kind == tokPunct && t.text == close:
			depth--
			if depth == 0 {
				return nil
			}
		}
	}
}

func (p *gqlParser) selectionSet() ([]*gqlField, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var fields []*gqlField
	err := p.until("}", "selection set", func() error {
		f, err := p.field()
		fields = append(fields, f)
		return err
	})
	return fields, err
}

// until parses items with item up to the punctuation close, which it
// consumes; the input ending first is an unterminated what.
func (p *gqlParser) until(close, what string, item func() error) error {
	for !p.peekPunct(close) {
		if p.peek().kind == tokEOF {
			return fmt.Errorf("syntax error: unterminated %s", what)
		}
		if err := item(); err != nil {
			return err
		}
	}
	p.pos++
	return nil
}

// pair parses "name: value", an argument or an object's field.
func (p *gqlParser) pair() (string, any, error) {
	name, err := p.name()
	if err != nil {
		return "", nil, err
	}
	if err := p.expect(":"); err != nil {
		return "", nil, err
	}
	v, err := p.value()
	return name, v, err
}

func (p *gqlParser) field() (*gqlField, error) {
	name, err := p.name()
	if err != nil {
		return nil, err
	}
	f := &gqlField{name: name, args: map[string]any{}}
	if p.peekPunct(":") {
		p.pos++
		f.alias = name
		if f.name, err = p.name(); err != nil {
			return nil, err
		}
	}
	if p.peekPunct("(") {
		p.pos++
		err := p.until(")", "arguments", func() error {
			arg, v, err := p.pair()
			f.args[arg] = v
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if p.peekPunct("@") {
		return nil, errors.New("flytest: directives are not supported")
	}
	if p.peekPunct("{") {
		if f.sel, err = p.selectionSet(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// value parses an argument value; integers become int64, variables are
// substituted (JSON numbers that are whole become int64 too).
func (p *gqlParser) value() (any, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return t.text, nil
	case tokNumber:
		if n, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("syntax error: bad number %q", t.text)
		}
		return f, nil
	case tokName:
		switch t.text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return t.text, nil // enum value
	case tokPunct:
		switch t.text {
		case "$":
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			v := p.vars[name]
			if f, ok := v.(float64); ok && f == float64(int64(f)) {
				return int64(f), nil
			}
			return v, nil
		case "[":
			var list []any
			err := p.until("]", "list", func() error {
				v, err := p.value()
				list = append(list, v)
				return err
			})
			return list, err
		case "{":
			obj := map[string]any{}
			err := p.until("}", "object", func() error {
				k, v, err := p.pair()
				obj[k] = v
				return err
			})
			return obj, err
		}
	}
	return nil, fmt.Errorf("syntax error: unexpected %q in a value", t.text)
}
