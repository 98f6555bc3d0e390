package kavach.authz_index_test

import data.kavach.authz

# Agents as the sync writes them: permissions with key, glob and use (what
# the common allows report of it), indexed by action (byAction; anyAction
# for those granting "*").
_agents[id] := object.union(a, {"permissions": [object.union(p, {"use": _use(p)}) |
	some p in a.permissions
]}) if {
	some id, a in _written_agents
}

_use(p) := {"key": p.key, "source": "own", "resource": p.resource, "rateLimits": [{"key": p.key, "max": p.constraints.maxCallsPerHour}]} if {
	p.constraints.maxCallsPerHour
} else := {"key": p.key, "source": "own", "resource": p.resource}

_written_agents := {
	"agt_synced": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": null,
		"permissions": [
			{"key": "p_1", "resource": "mcp:github:issues", "glob": "mcp:github:issues", "actions": ["read", "comment"]},
			{"key": "p_2", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read"]},
			{"key": "p_3", "resource": "admin:*:delete", "glob": "admin:?*:delete", "actions": ["*"]},
			{
				"key": "p_4", "resource": "mcp:slack:*", "glob": "mcp:slack:?**", "actions": ["post"],
				"constraints": {"ipAllowlist": ["10.0.0.0/8"]},
			},
			{"key": "p_5", "resource": "mcp:slack:general", "glob": "mcp:slack:general", "actions": ["post"]},
		],
		"byAction": {"read": [0, 1, 2], "comment": [0, 2], "post": [2, 3, 4]},
		"anyAction": [2],
	},
	"agt_sub": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": null,
		"permissions": [],
		"byAction": {},
		"anyAction": [],
		"incoming": ["dlg_1"],
	},
	"agt_synced_expired": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": 1000,
		"permissions": [{"key": "p_1", "resource": "*", "glob": "**", "actions": ["read"]}],
		"byAction": {"read": [0]},
		"anyAction": [],
	},
	"agt_synced_expiring": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": 3000,
		"permissions": [{"key": "p_1", "resource": "*", "glob": "**", "actions": ["read"]}],
		"byAction": {"read": [0]},
		"anyAction": [],
	},
	# Repeated permissions (the same key twice, and a repeated action).
	"agt_dup": {
		"ownerId": "user-2",
		"status": "active",
		"expiresAt": null,
		"permissions": [
			{"key": "p_1", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read", "read"]},
			{"key": "p_1", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read", "read"]},
			{"key": "p_2", "resource": "mcp:*", "glob": "mcp:?**", "actions": ["*", "read"]},
		],
		"byAction": {"read": [0, 1, 2]},
		"anyAction": [2],
	},
	# Own permissions and an incoming delegation together.
	"agt_mixed": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": 5000,
		"permissions": [
			{"key": "p_6", "resource": "mcp:jira:*", "glob": "mcp:jira:?**", "actions": ["read"]},
			{
				"key": "p_7", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["write"],
				"constraints": {"ipAllowlist": ["10.0.0.0/8"]},
			},
		],
		"byAction": {"read": [0], "write": [1]},
		"anyAction": [],
		"incoming": ["dlg_2"],
	},
	"agt_synced_suspended": {
		"ownerId": "user-1",
		"status": "suspended",
		"expiresAt": null,
		"permissions": [{"key": "p_1", "resource": "*", "glob": "**", "actions": ["read"]}],
		"byAction": {"read": [0]},
		"anyAction": [],
		"trust": {"level": "untrusted", "score": 12},
	},
	# Trust constraints, own and delegated, at the agent's level.
	"agt_earning": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": null,
		"permissions": [
			{
				"key": "p_8", "resource": "mcp:deploy:*", "glob": "mcp:deploy:?**", "actions": ["execute"],
				"constraints": {"requireApproval": "trusted"},
			},
			{
				"key": "p_9", "resource": "mcp:db:*", "glob": "mcp:db:?**", "actions": ["*"],
				"constraints": {"minTrustLevel": "standard"},
			},
			{"key": "p_10", "resource": "mcp:db:reports", "glob": "mcp:db:reports", "actions": ["read"]},
		],
		"byAction": {"execute": [0, 1], "read": [1, 2]},
		"anyAction": [1],
		"incoming": ["dlg_3"],
		"trust": {"level": "standard", "score": 64},
	},
	# One own permission with a rate limit.
	"agt_limited": {
		"ownerId": "user-1",
		"status": "active",
		"expiresAt": null,
		"permissions": [{
			"key": "p_14", "resource": "mcp:slack:channels", "glob": "mcp:slack:channels", "actions": ["post"],
			"constraints": {"ipAllowlist": ["10.0.0.0/8"], "maxCallsPerHour": 3},
		}],
		"byAction": {"post": [0]},
		"anyAction": [],
	},
	"agt_leaf": {
		"ownerId": "user-3",
		"status": "active",
		"expiresAt": null,
		"permissions": [],
		"byAction": {},
		"anyAction": [],
		"incoming": ["dlg_4"],
	},
	"agt_synced_revoked": {
		"ownerId": "user-1",
		"status": "revoked",
		"permissions": [{"key": "p_1", "resource": "*", "glob": "**", "actions": ["read"]}],
		"byAction": {"read": [0]},
		"anyAction": [],
	},
}

