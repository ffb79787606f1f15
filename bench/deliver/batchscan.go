package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// batchContentType is the Content-Type of kbridge's batch requests.
const batchContentType = "application/cloudevents-batch+json"

// coord is where a record is: what the webhook tallies.
type coord struct {
	partition int32
	offset    int64
}

// scanBatch reads the body of a batch request, a JSON array of CloudEvents
// JSON objects, and appends each event's (kafkapartition, kafkaoffset) to
// dst in the order of the array. It is a small scanner rather than
// encoding/json so that the webhook stays cheap next to kbridge: it walks
// the top level of each event member by member, reads those two members
// (kafkapartition a JSON integer, kafkaoffset a JSON string of digits) and
// skips every other value, finding the end of a string with
// bytes.IndexByte, so a member such as data_base64 costs little. Because
// it follows the structure, the same names inside data are not mistaken
// for the event's own.
//
// It checks the structure it walks (an array of objects, each with exactly
// one of both members, strings closed, nothing after the array) but not
// all of JSON: numbers and literals of other members, escapes and control
// characters inside strings are skipped unread. json.Valid checks those
// (-webhook-validate).
func scanBatch(body []byte, dst []coord) ([]coord, error) {
	s := scanner{b: body}
	s.space()
	if !s.eat('[') {
		return dst, s.errorf("not a JSON array")
	}
	s.space()
	if s.eat(']') {
		return dst, s.errorf("an empty batch")
	}
	for {
		c, err := s.event()
		if err != nil {
			return dst, fmt.Errorf("event %d: %w", len(dst), err)
		}
		dst = append(dst, c)
		s.space()
		if s.eat(',') {
			s.space()
			continue
		}
		if !s.eat(']') {
			return dst, s.errorf("want , or ] after an event")
		}
		break
	}
	s.space()
	if s.i != len(s.b) {
		return dst, s.errorf("data after the array")
	}
	return dst, nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("batch body at byte %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c if it is next.
func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// event reads one event object and returns its coordinates.
func (s *scanner) event() (coord, error) {
	var c coord
	var havePartition, haveOffset bool
	if !s.eat('{') {
		return c, s.errorf("want an object")
	}
	s.space()
	if s.eat('}') {
		return c, errors.New("no kafkapartition and kafkaoffset")
	}
	for {
		name, err := s.str()
		if err != nil {
			return c, err
		}
		s.space()
		if !s.eat(':') {
			return c, s.errorf("want : after a member name")
		}
		s.space()
		switch string(name) { // no allocation: the conversion is only compared
		case "kafkapartition":
			if havePartition {
				return c, s.errorf("kafkapartition twice")
			}
			havePartition = true
			p, err := s.integer(32)
			if err != nil {
				return c, fmt.Errorf("kafkapartition: %w", err)
			}
			c.partition = int32(p)
		case "kafkaoffset":
			if haveOffset {
				return c, s.errorf("kafkaoffset twice")
			}
			haveOffset = true
			digits, err := s.str()
			if err != nil {
				return c, fmt.Errorf("kafkaoffset: %w", err)
			}
			if c.offset, err = strconv.ParseInt(string(digits), 10, 64); err != nil {
				return c, fmt.Errorf("kafkaoffset: %w", err)
			}
		default:
			if err := s.skipValue(); err != nil {
				return c, err
			}
		}
		s.space()
		if s.eat(',') {
			s.space()
			continue
		}
		if !s.eat('}') {
			return c, s.errorf("want , or } after a member")
		}
		break
	}
	if !havePartition || !haveOffset {
		return c, fmt.Errorf("kafkapartition given: %t, kafkaoffset given: %t", havePartition, haveOffset)
	}
	return c, nil
}

// str reads a JSON string and returns its raw contents, escapes as they
// are.
func (s *scanner) str() ([]byte, error) {
	if !s.eat('"') {
		return nil, s.errorf("want a string")
	}
	start := s.i
	for {
		k := bytes.IndexByte(s.b[s.i:], '"')
		if k < 0 {
			s.i = len(s.b)
			return nil, s.errorf("unterminated string")
		}
		end := s.i + k
		s.i = end + 1
		// The quote ends the string unless an odd number of backslashes
		// precede it.
		n := 0
		for j := end - 1; j >= start && s.b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return s.b[start:end], nil
		}
	}
}

// integer reads a JSON integer of bits bits.
func (s *scanner) integer(bits int) (int64, error) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, bits)
	if err != nil {
		return 0, s.errorf("not an integer: %v", err)
	}
	return n, nil
}

// skipValue skips one value: a string, an object or array with whatever
// they hold, or a number or literal up to the next delimiter.
func (s *scanner) skipValue() error {
	if s.i >= len(s.b) {
		return s.errorf("want a value")
	}
	switch s.b[s.i] {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		return s.skipNested()
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if s.i == start {
				return s.errorf("want a value")
			}
			return nil
		}
		s.i++
	}
	return nil
}

// skipNested skips an object or array, matching brackets outside strings.
func (s *scanner) skipNested() error {
	var stack []byte // the closers expected, innermost last
	for s.i < len(s.b) {
		k := bytes.IndexAny(s.b[s.i:], `"{}[]`)
		if k < 0 {
			break
		}
		s.i += k
		switch c := s.b[s.i]; c {
		case '"':
			if _, err := s.str(); err != nil {
				return err
			}
			continue
		case '{':
			stack = append(stack, '}')
		case '[':
			stack = append(stack, ']')
		default:
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return s.errorf("unbalanced %c", c)
			}
			stack = stack[:len(stack)-1]
		}
		s.i++
		if len(stack) == 0 {
			return nil
		}
	}
	s.i = len(s.b)
	return s.errorf("unterminated object or array")
}
