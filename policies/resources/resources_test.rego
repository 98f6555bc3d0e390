package kavach.resources_test

import data.kavach.resources

_match_cases := [
	# [pattern, resource, matches]
	["*", "anything", true],
	["*", "a:b:c", true],
	["mcp:github:*", "mcp:github:repos", true],
	["mcp:github:*", "mcp:github:repos:issues", true],
	["mcp:github:*", "mcp:github", false],
	["mcp:github:*", "mcp:gitlab:repos", false],
	["mcp:github:*", "mcp:github:", false],
	["mcp:github:*", "mcp:github:repos:", false],
	["admin:*:delete", "admin:projects:delete", true],
	["admin:*:delete", "admin:x:create", false],
	["admin:*:delete", "admin::delete", false],
	["admin:*:delete", "admin:a:b:delete", false],
	["*:read", "docs:read", true],
	["*:*", "a:b", true],
	["*:*", "a:b:c", true],
	["*:*", "a", false],
	["mcp:github:repos", "mcp:github:repos", true],
	["mcp:github:repos", "mcp:github:Repos", false],
	["mcp:github:repos", "mcp:github:repos:x", false],
	["mcp:github:repos", "mcp:github", false],
]

test_match if {
	every c in _match_cases {
		_matches(c[0], c[1]) == c[2]
	}
}

_matches(p, r) if {
	resources.match(p, r)
} else := false

_covers(p, c) if {
	resources.covers(p, c)
} else := false

_cover_cases := [
	# [parent, child, covers]
	["*", "*", true],
	["*", "a:b", true],
	["a:*", "*", false],
	["mcp:github:*", "mcp:github:issues", true],
	["mcp:github:*", "mcp:github:*", true],
	["mcp:github:*", "mcp:github:issues:*", true],
	["mcp:github:*", "mcp:*", false],
	["mcp:github:*", "mcp:github", false],
	["mcp:github:*", "mcp:*:issues", false],
	["mcp:*:issues", "mcp:github:issues", true],
	["mcp:*:issues", "mcp:*:issues", true],
	["mcp:*:issues", "mcp:github:*", false],
	["mcp:*", "mcp:github:*", true],
	["a:*:*", "a:b:*", true],
	["a:b:c", "a:b:c", true],
	["a:b:c", "a:b:*", false],
	["a:b:c", "a:*:c", false],
	["a:b", "a:b:c", false],
	["a:*:c", "a:b:c", true],
]

test_covers if {
	every c in _cover_cases {
		_covers(c[0], c[1]) == c[2]
	}
}

# Coverage must agree with matching: whatever the child matches, the parent does.
test_covers_is_sound if {
	every c in _cover_cases {
		every r in ["a", "a:b", "a:b:c", "a:b:c:d", "mcp:github:issues", "mcp:github:issues:1", "mcp:x:issues", "x:y"] {
			_sound(c[0], c[1], r)
		}
	}
}

_sound(parent, child, _) if not resources.covers(parent, child)

_sound(_, child, r) if not resources.match(child, r)

_sound(parent, _, r) if resources.match(parent, r)

test_action_match if {
	resources.action_match(["read"], "read")
	resources.action_match(["*"], "anything")
	not resources.action_match(["read"], "Read")
	not resources.action_match([], "read")
}

test_actions_cover if {
	resources.actions_cover(["*"], ["*"])
	resources.actions_cover(["*"], ["read"])
	resources.actions_cover(["read", "write"], ["read"])
	resources.actions_cover(["read", "write"], ["write", "read"])
	not resources.actions_cover(["read"], ["read", "write"])
	not resources.actions_cover(["read"], ["*"])
}

test_actions_cover_checks_every_action if {
	not resources.actions_cover(["read"], ["write", "read"])
}

