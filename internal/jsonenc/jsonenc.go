// Package jsonenc appends JSON exactly as encoding/json's Marshal would, for
// the hot paths where Marshal's reflection and its byte-by-byte scanner of
// json.RawMessage cost more than the rest of the work (an audit document of
// a config write: 5 of its 17 µs went to compacting the 256-byte value).
//
// Every function has a fast path for the common input and falls back to
// encoding/json for anything else, so the output is byte for byte what
// Marshal gives: replicas running different versions keep equal audit
// documents. The fuzz tests hold the fast paths to that.
package jsonenc

import (
	"encoding/json"
	"strconv"
)

// AppendRaw appends what json.Marshal gives for a json.RawMessage holding
// v: v itself when it is valid JSON that compaction and HTML escaping leave
// unchanged, "null" for a nil v, otherwise Marshal's answer. ok is false
// where Marshal fails (v is not valid JSON, or empty but not nil); dst is
// then unchanged.
func AppendRaw(dst, v []byte) (out []byte, ok bool) {
	if v == nil {
		return append(dst, "null"...), true
	}
	if Plain(v) {
		return append(dst, v...), true
	}
	b, err := json.Marshal(json.RawMessage(v))
	if err != nil {
		return dst, false
	}
	return append(dst, b...), true
}

// AppendString appends s as json.Marshal encodes a string (HTML characters
// escaped, invalid UTF-8 replaced).
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// AppendUint appends n as json.Marshal encodes an unsigned integer.
func AppendUint(dst []byte, n uint64) []byte { return strconv.AppendUint(dst, n, 10) }

// maxDepth bounds the nesting Plain follows; deeper values take
// encoding/json's path (whose own limit is 10,000).
const maxDepth = 64

// Plain reports whether v is a complete, valid JSON value in the form
// json.Compact with HTML escaping leaves unchanged: no whitespace outside
// strings, and only printable ASCII without <, > and & inside them. It
// answers false for anything it does not prove, valid or not.
func Plain(v []byte) bool {
	p := plainParser{b: v}
	return p.value(0) && p.i == len(v)
}

type plainParser struct {
	b []byte
	i int
}

func (p *plainParser) value(depth int) bool {
	if p.i >= len(p.b) || depth > maxDepth {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return false
}

func (p *plainParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *plainParser) object(depth int) bool {
	p.i++ // {
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' || !p.str() {
			return false
		}
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		if !p.value(depth + 1) {
			return false
		}
		if more, ok := p.next('}'); !more {
			return ok
		}
	}
}

func (p *plainParser) array(depth int) bool {
	p.i++ // [
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return true
	}
	for {
		if !p.value(depth + 1) {
			return false
		}
		if more, ok := p.next(']'); !more {
			return ok
		}
	}
}

// next reads what follows a member of an object or array: a comma (more
// members follow) or the closing bracket (ok, the end).
func (p *plainParser) next(closing byte) (more, ok bool) {
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return true, true
	case closing:
		p.i++
		return false, true
	}
	return false, false
}

// str reads a string from its opening quote.
func (p *plainParser) str() bool {
	p.i++ // "
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if len(p.b)-p.i < 6 {
					return false
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !isHex(h) {
						return false
					}
				}
				p.i += 6
			default:
				return false
			}
		case c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&':
			return false
		default:
			p.i++
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *plainParser) number() bool {
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i >= len(p.b):
		return false
	case p.b[p.i] == '0':
		p.i++
	case isDigit(p.b[p.i]):
		for p.i < len(p.b) && isDigit(p.b[p.i]) {
			p.i++
		}
	default:
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

func (p *plainParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && isDigit(p.b[p.i]) {
		p.i++
	}
	return p.i > start
}
