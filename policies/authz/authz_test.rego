package kavach.authz_test

import data.kavach.authz

_agents := {
	"agt_reader": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": null,
		"permissions": [
			{"resource": "mcp:github:*", "actions": ["read"]},
			{"resource": "mcp:github:issues", "actions": ["read", "comment"]},
			{"resource": "admin:*:delete", "actions": ["*"]},
		],
	},
	"agt_any": {
		"ownerId": "user-2",
		"status": "active",
		"permissions": [{"resource": "*", "actions": ["read"]}],
	},
	"agt_revoked": {
		"ownerId": "user-1",
		"status": "revoked",
		"permissions": [{"resource": "*", "actions": ["*"]}],
	},
	"agt_suspended": {
		"ownerId": "user-1",
		"status": "suspended",
		"expiresAt": null,
		"permissions": [{"resource": "*", "actions": ["*"]}],
	},
	"agt_suspended_expired": {
		"ownerId": "user-1",
		"status": "suspended",
		"expiresAt": 1000,
		"permissions": [{"resource": "*", "actions": ["*"]}],
	},
	"agt_expiring": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": 1000,
		"permissions": [{"resource": "*", "actions": ["*"]}],
	},
	"agt_constrained": {
		"ownerId": "user-3",
		"status": "active",
		"permissions": [
			{"resource": "mcp:deploy:production", "actions": ["execute"], "constraints": {"requireApproval": true, "maxCallsPerHour": 5}},
			{"resource": "mcp:deploy:staging", "actions": ["execute"], "constraints": {}},
		],
	},
}

_tokens := {"hash-reader": "agt_reader", "hash-revoked": "agt_revoked", "hash-suspended": "agt_suspended", "hash-dangling": "agt_gone"}

_decide(inp) := d if {
	d := authz.decision with input as inp
		with data.kavach.agents as _agents
		with data.kavach.tokens as _tokens
}

_code(inp) := _decide(inp).code

test_allowed_by_id if {
	d := _decide({"agentId": "agt_reader", "action": "read", "resource": "mcp:github:repos", "now": 1})
	d.allowed
	d.code == "allowed"
	d.agentId == "agt_reader"
	d.ownerId == "user-1"
	d.reason == `permission "mcp:github:*" allows "read" on "mcp:github:repos"`
}

test_agent_id_is_resolved_for_extensions if {
	authz.agent_id == "agt_reader" with input as {"tokenHash": "hash-reader"}
		with data.kavach.tokens as _tokens
}

test_allowed_by_token if {
	d := _decide({"tokenHash": "hash-reader", "action": "comment", "resource": "mcp:github:issues", "now": 1})
	d.allowed
	d.agentId == "agt_reader"
}

test_unknown_token if {
	d := _decide({"tokenHash": "nope", "action": "read", "resource": "x", "now": 1})
	not d.allowed
	d.code == "invalid_token"
	d.agentId == ""
	d.ownerId == ""
}

test_token_of_deleted_agent_is_invalid if _code({"tokenHash": "hash-dangling", "action": "read", "resource": "x", "now": 1}) == "invalid_token"

test_missing_identity_is_invalid_token if _code({"action": "read", "resource": "x", "now": 1}) == "invalid_token"

test_unknown_agent if {
	d := _decide({"agentId": "agt_nope", "action": "read", "resource": "x", "now": 1})
	not d.allowed
	d.code == "agent_not_found"
	d.agentId == "agt_nope"
	d.reason == `agent "agt_nope" does not exist`
}

test_agent_id_wins_over_token if _code({"agentId": "agt_nope", "tokenHash": "hash-reader", "action": "read", "resource": "mcp:github:repos", "now": 1}) == "agent_not_found"

test_revoked_by_id if _code({"agentId": "agt_revoked", "action": "read", "resource": "x", "now": 1}) == "agent_revoked"

test_revoked_by_token if _code({"tokenHash": "hash-revoked", "action": "read", "resource": "x", "now": 1}) == "agent_revoked"

test_suspended_by_id if {
	d := _decide({"agentId": "agt_suspended", "action": "read", "resource": "x", "now": 1})
	not d.allowed
	d.code == "agent_suspended"
	d.reason == `agent "agt_suspended" is suspended until an admin resumes it`
	d.agentId == "agt_suspended"
	d.ownerId == "user-1"
}