_delegations := {
	"dlg_1": {
		"id": "dlg_1", "fromAgent": "agt_synced", "toAgent": "agt_sub", "status": "active",
		"expiresAt": 10000, "depth": 1, "maxDepth": 2,
		"permissions": [{
			"key": "p_2", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read"],
			"coveredBy": "p_2", "inherited": [], "chain": [], "links": [["dlg_1", 0]],
		}],
		"byAction": {"read": [0]},
		"anyAction": [],
	},
	"dlg_2": {
		"id": "dlg_2", "fromAgent": "agt_synced", "toAgent": "agt_mixed", "status": "active",
		"expiresAt": 10000, "depth": 1, "maxDepth": 2,
		"permissions": [{
			"key": "p_2", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["read"],
			"coveredBy": "p_2", "inherited": [], "chain": [], "links": [["dlg_2", 0]],
		}],
		"byAction": {"read": [0]},
		"anyAction": [],
	},
	"dlg_3": {
		"id": "dlg_3", "fromAgent": "agt_synced", "toAgent": "agt_earning", "status": "active",
		"expiresAt": 10000, "depth": 1, "maxDepth": 2,
		"permissions": [{
			"key": "p_3", "resource": "admin:*:delete", "glob": "admin:?*:delete", "actions": ["purge"],
			"constraints": {"minTrustLevel": "trusted"}, "coveredBy": "p_3", "inherited": [], "chain": [],
			"links": [["dlg_3", 0]],
		}],
		"byAction": {"purge": [0]},
		"anyAction": [],
	},
	# A second link below dlg_1: agt_synced -> agt_sub -> agt_leaf, and a
	# grant that inherited constraints.
	"dlg_4": {
		"id": "dlg_4", "fromAgent": "agt_sub", "toAgent": "agt_leaf", "status": "active",
		"expiresAt": 9000, "depth": 2, "maxDepth": 2,
		"permissions": [
			{
				"key": "p_11", "resource": "mcp:github:repos", "glob": "mcp:github:repos", "actions": ["read"],
				"coveredBy": "p_2", "inherited": [], "chain": [["dlg_1", 0]], "links": [["dlg_1", 0], ["dlg_4", 0]],
			},
			{
				"key": "p_12", "resource": "mcp:github:*", "glob": "mcp:github:?**", "actions": ["*"],
				"coveredBy": "p_2", "inherited": [{"key": "p_2", "constraints": {"maxCallsPerHour": 5}}],
				"chain": [["dlg_1", 0]], "links": [["dlg_1", 0], ["dlg_4", 1]],
			},
			{
				"key": "p_13", "resource": "mcp:github:pulls", "glob": "mcp:github:pulls", "actions": ["read"],
				"constraints": {"ipAllowlist": ["10.0.0.0/8"]},
				"coveredBy": "p_2", "inherited": [], "chain": [["dlg_1", 0]], "links": [["dlg_1", 0], ["dlg_4", 2]],
			},
		],
		"byAction": {"read": [0, 1, 2]},
		"anyAction": [1],
	},
}

