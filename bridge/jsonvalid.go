package bridge

import "unicode/utf8"

// maxJSONDepth is encoding/json's nesting limit: deeper documents are not
// valid to it, so they are not embedded either.
const maxJSONDepth = 10000

// validJSON reports whether b is one JSON text that any parser accepts:
// json.Valid's grammar, and UTF-8 throughout (json.Valid lets invalid UTF-8
// through inside strings, which would make a batch body unreadable to
// strict parsers such as Ruby's). A batch embeds every record value that
// passes as data, so this runs once per record; it is a plain recursive
// descent, about four times as fast as json.Valid's scanner.
func validJSON(b []byte) bool {
	i, ok := jsonValue(b, skipJSONSpace(b, 0), 1)
	return ok && skipJSONSpace(b, i) == len(b)
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonValue checks the value at b[i:] and returns the index after it.
// depth counts the containers open around it, itself included.
func jsonValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		return jsonContainer(b, i, depth, '}')
	case c == '[':
		return jsonContainer(b, i, depth, ']')
	case c == '"':
		return jsonString(b, i)
	case c == '-' || '0' <= c && c <= '9':
		return jsonNumber(b, i)
	case c == 't':
		return jsonLiteral(b, i, "true")
	case c == 'f':
		return jsonLiteral(b, i, "false")
	case c == 'n':
		return jsonLiteral(b, i, "null")
	}
	return i, false
}

// jsonContainer checks the object (closer '}') or array (closer ']')
// starting at b[i]: members separated by commas up to closer, each of an
// object's a string key and a colon before its value.
func jsonContainer(b []byte, i, depth int, closer byte) (int, bool) {
	if depth > maxJSONDepth {
		return i, false
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true
	}
	for {
		var ok bool
		if closer == '}' {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, ok = jsonString(b, i); !ok {
				return i, false
			}
			if i = skipJSONSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			i = skipJSONSpace(b, i+1)
		}
		if i, ok = jsonValue(b, i, depth+1); !ok {
			return i, false
		}
		if i = skipJSONSpace(b, i); i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case closer:
			return i + 1, true
		default:
			return i, false
		}
	}
}

// plainStringByte marks the bytes a JSON string holds as they are: ASCII
// from 0x20 but the quote and the backslash.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// jsonString checks the string starting at the quote b[i].
func jsonString(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// jsonNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i:].
func jsonNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func jsonLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
