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
