package core

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/apperr"
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
		{"a b", `resource pattern "a b": contains whitespace or a control, format or invisible character (' ')`},
		{"a:\x00", `resource pattern "a:\x00": contains whitespace or a control, format or invisible character ('\x00')`},
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

// Actions and pattern segments refuse the same characters (the policy's
// forbidden_char), character by character: every character up to U+3000
// (controls, spaces, Latin, combining marks, general punctuation, the bidi
// and zero-width characters) and the odd ones above.
func TestActionsAndPatternsRefuseTheSameCharacters(t *testing.T) {
	runes := []rune{0x3164, 0xfe0f, 0xfeff, 0xfff9, 0xfffd, 0xffa0, 0xe000, 0x1f600, 0xe0001, 0xe0100, 0x10ffff, 0x0378 + 0x10000}
	for r := rune(0); r < 0x3000; r++ {
		runes = append(runes, r)
	}
	for _, r := range runes {
		if !utf8.ValidRune(r) || r == ':' || r == '*' {
			continue
		}
		s := "x" + string(r)
		actionErr, patternErr := ValidateAction(s), ValidateResourcePattern(s)
		if (actionErr == nil) != (patternErr == nil) {
			t.Errorf("ValidateAction(%q) = %v; ValidateResourcePattern says %v", s, actionErr, patternErr)
		}
		if actionErr != nil && !strings.HasSuffix(actionErr.Error(), strings.TrimPrefix(patternErr.Error(), fmt.Sprintf("resource pattern %q", s))) {
			t.Errorf("ValidateAction(%q) = %v; ValidateResourcePattern says %v", s, actionErr, patternErr)
		}
	}
}

func TestValidateResource(t *testing.T) {
	for _, tt := range []struct{ resource, code, want string }{
		{"mcp:github:repos", "", ""},
		{"é:日本", "", ""},
		{"", "missing_field", "resource is required"},
		{strings.Repeat("a", MaxResourceLen+1), "invalid_field", "resource is longer than 1024 bytes"},
		{"a:\xff", "invalid_field", "resource is not valid UTF-8"},
		{"mcp:github:*", "invalid_field", `resource "mcp:github:*": '*' is for permission patterns; a request names one resource`},
		{"mcp:github:re\u202eos", "invalid_field", `resource "mcp:github:re\u202eos": contains whitespace or a control, format or invisible character ('\u202e')`},
		{"mcp:github:re\u200bpos", "invalid_field", `resource "mcp:github:re\u200bpos": contains whitespace or a control, format or invisible character ('\u200b')`},
		{"mcp::x", "invalid_field", `resource "mcp::x" has an empty segment at position 2`},
	} {
		err := ValidateResource(tt.resource)
		var code, got string
		if e, ok := errors.AsType[*apperr.Error](err); ok {
			code, got = e.Code, e.Message
		} else if err != nil {
			got = err.Error()
		}
		if code != tt.code || got != tt.want {
			t.Errorf("ValidateResource(%q) = %s %q; want %s %q", tt.resource, code, got, tt.code, tt.want)
		}
	}
}

func TestValidateRequestAction(t *testing.T) {
	for _, tt := range []struct{ action, code string }{
		{"read", ""}, {"tools/call", ""}, {"repo:read", ""}, {"", "missing_field"}, {"*", "invalid_field"},
		{"re\u200bad", "invalid_field"}, {"re\u202ead", "invalid_field"}, {"read\n", "invalid_field"},
	} {
		code := ""
		if e, ok := errors.AsType[*apperr.Error](ValidateRequestAction(tt.action)); ok {
			code = e.Code
		}
		if code != tt.code {
			t.Errorf("ValidateRequestAction(%q) = %q; want %q", tt.action, code, tt.code)
		}
	}
}