_tokens := {"hash-synced": "agt_synced", "hash-gone": "agt_missing", "hash-suspended": "agt_synced_suspended", "hash-earning": "agt_earning"}

_freeze := {{"code": "change_freeze", "reason": "frozen"}}

# The same agents and delegations without the sync's additions: only the
# general rules apply.
_plain_agents[id] := object.remove(a, ["byAction", "anyAction"]) if {
	some id, a in _written_agents
}

_plain_delegations[id] := object.union(object.remove(d, ["byAction", "anyAction"]), {"permissions": [object.remove(p, ["links"]) |
	some p in d.permissions
]}) if {
	some id, d in _delegations
}

_requests := [
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues"},
	{"agentId": "agt_synced", "action": "comment", "resource": "mcp:github:issues"},
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:repos:pulls"},
	{"agentId": "agt_synced", "action": "purge", "resource": "admin:projects:delete"},
	{"agentId": "agt_synced", "action": "write", "resource": "mcp:github:repos"},
	{"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:general", "ip": "10.1.2.3"},
	{"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:general", "ip": "192.0.2.1"},
	{"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:random", "ip": "192.0.2.1"},
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github::x"},
	{"agentId": "agt_synced", "action": "*", "resource": "admin:x:delete"},
	{"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos"},
	{"agentId": "agt_sub", "action": "write", "resource": "mcp:github:repos"},
	{"agentId": "agt_sub", "action": "read", "resource": "mcp:github::x"},
	{"agentId": "agt_limited", "action": "post", "resource": "mcp:slack:channels", "ip": "10.1.2.3", "calls": {"p_14": 2}},
	{"agentId": "agt_limited", "action": "post", "resource": "mcp:slack:channels", "ip": "10.1.2.3", "calls": {"p_14": 3}},
	{"agentId": "agt_limited", "action": "post", "resource": "mcp:slack:channels", "ip": "192.0.2.1"},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos"},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:pulls", "ip": "10.1.2.3"},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:pulls", "ip": "192.0.2.1"},
	{"agentId": "agt_leaf", "action": "write", "resource": "mcp:github:issues"},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "now": 9000},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "scopeKeys": ["p_11"]},
	{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "ext": _freeze},
	{"agentId": "agt_synced_expired", "action": "read", "resource": "x"},
	{"agentId": "agt_synced_revoked", "action": "read", "resource": "x"},
	{"agentId": "agt_synced_expiring", "action": "read", "resource": "x"},
	{"agentId": "agt_synced_expiring", "action": "write", "resource": "x"},
	{"agentId": "agt_missing", "action": "read", "resource": "x"},
	{"agentId": "agt_synced", "action": "read", "resource": ""},
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:"},
	{"agentId": "agt_synced", "action": "read", "resource": ":mcp:github:issues"},
	{"agentId": "agt_synced", "action": "*", "resource": "mcp:github:issues"},
	# By token.
	{"tokenHash": "hash-synced", "action": "read", "resource": "mcp:github:issues"},
	{"tokenHash": "hash-synced", "action": "write", "resource": "mcp:github:issues"},
	{"tokenHash": "hash-gone", "action": "read", "resource": "x"},
	{"tokenHash": "hash-unknown", "action": "read", "resource": "x"},
	# Repeated permissions.
	{"agentId": "agt_dup", "action": "read", "resource": "mcp:github:repos"},
	{"agentId": "agt_dup", "action": "write", "resource": "mcp:github:repos"},
	{"agentId": "agt_dup", "action": "write", "resource": "slack:x"},
	{"agentId": "agt_dup", "action": "*", "resource": "mcp:x"},
	# Own permissions beside a delegation; then past the agent's expiry.
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:jira:issues"},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:github:repos"},
	{"agentId": "agt_mixed", "action": "write", "resource": "mcp:github:repos", "ip": "10.1.2.3"},
	{"agentId": "agt_mixed", "action": "write", "resource": "mcp:github:repos", "ip": "192.0.2.1"},
	{"agentId": "agt_mixed", "action": "delete", "resource": "mcp:jira:issues"},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:jira:issues", "now": 5000},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:jira:issues", "now": 4999},
	# An MCP access token's scopes (input.scopeKeys).
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "scopeKeys": ["p_2"]},
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "scopeKeys": []},
	{"agentId": "agt_synced", "action": "purge", "resource": "admin:x:delete", "scopeKeys": ["p_3"]},
	{"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:general", "ip": "192.0.2.1", "scopeKeys": ["p_4"]},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:github:repos", "scopeKeys": ["p_6"]},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:jira:issues", "scopeKeys": ["p_6"]},
	{"agentId": "agt_dup", "action": "read", "resource": "mcp:github:repos", "scopeKeys": ["p_2"]},
	{"tokenHash": "hash-synced", "action": "read", "resource": "mcp:github:repos", "scopeKeys": ["p_1"]},
	# Suspended; trust constraints at the agent's level.
	{"agentId": "agt_synced_suspended", "action": "read", "resource": "x"},
	{"tokenHash": "hash-suspended", "action": "read", "resource": "x"},
	{"agentId": "agt_earning", "action": "execute", "resource": "mcp:deploy:prod"},
	{"agentId": "agt_earning", "action": "execute", "resource": "mcp:db:main"},
	{"agentId": "agt_earning", "action": "read", "resource": "mcp:db:reports"},
	{"agentId": "agt_earning", "action": "purge", "resource": "admin:x:delete"},
	{"tokenHash": "hash-earning", "action": "drop", "resource": "mcp:db:main"},
	{"agentId": "agt_earning", "action": "execute", "resource": "mcp:deploy:prod", "scopeKeys": ["p_8"]},
	# Extension denials (ext: data.kavach.ext.deny), well-formed or not.
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "ext": _freeze},
	{"agentId": "agt_synced", "action": "write", "resource": "mcp:github:issues", "ext": _freeze},
	{"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "ext": {{"code": 1}}},
	{"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos", "ext": _freeze},
	{"agentId": "agt_mixed", "action": "read", "resource": "mcp:jira:issues", "ext": _freeze, "scopeKeys": ["p_6"]},
	{"agentId": "agt_synced_expired", "action": "read", "resource": "x", "ext": _freeze},
	{"agentId": "agt_synced_suspended", "action": "read", "resource": "x", "ext": _freeze},
	{"agentId": "agt_earning", "action": "execute", "resource": "mcp:db:main", "ext": _freeze},
]