test_suspended_by_token if {
	d := _decide({"tokenHash": "hash-suspended", "action": "read", "resource": "x", "now": 1})
	d.code == "agent_suspended"
	d.agentId == "agt_suspended"
}

# Revoked before suspended before expired: the states an admin or
# containment sets come before the one the clock brings.
test_suspended_comes_before_expired_after_revoked if {
	_code({"agentId": "agt_suspended_expired", "action": "read", "resource": "x", "now": 5000}) == "agent_suspended"
	revoked := authz.decision with input as {"agentId": "agt_revoked", "action": "read", "resource": "x", "now": 1}
		with data.kavach.agents as {"agt_revoked": object.union(_agents.agt_revoked, {"expiresAt": 0})}
	revoked.code == "agent_revoked"
}

test_expired_at_and_after_expiry if {
	_code({"agentId": "agt_expiring", "action": "read", "resource": "x", "now": 1000}) == "agent_expired"
	_code({"agentId": "agt_expiring", "action": "read", "resource": "x", "now": 5000}) == "agent_expired"
}

test_not_expired_before_expiry if _code({"agentId": "agt_expiring", "action": "read", "resource": "x", "now": 999}) == "allowed"

test_now_defaults_to_evaluation_time if _code({"agentId": "agt_expiring", "action": "read", "resource": "x"}) == "agent_expired"

test_no_permission if {
	d := _decide({"agentId": "agt_reader", "action": "write", "resource": "mcp:github:repos", "now": 1})
	not d.allowed
	d.code == "no_permission"
	d.reason == `no permission of agent "agt_reader" allows "write" on "mcp:github:repos"`
}

# Any matching permission can allow: comment is only on the second one.
test_later_permission_allows if _code({"agentId": "agt_reader", "action": "comment", "resource": "mcp:github:issues", "now": 1}) == "allowed"

test_action_wildcard if _code({"agentId": "agt_reader", "action": "anything", "resource": "admin:projects:delete", "now": 1}) == "allowed"

test_actions_are_exact if _code({"agentId": "agt_reader", "action": "Read", "resource": "mcp:github:repos", "now": 1}) == "no_permission"

test_constrained_permission_asks_for_approval if {
	d := _decide({"agentId": "agt_constrained", "action": "execute", "resource": "mcp:deploy:production", "now": 1})
	not d.allowed
	d.code == "approval_required"
	d.approvalRequired
}

test_empty_constraints_allow if _code({"agentId": "agt_constrained", "action": "execute", "resource": "mcp:deploy:staging", "now": 1}) == "allowed"

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

test_resource_matching if {
	every c in _match_cases {
		_matches(c[0], c[1]) == c[2]
	}
}

_matches(pattern, resource) if {
	authz.decision.allowed with input as {"agentId": "a", "action": "read", "resource": resource, "now": 1}
		with data.kavach.agents as {"a": {"ownerId": "u", "status": "active", "permissions": [{"resource": pattern, "actions": ["read"]}]}}
		with data.kavach.tokens as {}
} else := false

test_bare_wildcard_any_resource if _code({"agentId": "agt_any", "action": "read", "resource": "whatever:at:all", "now": 1}) == "allowed"

# The sync precomputes globs; they must decide as the segment rule does, and
# resources with empty segments take the segment rule.
test_precomputed_globs if {
	agents := {"g": {"ownerId": "u", "status": "active", "permissions": [
		{"key": "k1", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read"]},
		{"key": "k2", "resource": "admin:*:delete", "glob": "admin:?*:delete", "actions": ["*"]},
	]}}
	every c in [
		["read", "mcp:github:repos", "allowed"],
		["read", "mcp:github:repos:issues", "allowed"],
		["read", "mcp:github", "no_permission"],
		["read", "mcp:github:", "no_permission"],
		["read", "mcp:github::x", "no_permission"],
		["purge", "admin:projects:delete", "allowed"],
		["purge", "admin::delete", "no_permission"],
		["purge", ":admin:x:delete", "no_permission"],
		["purge", "", "no_permission"],
	] {
		d := authz.decision with input as {"agentId": "g", "action": c[0], "resource": c[1], "now": 1}
			with data.kavach.agents as agents
		d.code == c[2]
	}
}
