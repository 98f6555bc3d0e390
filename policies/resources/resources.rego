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
#   Why a permission's resource pattern is malformed, as the message the
#   API returns; undefined when it is well formed. A pattern is one or more
#   segments separated by ":"; no segment is empty; "*" stands only as a
#   whole segment; a segment holds only letters, marks, numbers,
#   punctuation and symbols (no whitespace, no control or format
#   character). The sidecar checks every pattern with this rule when a
#   permission is written (and, before it, that the pattern is UTF-8 and at
#   most 1024 bytes long).
pattern_error(pattern) := "resource pattern is empty" if {
	pattern == ""
} else := _segment_errors(pattern)[0] if {
	count(_segment_errors(pattern)) > 0
}

# METADATA
# description: True when the resource pattern is well formed (see pattern_error).
valid_pattern(pattern) if not pattern_error(pattern)

# Segment by segment, in order; a segment's first fault is its error.
_segment_errors(pattern) := [msg |
	some i, seg in split(pattern, ":")
	msg := _segment_error(pattern, i, seg)
]

_segment_error(pattern, i, seg) := sprintf(
	"resource pattern %q has an empty segment at position %d",
	[pattern, i + 1],
) if {
	seg == ""
} else := sprintf("resource pattern %q: '*' must be a whole segment, not part of %q", [pattern, seg]) if {
	seg != "*"
	contains(seg, "*")
} else := sprintf(
	"resource pattern %q: contains whitespace or a control character (%s)",
	[pattern, _quote_char(c)],
) if {
	[c] := regex.find_n(`[^\pL\pM\pN\pP\pS]`, seg, 1)
}

# A character quoted as Go quotes a rune ('\t', ' ', '\u00a0'): the quoting
# of a one-character string with single quotes instead of double (never
# one of the quotes itself, which are punctuation).
_quote_char(c) := concat("", ["'", trim_suffix(trim_prefix(sprintf("%q", [c]), `"`), `"`), "'"])

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