# A request's "now" defaults to 2000; its "ext" (not input) is the
# extensions' denials.
_input(r) := object.union({"now": 2000}, object.remove(r, ["ext"]))

_decide(r, agents) := _decide_with(r, agents, _delegations)

_decide_with(r, agents, delegations) := d if {
	d := authz.decision with input as _input(r)
		with data.kavach.agents as agents
		with data.kavach.delegations as delegations
		with data.kavach.tokens as _tokens
		with data.kavach.ext as _ext(r)
}

# A request without "ext" is decided with no extension loaded at all.
_ext(r) := {"deny": r.ext} if {
	r.ext
} else := {}

# The action index and the precomputed globs decide exactly as the general
# rules do on unindexed data (the common-case branches of the decision are
# part of its one chain, so the same comparison covers them).
test_index_agrees_with_general_rules if {
	every inp in _requests {
		_decide(inp, _agents) == _decide_with(inp, _plain_agents, _plain_delegations)
	}
}

# A delegated permission through two links, as its chain changes: the
# branch for the common delegated allow, which reads the precomputed path,
# decides as the general rules do on data without it, whatever link
# breaks, and sees every change to a link or to a delegator at once.
_chain_cases := [
	# Intact.
	[{}, {}],
	# The root link revoked, or expired; the second link expired.
	[{}, {"dlg_1": object.union(_delegations.dlg_1, {"status": "revoked"})}],
	[{}, {"dlg_1": object.union(_delegations.dlg_1, {"expiresAt": 2000})}],
	[{}, {"dlg_4": object.union(_delegations.dlg_4, {"expiresAt": 1999})}],
	# A link gone.
	[{}, {"dlg_1": null}],
	# A delegator suspended, revoked, expired, or gone.
	[{"agt_synced": object.union(_agents.agt_synced, {"status": "suspended"})}, {}],
	[{"agt_sub": object.union(_agents.agt_sub, {"status": "revoked"})}, {}],
	[{"agt_sub": object.union(_agents.agt_sub, {"expiresAt": 2000})}, {}],
	[{"agt_sub": object.union(_agents.agt_sub, {"expiresAt": 2001})}, {}],
	[{"agt_synced": null}, {}],
	# The root permission twice, once with constraints (data the sync
	# never writes: both sets apply).
	[
		{"agt_synced": object.union(_agents.agt_synced, {"permissions": array.concat(
			_agents.agt_synced.permissions,
			[object.union(_agents.agt_synced.permissions[1], {"constraints": {"ipAllowlist": ["10.0.0.0/8"]}})],
		)})},
		{},
	],
	# The root permission gone, or constrained now.
	[{"agt_synced": object.union(_agents.agt_synced, {"permissions": [_agents.agt_synced.permissions[0]]})}, {}],
	[
		{"agt_synced": object.union(_agents.agt_synced, {"permissions": [
			_agents.agt_synced.permissions[0],
			object.union(_agents.agt_synced.permissions[1], {"constraints": {"ipAllowlist": ["10.0.0.0/8"]}}),
		]})},
		{},
	],
]

