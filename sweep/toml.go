package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tomlToJSON converts a TOML grid to the JSON grid it stands for, keeping the
// order of keys (the order of the array). It reads the subset of TOML a grid
// needs: comments, top-level keys, one level of [tables], basic and literal
// strings, integers, floats, booleans, arrays (over several lines) and inline
// tables. Dates, multi-line strings, dotted keys and arrays of tables are
// refused with the line that has them.
func tomlToJSON(src []byte) ([]byte, error) {
	p := &tomlParser{s: src, line: 1}
	type table struct {
		name    string
		members []string
		keys    map[string]bool
	}
	root := &table{keys: map[string]bool{}}
	var tables []*table
	cur := root
	for {
		p.skipSpace(true)
		if p.eof() {
			break
		}
		if p.peek() == '[' {
			p.i++
			if !p.eof() && p.peek() == '[' {
				return nil, p.errorf("arrays of tables ([[...]]) are not part of a grid")
			}
			p.skipSpace(false)
			name, err := p.key()
			if err != nil {
				return nil, err
			}
			p.skipSpace(false)
			if p.eof() || p.peek() != ']' {
				return nil, p.errorf("table header [%s: want ] (one level of tables, no dotted names)", name)
			}
			p.i++
			if err := p.endOfLine(); err != nil {
				return nil, err
			}
			if root.keys[name] {
				return nil, p.errorf("table [%s] defined twice", name)
			}
			root.keys[name] = true
			cur = &table{name: name, keys: map[string]bool{}}
			tables = append(tables, cur)
			continue
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skipSpace(false)
		if p.eof() || p.peek() != '=' {
			return nil, p.errorf("after key %q: want = (dotted keys are not supported)", k)
		}
		p.i++
		p.skipSpace(false)
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if err := p.endOfLine(); err != nil {
			return nil, err
		}
		if cur.keys[k] {
			return nil, p.errorf("key %q given twice", k)
		}
		cur.keys[k] = true
		cur.members = append(cur.members, member(k, v))
	}
	all := root.members
	for _, t := range tables {
		all = append(all, member(t.name, "{"+strings.Join(t.members, ",")+"}"))
	}
	return []byte("{" + strings.Join(all, ",") + "}"), nil
}

func member(k, v string) string {
	kb, _ := json.Marshal(k)
	return string(kb) + ":" + v
}

type tomlParser struct {
	s    []byte
	i    int
	line int
}

func (p *tomlParser) eof() bool  { return p.i >= len(p.s) }
func (p *tomlParser) peek() byte { return p.s[p.i] }

func (p *tomlParser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, args...))
}

// skipSpace skips blanks and comments, and newlines too when newlines is set.
func (p *tomlParser) skipSpace(newlines bool) {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			p.i++
		case c == '\n' && newlines:
			p.i++
			p.line++
		case c == '#':
			for !p.eof() && p.peek() != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func (p *tomlParser) endOfLine() error {
	p.skipSpace(false)
	if p.eof() {
		return nil
	}
	if p.peek() != '\n' {
		return p.errorf("unexpected %q after the value (one key = value per line)", p.rest())
	}
	return nil
}

// rest is the remainder of the line, for messages.
func (p *tomlParser) rest() string {
	end := bytes.IndexByte(p.s[p.i:], '\n')
	if end < 0 {
		end = len(p.s) - p.i
	}
	return string(p.s[p.i : p.i+end])
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (p *tomlParser) key() (string, error) {
	if p.eof() {
		return "", p.errorf("want a key")
	}
	switch p.peek() {
	case '"':
		return p.basicString()
	case '\'':
		return p.literalString()
	}
	start := p.i
	for !p.eof() && isBare(p.peek()) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("want a key, found %q", p.rest())
	}
	return string(p.s[start:p.i]), nil
}

// value parses one TOML value and returns it as JSON text.
func (p *tomlParser) value() (string, error) {
	if p.eof() {
		return "", p.errorf("missing value")
	}
	switch c := p.peek(); {
	case c == '"' || c == '\'':
		var s string
		var err error
		if c == '"' {
			s, err = p.basicString()
		} else {
			s, err = p.literalString()
		}
		if err != nil {
			return "", err
		}
		b, _ := json.Marshal(s)
		return string(b), nil
	case c == '[':
		return p.array()
	case c == '{':
		return p.inlineTable()
	}
	start := p.i
	for !p.eof() && (isBare(p.peek()) || strings.IndexByte("+.:", p.peek()) >= 0) {
		p.i++
	}
	tok := string(p.s[start:p.i])
	switch tok {
	case "true", "false":
		return tok, nil
	case "":
		return "", p.errorf("want a value, found %q", p.rest())
	}
	return p.number(tok)
}

// number converts a TOML integer or float to JSON, keeping its spelling
// (0.010 stays 0.010) apart from underscores and a leading +.
func (p *tomlParser) number(tok string) (string, error) {
	if strings.ContainsAny(tok, ":") || strings.Count(tok, "-") > 1 && !strings.ContainsAny(tok, "eE") {
		return "", p.errorf("%q: dates and times are not part of a grid", tok)
	}
	t := strings.TrimPrefix(tok, "+")
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0b") {
		return "", p.errorf("%q: write numbers in decimal", tok)
	}
	if strings.Contains(t, "__") || strings.HasPrefix(t, "_") || strings.HasSuffix(t, "_") {
		return "", p.errorf("%q: underscores go between digits", tok)
	}
	t = strings.ReplaceAll(t, "_", "")
	if !json.Valid([]byte(t)) {
		return "", p.errorf("%q is not a string, number, boolean, array or inline table (strings need quotes)", tok)
	}
	if _, err := strconv.ParseFloat(t, 64); err != nil {
		return "", p.errorf("%q: %v", tok, err)
	}
	return t, nil
}

