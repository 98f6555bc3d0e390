package core

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateResourcePattern(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{"mcp:github:*", ""},
		{"*", ""},
		{"admin:*:delete", ""},
		{"é:日本", ""},
		{"", "resource pattern is empty"},
		{strings.Repeat("a", MaxPatternLen+1), "resource pattern is longer than 1024 bytes"},
		{"a::b", `resource pattern "a::b" has an empty segment at position 2`},
		{":a", `resource pattern ":a" has an empty segment at position 1`},
		{"a:", `resource pattern "a:" has an empty segment at position 2`},
		{"mcp:git*", `resource pattern "mcp:git*": '*' must be a whole segment, not part of "git*"`},
		{"a b", `resource pattern "a b": contains whitespace or a control character (' ')`},
		{"a:\x00", `resource pattern "a:\x00": contains whitespace or a control character ('\x00')`},
		{"a:\xff", `resource pattern "a:\xff": is not valid UTF-8`},
	} {
		err := ValidateResourcePattern(tt.pattern)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("ValidateResourcePattern(%q) = %q; want %q", tt.pattern, got, tt.want)
		}
	}
}

// The policy's grammar and printable, which checks actions, agree on what a
// segment may hold, character by character: for every character up to
// U+3000 (controls, spaces, Latin, combining marks, general punctuation)
// and the odd ones above.
func TestPatternCharactersAgreeWithPrintable(t *testing.T) {
	runes := []rune{0xfeff, 0xfff9, 0xfffd, 0xe000, 0x1f600, 0xe0001, 0x10ffff, 0x0378 + 0x10000}
	for r := rune(0); r < 0x3000; r++ {
		runes = append(runes, r)
	}
	for _, r := range runes {
		if !utf8.ValidRune(r) || r == ':' || r == '*' {
			continue
		}
		pattern := "x" + string(r)
		want := ""
		if err := printable(string(r)); err != nil {
			want = fmt.Sprintf("resource pattern %q: %v", pattern, err)
		}
		got := ""
		if err := ValidateResourcePattern(pattern); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("ValidateResourcePattern(%q) = %q; printable says %q", pattern, got, want)
		}
	}
}