# [pattern, the error the API returns ("" when the pattern is well formed)]
_pattern_cases := [
	["*", ""],
	["*:*", ""],
	["mcp:github:*", ""],
	["admin:*:delete", ""],
	["docs:read-me_v2.md", ""],
	["é:日本:ü", ""],
	["", "resource pattern is empty"],
	[":", `resource pattern ":" has an empty segment at position 1`],
	[":a", `resource pattern ":a" has an empty segment at position 1`],
	["a::b", `resource pattern "a::b" has an empty segment at position 2`],
	["a:b:", `resource pattern "a:b:" has an empty segment at position 3`],
	["mcp:git*", `resource pattern "mcp:git*": '*' must be a whole segment, not part of "git*"`],
	["**", `resource pattern "**": '*' must be a whole segment, not part of "**"`],
	["a b", `resource pattern "a b": contains whitespace or a control, format or invisible character (' ')`],
	["a:b\tc", `resource pattern "a:b\tc": contains whitespace or a control, format or invisible character ('\t')`],
	["a:\u00a0", `resource pattern "a:\u00a0": contains whitespace or a control, format or invisible character ('\u00a0')`],
	["a:\u200b", `resource pattern "a:\u200b": contains whitespace or a control, format or invisible character ('\u200b')`],
	# A segment's first fault, in the first faulty segment, is the error.
	["a b::c", `resource pattern "a b::c": contains whitespace or a control, format or invisible character (' ')`],
	["::a b", `resource pattern "::a b" has an empty segment at position 1`],
	["x:a *", `resource pattern "x:a *": '*' must be a whole segment, not part of "a *"`],
	# Bidi controls, zero-width and other default-ignorable characters, in
	# the ASCII quoting of the character.
	["a:b\u202ec", `resource pattern "a:b\u202ec": contains whitespace or a control, format or invisible character ('\u202e')`],
	["a:\u2066b", `resource pattern "a:\u2066b": contains whitespace or a control, format or invisible character ('\u2066')`],
	["a:b\u00ad", `resource pattern "a:b\u00ad": contains whitespace or a control, format or invisible character ('\u00ad')`],
	["a:b\ufeff", `resource pattern "a:b\ufeff": contains whitespace or a control, format or invisible character ('\ufeff')`],
	["a:\u3164", "resource pattern \"a:\u3164\": contains whitespace or a control, format or invisible character ('\\u3164')"],
	["a:b\ufe0f", "resource pattern \"a:b\ufe0f\": contains whitespace or a control, format or invisible character ('\\ufe0f')"],
	["a:b\u034f", "resource pattern \"a:b\u034f\": contains whitespace or a control, format or invisible character ('\\u034f')"],
	["a:b\udb40\udc41", `resource pattern "a:b\U000e0041": contains whitespace or a control, format or invisible character ('\U000e0041')`],
	["a:b\udb40\udd00", "resource pattern \"a:b\udb40\udd00\": contains whitespace or a control, format or invisible character ('\\U000e0100')"],
	["a:\ue000", `resource pattern "a:\ue000": contains whitespace or a control, format or invisible character ('\ue000')`],
]

test_pattern_error if {
	every c in _pattern_cases {
		_pattern_error(c[0]) == c[1]
	}
}

test_valid_pattern if {
	every c in _pattern_cases {
		_valid_case(c)
	}
}

_valid_case([p, ""]) if resources.valid_pattern(p)

_valid_case([p, msg]) if {
	msg != ""
	not resources.valid_pattern(p)
}

_pattern_error(p) := resources.pattern_error(p) if {
	resources.pattern_error(p)
} else := ""

# [resource, the error the API returns ("" when it names one resource)]
_resource_cases := [
	["mcp:github:repos", ""],
	["docs:read-me_v2.md", ""],
	["é:日本:ü", ""],
	["a", ""],
	["", "resource is empty"],
	[":", `resource ":" has an empty segment at position 1`],
	["a::b", `resource "a::b" has an empty segment at position 2`],
	["mcp:github:", `resource "mcp:github:" has an empty segment at position 3`],
	["*", `resource "*": '*' is for permission patterns; a request names one resource`],
	["mcp:github:*", `resource "mcp:github:*": '*' is for permission patterns; a request names one resource`],
	["mcp:git*", `resource "mcp:git*": '*' is for permission patterns; a request names one resource`],
	["a b", `resource "a b": contains whitespace or a control, format or invisible character (' ')`],
	["mcp:github:re\u202eos", `resource "mcp:github:re\u202eos": contains whitespace or a control, format or invisible character ('\u202e')`],
	["mcp:github:re\u200bpos", `resource "mcp:github:re\u200bpos": contains whitespace or a control, format or invisible character ('\u200b')`],
	["a:\u0000", `resource "a:\x00": contains whitespace or a control, format or invisible character ('\x00')`],
	# The first faulty segment's first fault.
	["a b:*", `resource "a b:*": contains whitespace or a control, format or invisible character (' ')`],
	["*::", `resource "*::": '*' is for permission patterns; a request names one resource`],
]

test_resource_error if {
	every c in _resource_cases {
		_resource_error(c[0]) == c[1]
	}
}

_resource_error(r) := resources.resource_error(r) if {
	resources.resource_error(r)
} else := ""

# A resource is a pattern without wildcards: wherever there is no "*", the
# two grammars accept the same strings.
test_resource_grammar_is_the_pattern_grammar if {
	every c in array.concat(_resource_cases, _pattern_cases) {
		_same_verdict(c[0])
	}
}

_same_verdict(s) if contains(s, "*")

_same_verdict(s) if {
	not contains(s, "*")
	_resource_error(s) == ""
	_pattern_error(s) == ""
}

_same_verdict(s) if {
	not contains(s, "*")
	_resource_error(s) != ""
	_pattern_error(s) != ""
}