func (p *tomlParser) array() (string, error) {
	p.i++ // [
	var items []string
	for {
		p.skipSpace(true)
		if p.eof() {
			return "", p.errorf("array not closed with ]")
		}
		if p.peek() == ']' {
			p.i++
			return "[" + strings.Join(items, ",") + "]", nil
		}
		v, err := p.value()
		if err != nil {
			return "", err
		}
		items = append(items, v)
		p.skipSpace(true)
		if p.eof() {
			return "", p.errorf("array not closed with ]")
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
		default:
			return "", p.errorf("in array: want , or ], found %q", p.rest())
		}
	}
}

func (p *tomlParser) inlineTable() (string, error) {
	p.i++ // {
	var members []string
	seen := map[string]bool{}
	p.skipSpace(false)
	if !p.eof() && p.peek() == '}' {
		p.i++
		return "{}", nil
	}
	for {
		p.skipSpace(false)
		if p.eof() || p.peek() == '\n' {
			return "", p.errorf("inline table not closed with } (inline tables stay on one line)")
		}
		k, err := p.key()
		if err != nil {
			return "", err
		}
		if seen[k] {
			return "", p.errorf("key %q given twice in an inline table", k)
		}
		seen[k] = true
		p.skipSpace(false)
		if p.eof() || p.peek() != '=' {
			return "", p.errorf("in inline table: want = after %q", k)
		}
		p.i++
		p.skipSpace(false)
		v, err := p.value()
		if err != nil {
			return "", err
		}
		members = append(members, member(k, v))
		p.skipSpace(false)
		if p.eof() || p.peek() == '\n' {
			return "", p.errorf("inline table not closed with } (inline tables stay on one line)")
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return "{" + strings.Join(members, ",") + "}", nil
		default:
			return "", p.errorf("in inline table: want , or } (on the same line), found %q", p.rest())
		}
	}
}

func (p *tomlParser) literalString() (string, error) {
	if bytes.HasPrefix(p.s[p.i:], []byte("'''")) {
		return "", p.errorf("multi-line strings are not part of a grid")
	}
	p.i++
	start := p.i
	for !p.eof() && p.peek() != '\'' {
		if p.peek() == '\n' {
			return "", p.errorf("string not closed on its line")
		}
		p.i++
	}
	if p.eof() {
		return "", p.errorf("string not closed on its line")
	}
	s := string(p.s[start:p.i])
	p.i++
	return s, nil
}

func (p *tomlParser) basicString() (string, error) {
	if bytes.HasPrefix(p.s[p.i:], []byte(`"""`)) {
		return "", p.errorf("multi-line strings are not part of a grid")
	}
	p.i++
	var b strings.Builder
	for {
		if p.eof() || p.peek() == '\n' {
			return "", p.errorf("string not closed on its line")
		}
		c := p.peek()
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.eof() {
				return "", p.errorf("string not closed on its line")
			}
			e := p.peek()
			p.i++
			switch e {
			case '"', '\\':
				b.WriteByte(e)
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
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if p.i+n > len(p.s) {
					return "", p.errorf("short \\%c escape", e)
				}
				r, err := strconv.ParseUint(string(p.s[p.i:p.i+n]), 16, 32)
				if err != nil || !utf8.ValidRune(rune(r)) {
					return "", p.errorf("bad \\%c escape %q", e, p.s[p.i:p.i+n])
				}
				b.WriteRune(rune(r))
				p.i += n
			default:
				return "", p.errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
}
