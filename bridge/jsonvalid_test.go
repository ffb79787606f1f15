package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var jsonCases = []string{
	`{"a":1}`, ` [1, 2.5e-3, -0, true, false, null, "x\u00e9\n\"", {}] `, `""`, `0`, `-`, `01`, `1.`, `1.e5`, `1e`, `1e+`,
	`-1.5E+10`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[`, `]`, `{`, `tru`, `truex`, `nul`, `"\x"`, `"\u12g4"`, `"\u12"`,
	"\"\x01\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\xef\xbb\xbf{}", `{"a":[{"b":{}}]}`, "[1]\n", " ", "",
	strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
	strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth),
	strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
}

// TestValidJSON: validJSON agrees with json.Valid on valid UTF-8 and
// refuses invalid UTF-8, which json.Valid lets through in strings.
func TestValidJSON(t *testing.T) {
	for _, c := range jsonCases {
		want := json.Valid([]byte(c)) && utf8.ValidString(c)
		if got := validJSON([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, want %v", c, got, want)
		}
	}
	if !json.Valid([]byte("\"\xff\"")) || validJSON([]byte("\"\xff\"")) {
		t.Error("the case this exists for: json.Valid accepts invalid UTF-8 in a string, validJSON must not")
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b) && utf8.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid && utf8.Valid = %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	doc := []byte(`{"payload":"` + strings.Repeat("x", 1000) + `","n":[1,2,3],"ok":true}`)
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			validJSON(doc)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			json.Valid(doc)
		}
	})
}