_changed(docs, changes) := {id: d |
	some id, d in object.union(docs, changes)
	d != null
}

test_delegated_branch_follows_every_link if {
	every change in _chain_cases {
		agents := _changed(_agents, change[0])
		plain_agents := {id: object.remove(a, ["byAction", "anyAction"]) | some id, a in agents}
		delegations := _changed(_delegations, change[1])
		plain_delegations := {id: object.union(d, {"permissions": [object.remove(p, ["links"]) | some p in d.permissions]}) |
			some id, d in delegations
		}
		every inp in [
			{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "ip": "10.1.2.3"},
			{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:pulls", "ip": "10.1.2.3"},
			{"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos", "ip": "192.0.2.1"},
		] {
			_decide_with(inp, agents, delegations) == _decide_with(inp, plain_agents, plain_delegations)
		}
	}
}

test_constrained_branch_reports_the_rate_limit if {
	d := _decide({"agentId": "agt_limited", "action": "post", "resource": "mcp:slack:channels", "ip": "10.1.2.3", "calls": {"p_14": 2}}, _agents)
	d.allowed
	d.consumes
	d.cache == false
	d.permission == {"key": "p_14", "source": "own", "resource": "mcp:slack:channels", "rateLimits": [{"key": "p_14", "max": 3}]}
}

test_delegated_branch_codes if {
	d := _decide({"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos"}, _agents)
	d.allowed
	d.permission == {"key": "p_11", "source": "dlg_4", "resource": "mcp:github:repos"}
	d.reason == `permission "mcp:github:repos" allows "read" on "mcp:github:repos" (delegated by dlg_4)`
	d.cache == false
	revoked := _changed(_delegations, {"dlg_1": object.union(_delegations.dlg_1, {"status": "revoked"})})
	_decide_with({"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos"}, _agents, revoked).code == "delegation_revoked"
	suspended := _changed(_agents, {"agt_sub": object.union(_agents.agt_sub, {"status": "suspended"})})
	_decide_with({"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos"}, suspended, _delegations).code == "delegation_revoked"
	expired := _changed(_agents, {"agt_synced": object.union(_agents.agt_synced, {"expiresAt": 1000})})
	_decide_with({"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos"}, expired, _delegations).code == "delegation_expired"

	# An inherited rate limit takes the general branches, and consumes.
	limited := _decide({"agentId": "agt_leaf", "action": "write", "resource": "mcp:github:issues"}, _agents)
	limited.consumes
	limited.permission.rateLimits == [{"key": "p_2", "max": 5}]
}

test_shortcut_taken_for_plain_own_permission if {
	d := _decide({"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:general", "ip": "192.0.2.1"}, _agents)
	d.allowed
	d.permission == {"key": "p_5", "source": "own", "resource": "mcp:slack:general"}
	d.reason == `permission "mcp:slack:general" allows "post" on "mcp:slack:general"`
}

test_first_stored_permission_wins if {
	d := _decide({"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues"}, _agents)
	d.permission.key == "p_1"
}

test_delegated_permissions_still_apply if {
	d := _decide({"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos"}, _agents)
	d.allowed
	d.permission.source == "dlg_1"
	_decide({"agentId": "agt_sub", "action": "write", "resource": "mcp:github:repos"}, _agents).code == "no_permission"
}

test_denials_unchanged if {
	_decide({"agentId": "agt_synced", "action": "write", "resource": "mcp:github:repos"}, _agents).code == "no_permission"
	_decide({"agentId": "agt_synced", "action": "post", "resource": "mcp:slack:random", "ip": "192.0.2.1"}, _agents).code == "ip_not_allowed"
	_decide({"agentId": "agt_synced_expired", "action": "read", "resource": "x"}, _agents).code == "agent_expired"
	_decide({"agentId": "agt_synced_revoked", "action": "read", "resource": "x"}, _agents).code == "agent_revoked"
	_decide({"agentId": "agt_synced_suspended", "action": "read", "resource": "x"}, _agents).code == "agent_suspended"
}

# Trust constraints apply on synced data as on any: the agent's level
# (standard) meets p_9's minimum but not the approval level of p_8, nor the
# minimum of the delegated grant.
test_trust_constraints_on_synced_data if {
	_decide({"agentId": "agt_earning", "action": "execute", "resource": "mcp:deploy:prod"}, _agents).code == "approval_required"
	_decide({"agentId": "agt_earning", "action": "execute", "resource": "mcp:db:main"}, _agents).allowed
	_decide({"agentId": "agt_earning", "action": "purge", "resource": "admin:x:delete"}, _agents).code == "trust_insufficient"
	d := _decide({"agentId": "agt_earning", "action": "read", "resource": "mcp:db:reports"}, _agents)
	d.permission.key == "p_10"
	d.cache == {"until": null}
}

test_extension_denials_bypass_shortcut if {
	d := authz.decision with input as {"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "now": 2000}
		with data.kavach.agents as _agents
		with data.kavach.delegations as _delegations
		with data.kavach.ext.deny as {{"code": "change_freeze", "reason": "frozen"}}
	d.code == "change_freeze"
	not d.allowed
}

_scoped(inp, keys, agents) := d if {
	d := authz.decision with input as object.union(inp, {"now": 2000, "scopeKeys": keys})
		with data.kavach.agents as agents
		with data.kavach.delegations as _delegations
}

test_access_token_scopes_limit_the_agent if {
	read_issues := {"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues"}
	d := _scoped(read_issues, ["p_2"], _agents)
	d.allowed
	d.permission.key == "p_2"
	_scoped(read_issues, ["p_2"], _plain_agents) == d
	_scoped(read_issues, [], _agents).code == "no_permission"
	_scoped(read_issues, [], _plain_agents).code == "no_permission"
	_scoped({"agentId": "agt_synced", "action": "comment", "resource": "mcp:github:issues"}, ["p_2"], _agents).code == "no_permission"
}

test_access_token_scopes_exclude_delegated_permissions if {
	_scoped({"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos"}, ["p_2"], _agents).code == "no_permission"
}

test_explanation_marks_permissions_outside_the_scopes if {
	e := authz.explanation with input as {"agentId": "agt_synced", "action": "read", "resource": "mcp:github:issues", "now": 2000, "scopeKeys": ["p_2"]}
		with data.kavach.agents as _agents
		with data.kavach.delegations as _delegations
	[c.result | some c in e.considered] == ["out_of_scope", "allowed", "out_of_scope", "out_of_scope", "out_of_scope"]
}
