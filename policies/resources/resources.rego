# METADATA
# title: Kavach resource patterns
# description: |
#   The grammar of permission patterns, matching of resources against them,
#   and coverage of one pattern by another (used to stop delegation from
#   escalating). Segments are separated by ":"; a bare "*" matches
#   everything; a trailing "*" matches one or more segments; any other "*"
#   matches exactly one.
package kavach.resources

# METADATA
# description: |
#   The characters no segment of a resource pattern, of a request's resource
#   or of an action may hold, as an RE2 expression (Go's regexp, which OPA's
#   regex built-ins use): anything but a letter, mark, number, punctuation or
#   symbol (so no whitespace, no control, format, surrogate, private-use or
#   unassigned character: the format characters include the bidi controls
#   U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069 and the zero-width
#   U+200B-U+200D, U+2060-U+2064, U+FEFF), nor any of Unicode's
#   default-ignorable code points among letters and marks (the combining
#   grapheme joiner, the Hangul fillers, the Khmer inherent vowels, the
#   variation selectors). This is the one definition: the sidecar compiles
#   this very expression to check requests.
forbidden_char := concat("", [
	# Anything but a letter, mark, number, punctuation or symbol.
	`[^\pL\pM\pN\pP\pS]`,
	# The default-ignorable letters and marks:
	`|[`,
	`\x{034F}`, # the combining grapheme joiner
	`\x{115F}\x{1160}\x{3164}\x{FFA0}`, # the Hangul fillers
	`\x{17B4}\x{17B5}`, # the Khmer inherent vowels
	`\x{180B}-\x{180D}\x{180F}\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}`, # the variation selectors
	`]`,
])

# METADATA
# description: |
#   Why a permission's resource pattern is malformed, as the message the
#   API returns; undefined when it is well formed. A pattern is one or more
#   segments separated by ":"; no segment is empty; "*" stands only as a
#   whole segment; no segment holds a character of forbidden_char. The
#   sidecar checks every pattern with this rule when a permission is written
#   (and, before it, that the pattern is UTF-8 and at most 1024 bytes long).
pattern_error(pattern) := "resource pattern is empty" if {
	pattern == ""
} else := _segment_errors("resource pattern", pattern)[0] if {
	count(_segment_errors("resource pattern", pattern)) > 0
}

# METADATA
# description: True when the resource pattern is well formed (see pattern_error).
valid_pattern(pattern) if not pattern_error(pattern)

# METADATA
# description: |
#   Why a request's resource does not name one concrete resource, as the
#   message the API returns (400); undefined when it does. A resource is a
#   pattern without wildcards: segments separated by ":", none empty, none
#   holding "*" or a character of forbidden_char. The sidecar's check of
#   each request (engine.Patterns.ResourceError) gives the same answer,
#   message for message, without evaluating this rule on the hot path.
resource_error(resource) := "resource is empty" if {
	resource == ""
} else := _segment_errors("resource", resource)[0] if {
	count(_segment_errors("resource", resource)) > 0
}

# Segment by segment, in order; a segment's first fault is its error. what
# is "resource pattern" or "resource": only patterns may hold wildcards.
_segment_errors(what, s) := [msg |
	some i, seg in split(s, ":")
	msg := _segment_error(what, s, i, seg)
]

_segment_error(what, s, i, seg) := sprintf("%s %q has an empty segment at position %d", [what, s, i + 1]) if {
	seg == ""
} else := sprintf("resource pattern %q: '*' must be a whole segment, not part of %q", [s, seg]) if {
	what == "resource pattern"
	seg != "*"
	contains(seg, "*")
} else := sprintf("resource %q: '*' is for permission patterns; a request names one resource", [s]) if {
	what == "resource"
	contains(seg, "*")
} else := sprintf(
	"%s %q: contains whitespace or a control, format or invisible character (%s)",
	[what, s, _quote_char(c)],
) if {
	[c] := regex.find_n(forbidden_char, seg, 1)
}

# A character quoted as Go quotes a rune, in ASCII ('\t', ' ', '\u200b',
# '\u3164'), so that the character at fault is never shown as itself, which
# may be invisible: the quoting of a one-character string with single quotes
# instead of double (never one of the quotes itself, which are punctuation).
_quote_char(c) := concat("", ["'", trim_suffix(trim_prefix(sprintf("%+q", [c]), `"`), `"`), "'"])

# METADATA
# description: True when the permission pattern matches the resource.
# scope: document
match("*", _)

# A trailing "*" matches one or more remaining segments.
match(pattern, resource) if {
	p := split(pattern, ":")
	r := split(resource, ":")
	last := count(p) - 1
	last > 0
	p[last] == "*"
	count(r) > last
	every i, seg in array.slice(p, 0, last) {
		_segment_match(seg, r[i])
	}
	every seg in array.slice(r, last, count(r)) {
		seg != ""
	}
}

# Same number of segments; "*" matches exactly one.
match(pattern, resource) if {
	p := split(pattern, ":")
	r := split(resource, ":")
	count(p) == count(r)
	every i, seg in p {
		_segment_match(seg, r[i])
	}
}

_segment_match("*", s) if s != ""

_segment_match(seg, s) if {
	seg != "*"
	seg == s
}

# METADATA
# description: True when a permission's actions include the action.
# scope: document
action_match(actions, _) if "*" in actions

action_match(actions, action) if action in actions

# METADATA
# description: |
#   True when every resource the child pattern matches is matched by the
#   parent pattern.
# scope: document
covers("*", _)

# A trailing "*" in the parent covers anything at and after its position.
covers(parent, child) if {
	child != "*"
	p := split(parent, ":")
	c := split(child, ":")
	last := count(p) - 1
	last > 0
	p[last] == "*"
	count(c) > last
	every i, seg in array.slice(p, 0, last) {
		_segment_covers(seg, c[i])
	}
}

# Otherwise segment by segment; a child "*" is covered only by a parent "*".
# A child's trailing "*" matches one or more segments, so only a parent's
# trailing "*" (the rule above) covers it, never a same-length pattern.
covers(parent, child) if {
	child != "*"
	p := split(parent, ":")
	c := split(child, ":")
	count(p) == count(c)
	every i, seg in p {
		_segment_covers(seg, c[i])
	}
	c[count(c) - 1] != "*"
}

_segment_covers("*", _)

_segment_covers(seg, c) if seg == c

# METADATA
# description: True when the parent actions include every child action.
# scope: document
actions_cover(parent, _) if "*" in parent

actions_cover(parent, child) if {
	not "*" in parent
	not "*" in child
	every a in child {
		a in parent
	}
}
