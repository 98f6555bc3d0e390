package kavach.delegation_test

import data.kavach.delegation

_agents := {
	"orch": {"ownerId": "u", "status": "active", "permissions": [
		{"key": "o1", "resource": "mcp:github:*", "actions": ["read", "comment"], "constraints": {"maxCallsPerHour": 10}},
		{"key": "o2", "resource": "docs:*", "actions": ["*"]},
	]},
	"worker": {"ownerId": "u", "status": "active", "permissions": [{"key": "w1", "resource": "mcp:github:issues", "actions": ["read"]}], "incoming": ["d1"]},
	"helper": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d2"]},
	"leaf": {"ownerId": "u", "status": "active", "permissions": []},
}

_delegations := {
	"d1": {"id": "d1", "fromAgent": "orch", "toAgent": "worker", "status": "active", "expiresAt": 5000, "depth": 1, "maxDepth": 2, "permissions": [{"key": "d1#0", "resource": "mcp:github:issues", "actions": ["read", "comment"], "chain": [], "inherited": [], "coveredBy": "o1"}]},
	"d2": {"id": "d2", "fromAgent": "worker", "toAgent": "helper", "status": "active", "expiresAt": 5000, "depth": 2, "maxDepth": 2, "permissions": [{"key": "d2#0", "resource": "mcp:github:issues", "actions": ["comment"], "chain": [["d1", 0]], "inherited": [{"key": "d1#0", "constraints": {"maxCallsPerHour": 5}}], "coveredBy": "d1#0"}]},
}

_check(inp) := c if {
	c := delegation.check with input as object.union({"now": 1000, "maxDepth": 3}, inp)
		with data.kavach.agents as _agents
		with data.kavach.delegations as _delegations
}

test_direct_grant_inherits_constraints if {
	c := _check({"fromAgent": "orch", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["read"], "constraints": {"maxCallsPerHour": 3}}]})
	c.ok
	c.depth == 1
	c.maxDepth == 3
	c.grants[0].constraints == {"maxCallsPerHour": 3}

	# The root's own constraints apply live at decision time, not as a copy.
	c.grants[0].inherited == []
	c.grants[0].coveredBy == "o1"
	c.grants[0].chain == []
}

test_own_permission_is_preferred_over_delegated if {
	c := _check({"fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["read"]}]})
	c.ok
	c.depth == 1
	c.grants[0].inherited == []
}

test_redelegation_adds_depth if {
	c := _check({"fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]})
	c.ok
	c.depth == 2
	c.maxDepth == 2
	c.grants[0].chain == [["d1", 0]]
	c.grants[0].coveredBy == "d1#0"
	c.grants[0].inherited == []
}

test_depth_limit_cannot_be_raised if {
	c := _check({"fromAgent": "helper", "toAgent": "leaf", "maxDepth": 10, "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]})
	not c.ok
	c.code == "delegation_depth_exceeded"
	contains(c.reason, "3 deep")
}

test_own_max_depth_applies if {
	c := _check({"fromAgent": "worker", "toAgent": "leaf", "maxDepth": 1, "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]})
	c.code == "delegation_depth_exceeded"
}

test_escalation_rejected if {
	for_resource := _check({"fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:*", "actions": ["read"]}]})
	for_resource.code == "delegation_escalation"
	contains(for_resource.reason, "permissions[0]")
	for_action := _check({"fromAgent": "orch", "toAgent": "leaf", "permissions": [{"resource": "docs:a", "actions": ["read"]}, {"resource": "mcp:github:issues", "actions": ["write"]}]})
	for_action.code == "delegation_escalation"
	contains(for_action.reason, "permissions[1]")
	wildcard := _check({"fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["*"]}]})
	wildcard.code == "delegation_escalation"
}

test_broken_chain_cannot_be_redelegated if {
	c := delegation.check with input as {"now": 1000, "maxDepth": 3, "fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]}
		with data.kavach.agents as _agents
		with data.kavach.delegations as object.union(_delegations, {"d1": object.union(_delegations.d1, {"status": "revoked"})})
	c.code == "delegation_escalation"
}

test_self_delegation_rejected if {
	_check({"fromAgent": "orch", "toAgent": "orch", "permissions": [{"resource": "docs:a", "actions": ["read"]}]}).code == "self_delegation"
}

test_cycle_rejected if {
	back := _check({"fromAgent": "helper", "toAgent": "orch", "maxDepth": 5, "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]})
	back.code == "delegation_cycle"
	mid := _check({"fromAgent": "helper", "toAgent": "worker", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]})
	mid.code == "delegation_cycle"
}

test_now_defaults_to_evaluation_time if {
	c := delegation.check with input as {"maxDepth": 3, "fromAgent": "orch", "toAgent": "leaf", "permissions": [{"resource": "docs:a", "actions": ["read"]}]}
		with data.kavach.agents as _agents
		with data.kavach.delegations as _delegations
	c.ok
}

test_redelegation_snapshots_the_chain_constraints if {
	deeper := {
		"d1": object.union(_delegations.d1, {"maxDepth": 3}),
		"d2": object.union(_delegations.d2, {"maxDepth": 3, "permissions": [object.union(_delegations.d2.permissions[0], {"constraints": {"requireApproval": true}})]}),
	}
	c := delegation.check with input as {"now": 1000, "maxDepth": 3, "fromAgent": "helper", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]}
		with data.kavach.agents as _agents
		with data.kavach.delegations as deeper
	c.ok
	c.depth == 3
	c.grants[0].inherited == [
		{"key": "d1#0", "constraints": {"maxCallsPerHour": 5}},
		{"key": "d2#0", "constraints": {"requireApproval": true}},
	]
}

# A chain whose delegator is suspended is broken as a revoked one is: what
# it carries cannot be passed on. (Delegating from or to a suspended agent
# is refused before the policy is asked: 409 agent_suspended.)
test_chain_of_a_suspended_delegator_cannot_be_redelegated if {
	c := delegation.check with input as {"now": 1000, "maxDepth": 3, "fromAgent": "worker", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]}
		with data.kavach.agents as object.union(_agents, {"orch": object.union(_agents.orch, {"status": "suspended"})})
		with data.kavach.delegations as _delegations
	c.code == "delegation_escalation"
}

# Trust constraints are delegated and inherited like the others: a child
# may add them, and a re-delegation snapshots those up the chain.
test_trust_constraints_are_delegated_and_inherited if {
	c := _check({"fromAgent": "orch", "toAgent": "leaf", "permissions": [{
		"resource": "mcp:github:issues", "actions": ["read"],
		"constraints": {"minTrustLevel": "standard", "requireApproval": "trusted"},
	}]})
	c.ok
	c.grants[0].constraints == {"minTrustLevel": "standard", "requireApproval": "trusted"}

	deeper := {
		"d1": object.union(_delegations.d1, {"maxDepth": 3}),
		"d2": object.union(_delegations.d2, {"maxDepth": 3, "permissions": [object.union(_delegations.d2.permissions[0], {"constraints": {"requireApproval": "elevated"}})]}),
	}
	r := delegation.check with input as {"now": 1000, "maxDepth": 3, "fromAgent": "helper", "toAgent": "leaf", "permissions": [{"resource": "mcp:github:issues", "actions": ["comment"]}]}
		with data.kavach.agents as _agents
		with data.kavach.delegations as deeper
	r.ok
	r.grants[0].inherited == [
		{"key": "d1#0", "constraints": {"maxCallsPerHour": 5}},
		{"key": "d2#0", "constraints": {"requireApproval": "elevated"}},
	]
}
