package pretrained

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The nsfwjs package wraps each model file in a minified browserify bundle whose
// single module does `X.exports=<literal>`. The literal is JavaScript, not JSON:
// keys are unquoted identifiers, booleans are written !0 and !1, numbers drop the
// leading zero (.5, -.08) and -0 appears. We parse exactly that subset into plain
// Go values (map[string]any, []any, float64, string, bool, nil) instead of running
// any JavaScript: loading a model must never execute code.

// exportsAssign finds the module's assignment. The bundle prelude also
// contains `module.exports=e()`, which is excluded because it is not followed
// by a literal. (A plain byte search: a regexp over the multi-megabyte base64
// strings of the shards took over a second per model.)
var exportsAssign = []byte(".exports=")

// exportedLiteral returns the value assigned to the module's exports in a
// bundle.
func exportedLiteral(src []byte) (any, error) {
	start, found := -1, 0
	for i := 0; ; {
		j := bytes.Index(src[i:], exportsAssign)
		if j < 0 {
			break
		}
		at := i + j + len(exportsAssign)
		if at < len(src) && (src[at] == '{' || src[at] == '"' || src[at] == '[') {
			found++
			start = at
		}
		i = at
	}
	if found != 1 {
		return nil, fmt.Errorf("expected exactly one `exports=<literal>` assignment in the bundle, found %d", found)
	}
	p := &jsParser{src: src, pos: start}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	// The module function closes right after the literal: `},{}]},{},[1])(1)});`.
	p.space()
	if p.pos >= len(src) || src[p.pos] != '}' {
		return nil, fmt.Errorf("offset %d: unexpected text after the exported literal: %q", p.pos, snippet(src, p.pos))
	}
	return v, nil
}

type jsParser struct {
	src []byte
	pos int
}

func snippet(src []byte, pos int) string {
	end := min(pos+24, len(src))
	return string(src[pos:end])
}

func (p *jsParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d (near %q): %s", p.pos, snippet(p.src, p.pos), fmt.Sprintf(format, args...))
}

func (p *jsParser) space() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// maxDepth bounds recursion so a hostile file cannot exhaust the stack; the
// topologies nest about ten levels.
const maxDepth = 64

func (p *jsParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("literal nested deeper than %d levels", maxDepth)
	}
	p.space()
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of file")
	}
	c := p.src[p.pos]
	switch {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"' || c == '\'':
		return p.str()
	case c == '!':
		// Minifiers write true as !0 and false as !1.
		if p.pos+1 < len(p.src) && (p.src[p.pos+1] == '0' || p.src[p.pos+1] == '1') {
			v := p.src[p.pos+1] == '0'
			p.pos += 2
			return v, nil
		}
		return nil, p.errorf("expected !0 or !1")
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		id := p.ident()
		switch id {
		case "null":
			return nil, nil
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "Infinity":
			return nil, p.errorf("Infinity is not a valid model value")
		}
		return nil, p.errorf("unsupported JavaScript value %q", id)
	}
}

func (p *jsParser) ident() string {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (p.pos > start && c >= '0' && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	return string(p.src[start:p.pos])
}

func (p *jsParser) object(depth int) (any, error) {
	p.pos++ // {
	m := map[string]any{}
	for {
		p.space()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unterminated object")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		var key string
		if c := p.src[p.pos]; c == '"' || c == '\'' {
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			key = s
		} else if c >= '0' && c <= '9' {
			start := p.pos
			for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
				p.pos++
			}
			key = string(p.src[start:p.pos])
		} else {
			key = p.ident()
			if key == "" {
				return nil, p.errorf("expected an object key")
			}
		}
		p.space()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key %q", key)
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, p.errorf("duplicate key %q", key)
		}
		m[key] = v
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == '}' {
			p.pos++
			return m, nil
		}
		return nil, p.errorf("expected ',' or '}' in object")
	}
}

func (p *jsParser) array(depth int) (any, error) {
	p.pos++ // [
	a := []any{}
	for {
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == ']' {
			p.pos++
			return a, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == ']' {
			p.pos++
			return a, nil
		}
		return nil, p.errorf("expected ',' or ']' in array")
	}
}

func (p *jsParser) number() (any, error) {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+' {
			p.pos++
			continue
		}
		break
	}
	text := string(p.src[start:p.pos])
	// strconv accepts ".5" and "-.5" but also hex, underscores and "inf", none of
	// which the characters above admit.
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		p.pos = start
		return nil, p.errorf("bad number %q", text)
	}
	return v, nil
}

func (p *jsParser) str() (string, error) {
	quote := p.src[p.pos]
	p.pos++
	// Large base64 weight strings have no escapes: take the fast path.
	if end := bytes.IndexByte(p.src[p.pos:], quote); end >= 0 && bytes.IndexByte(p.src[p.pos:p.pos+end], '\\') < 0 {
		s := string(p.src[p.pos : p.pos+end])
		p.pos += end + 1
		return s, nil
	}
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\\':
			if p.pos+1 >= len(p.src) {
				return "", p.errorf("unterminated escape")
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if p.pos+4 > len(p.src) {
					return "", p.errorf("short \\u escape")
				}
				r, err := strconv.ParseUint(string(p.src[p.pos:p.pos+4]), 16, 32)
				if err != nil {
					return "", p.errorf("bad \\u escape")
				}
				b.WriteRune(rune(r))
				p.pos += 4
			default:
				b.WriteByte(e) // \" \' \\ \/ stand for themselves
			}
		default:
			r, size := utf8.DecodeRune(p.src[p.pos:])
			b.WriteRune(r)
			p.pos += size
		}
	}
	return "", p.errorf("unterminated string")
}
