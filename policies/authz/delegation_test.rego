package kavach.authz_test

import data.kavach.authz

_t := 1000

# orchestrator -> worker (d1) -> helper (d2): a two-link chain.
_dagents := {
	"orch": {"ownerId": "u", "status": "active", "permissions": [
		{"key": "o1", "resource": "mcp:github:*", "actions": ["read", "comment"]},
		{"key": "o2", "resource": "mcp:deploy:*", "actions": ["execute"], "constraints": {"requireApproval": true}},
	]},
	"worker": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d1"]},
	"helper": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d2"]},
}

_ddelegations := {
	"d1": {"id": "d1", "fromAgent": "orch", "toAgent": "worker", "status": "active", "expiresAt": 5000, "depth": 1, "maxDepth": 3, "permissions": [
		{"key": "d1#0", "resource": "mcp:github:issues", "actions": ["read", "comment"], "chain": [], "inherited": [], "coveredBy": "o1"},
		{"key": "d1#1", "resource": "mcp:deploy:staging", "actions": ["execute"], "chain": [], "inherited": [], "coveredBy": "o2"},
	]},
	"d2": {"id": "d2", "fromAgent": "worker", "toAgent": "helper", "status": "active", "expiresAt": 4000, "depth": 2, "maxDepth": 3, "permissions": [{"key": "d2#0", "resource": "mcp:github:issues", "actions": ["read"], "chain": [["d1", 0]], "inherited": [{"key": "d1#0", "constraints": {"maxCallsPerHour": 2}}], "coveredBy": "d1#0"}]},
}

_dcall(agent, action, resource, overrides) := d if {
	d := authz.decision with input as {"agentId": agent, "action": action, "resource": resource, "now": _t}
		with data.kavach.agents as object.union(_dagents, object.get(overrides, "agents", {}))
		with data.kavach.delegations as object.union(_ddelegations, object.get(overrides, "delegations", {}))
		with data.kavach.tokens as {"hash-helper": "helper"}
		with data.kavach.approvals as {}
}

test_delegated_permission_allows if {
	d := _dcall("worker", "comment", "mcp:github:issues", {})
	d.allowed
	d.permission.source == "d1"
	contains(d.reason, "delegated by d1")
	_dcall("helper", "read", "mcp:github:issues", {}).allowed
}

test_delegation_is_limited_to_what_was_delegated if {
	_dcall("worker", "read", "mcp:github:repos", {}).code == "no_permission"
	_dcall("helper", "comment", "mcp:github:issues", {}).code == "no_permission"
}

test_delegation_by_token if {
	d := authz.decision with input as {"tokenHash": "hash-helper", "action": "read", "resource": "mcp:github:issues", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as _ddelegations
		with data.kavach.tokens as {"hash-helper": "helper"}
	d.allowed
	d.agentId == "helper"
}

test_inherited_constraints_apply if {
	# Live from the root delegator's own permission (o2): requireApproval.
	_dcall("worker", "execute", "mcp:deploy:staging", {}).code == "approval_required"

	# Snapshot from the middle of the chain: a limit counted under its own key.
	d := _dcall("helper", "read", "mcp:github:issues", {})
	d.permission.rateLimits == [{"key": "d1#0", "max": 2}]
}

test_root_permission_tightened_later_applies_downstream if {
	o := {"agents": {"orch": object.union(_dagents.orch, {"permissions": [
		{"key": "o1", "resource": "mcp:github:*", "actions": ["read", "comment"], "constraints": {"ipAllowlist": ["10.0.0.0/8"]}},
		_dagents.orch.permissions[1],
	]})}}
	_dcall("helper", "read", "mcp:github:issues", o).code == "ip_not_allowed"
}

test_approval_goes_to_the_root_delegators_owner if {
	d := _dcall("worker", "execute", "mcp:deploy:staging", {"agents": {"worker": object.union(_dagents.worker, {"ownerId": "mallory"})}})
	d.code == "approval_required"
	d.approvalOwner == "u"
	own := _dcall("orch", "execute", "mcp:deploy:x", {"agents": {"orch": object.union(_dagents.orch, {"ownerId": "alice"})}})
	own.approvalOwner == "alice"
}

test_revoked_link_cuts_off_downstream if {
	o := {"delegations": {"d1": object.union(_ddelegations.d1, {"status": "revoked"})}}
	_dcall("worker", "read", "mcp:github:issues", o).code == "delegation_revoked"
	d := _dcall("helper", "read", "mcp:github:issues", o)
	d.code == "delegation_revoked"
	contains(d.reason, "d1")
}

test_revoked_delegator_cuts_off_downstream if {
	o := {"agents": {"orch": object.union(_dagents.orch, {"status": "revoked"})}}
	_dcall("helper", "read", "mcp:github:issues", o).code == "delegation_revoked"
	o2 := {"agents": {"worker": object.union(_dagents.worker, {"status": "revoked"})}}
	_dcall("helper", "read", "mcp:github:issues", o2).code == "delegation_revoked"
}

# A suspended delegator's delegations stop counting, as a revoked one's do,
# and count again once it is resumed (its status active again).
test_suspended_delegator_cuts_off_downstream if {
	o := {"agents": {"orch": object.union(_dagents.orch, {"status": "suspended"})}}
	d := _dcall("helper", "read", "mcp:github:issues", o)
	d.code == "delegation_revoked"
	d.reason == `permission "mcp:github:issues" was delegated through d1, whose delegator is suspended`
	_dcall("worker", "read", "mcp:github:issues", o).code == "delegation_revoked"
	o2 := {"agents": {"worker": object.union(_dagents.worker, {"status": "suspended"})}}
	w := _dcall("helper", "read", "mcp:github:issues", o2)
	w.code == "delegation_revoked"
	contains(w.reason, "through d2, whose delegator is suspended")

	# The suspended agent itself is denied before its permissions are looked at.
	_dcall("worker", "read", "mcp:github:issues", o2).code == "agent_suspended"

	# A link that is revoked outright says so first.
	o3 := {
		"agents": {"orch": object.union(_dagents.orch, {"status": "suspended"})},
		"delegations": {"d1": object.union(_ddelegations.d1, {"status": "revoked"})},
	}
	contains(_dcall("helper", "read", "mcp:github:issues", o3).reason, "which is revoked")
}

test_missing_link_or_delegator_is_revoked if {
	o := {"delegations": {"d1": object.union(_ddelegations.d1, {"fromAgent": "ghost"})}}
	_dcall("helper", "read", "mcp:github:issues", o).code == "delegation_revoked"
	d := authz.decision with input as {"agentId": "helper", "action": "read", "resource": "mcp:github:issues", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as {"d2": _ddelegations.d2}
	d.code == "delegation_revoked"
}

test_expired_link_cuts_off_downstream if {
	o := {"delegations": {"d1": object.union(_ddelegations.d1, {"expiresAt": _t})}}
	_dcall("helper", "read", "mcp:github:issues", o).code == "delegation_expired"
	d := authz.decision with input as {"agentId": "helper", "action": "read", "resource": "mcp:github:issues", "now": 4000}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as _ddelegations
	d.code == "delegation_expired"
}

test_expired_delegator_cuts_off_downstream if {
	o := {"agents": {"orch": object.union(_dagents.orch, {"expiresAt": _t})}}
	_dcall("helper", "read", "mcp:github:issues", o).code == "delegation_expired"
}

test_delegator_losing_the_permission_cuts_off if {
	o := {"agents": {"orch": object.union(_dagents.orch, {"permissions": [{"key": "o9", "resource": "mcp:github:repos", "actions": ["read"]}]})}}
	d := _dcall("helper", "read", "mcp:github:issues", o)
	d.code == "delegation_revoked"
	contains(d.reason, "no longer holds")

	# Replaced by another permission that still covers it: cut off too, the
	# chain hangs from the very permission it was delegated from.
	o2 := {"agents": {"orch": object.union(_dagents.orch, {"permissions": [{"key": "o7", "resource": "*", "actions": ["*"]}]})}}
	_dcall("helper", "read", "mcp:github:issues", o2).code == "delegation_revoked"
}

test_delegation_for_another_agent_is_ignored if {
	o := {"agents": {"worker": object.union(_dagents.worker, {"incoming": ["d2"]})}}
	_dcall("worker", "read", "mcp:github:issues", o).code == "no_permission"
}

test_effective_permissions if {
	eff := authz.effective_permissions with input as {"agentId": "helper", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as _ddelegations
	count(eff) == 1
	eff[0].source == "delegation"
	eff[0].delegationId == "d2"
	eff[0].fromAgent == "worker"
	eff[0].depth == 2
	not eff[0].constraints

	own := authz.effective_permissions with input as {"agentId": "orch", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as _ddelegations
	[x | some x in own; x.source == "own"] == own
	own[1].constraints == {"requireApproval": true}
	not own[0].constraints

	cut := authz.effective_permissions with input as {"agentId": "helper", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as object.union(_ddelegations, {"d1": object.union(_ddelegations.d1, {"status": "revoked"})})
	cut == []

	revoked := authz.effective_permissions with input as {"agentId": "orch", "now": _t}
		with data.kavach.agents as object.union(_dagents, {"orch": object.union(_dagents.orch, {"status": "revoked"})})
	revoked == []

	suspended := authz.effective_permissions with input as {"agentId": "orch", "now": _t}
		with data.kavach.agents as object.union(_dagents, {"orch": object.union(_dagents.orch, {"status": "suspended"})})
	suspended == []
	downstream := authz.effective_permissions with input as {"agentId": "helper", "now": _t}
		with data.kavach.agents as object.union(_dagents, {"worker": object.union(_dagents.worker, {"status": "suspended"})})
		with data.kavach.delegations as _ddelegations
	downstream == []

	expired := authz.effective_permissions with input as {"agentId": "orch", "now": _t}
		with data.kavach.agents as object.union(_dagents, {"orch": object.union(_dagents.orch, {"expiresAt": 1})})
	expired == []
}

# orch (own o1, an IP allowlist) -> worker (d1: a rate limit) -> helper (d2:
# nothing of its own) -> leaf (d3: an approval), as the delegation policy
# would store it: each grant's inherited snapshot holds the sets above it.
_eagents := {
	"orch": {"ownerId": "u", "status": "active", "permissions": [{
		"key": "o1", "resource": "mcp:github:*", "actions": ["read", "comment"],
		"constraints": {"ipAllowlist": ["10.0.0.0/8"]},
	}]},
	"worker": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d1"]},
	"helper": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d2"]},
	"leaf": {"ownerId": "u", "status": "active", "permissions": [], "incoming": ["d3"]},
}

_edelegations := {
	"d1": {"id": "d1", "fromAgent": "orch", "toAgent": "worker", "status": "active", "expiresAt": 5000, "depth": 1, "maxDepth": 3, "permissions": [{
		"key": "k1", "resource": "mcp:github:issues", "actions": ["read", "comment"], "constraints": {"maxCallsPerHour": 2},
		"chain": [], "inherited": [], "coveredBy": "o1",
	}]},
	"d2": {"id": "d2", "fromAgent": "worker", "toAgent": "helper", "status": "active", "expiresAt": 5000, "depth": 2, "maxDepth": 3, "permissions": [{
		"key": "k2", "resource": "mcp:github:issues", "actions": ["read"],
		"chain": [["d1", 0]], "inherited": [{"key": "k1", "constraints": {"maxCallsPerHour": 2}}], "coveredBy": "k1",
	}]},
	"d3": {"id": "d3", "fromAgent": "helper", "toAgent": "leaf", "status": "active", "expiresAt": 5000, "depth": 3, "maxDepth": 3, "permissions": [{
		"key": "k2", "resource": "mcp:github:issues", "actions": ["read"], "constraints": {"requireApproval": true},
		"chain": [["d1", 0], ["d2", 0]], "inherited": [{"key": "k1", "constraints": {"maxCallsPerHour": 2}}], "coveredBy": "k2",
	}]},
}

_effective(agent) := eff if {
	eff := authz.effective_permissions with input as {"agentId": agent, "now": _t}
		with data.kavach.agents as _eagents
		with data.kavach.delegations as _edelegations
}

# constraints is always one object, the entry's own set, as for an own
# permission; the sets it inherits are listed beside it, root first, each
# with where it comes from.
test_effective_permissions_constraints_shape if {
	[own] := _effective("orch")
	own.constraints == {"ipAllowlist": ["10.0.0.0/8"]}
	not own.inheritedConstraints

	[w] := _effective("worker")
	w.constraints == {"maxCallsPerHour": 2}
	w.inheritedConstraints == [{"from": "orch", "constraints": {"ipAllowlist": ["10.0.0.0/8"]}}]

	[h] := _effective("helper")
	not h.constraints
	h.inheritedConstraints == [
		{"from": "orch", "constraints": {"ipAllowlist": ["10.0.0.0/8"]}},
		{"from": "d1", "constraints": {"maxCallsPerHour": 2}},
	]

	[l] := _effective("leaf")
	l.constraints == {"requireApproval": true}
	l.inheritedConstraints == h.inheritedConstraints

	# Without any constraint along the chain, neither field.
	bare := authz.effective_permissions with input as {"agentId": "helper", "now": _t}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as object.union(_ddelegations, {"d2": object.union(_ddelegations.d2, {"permissions": [object.union(_ddelegations.d2.permissions[0], {"inherited": []})]})})
	not bare[0].constraints
	not bare[0].inheritedConstraints
}

# What effective permissions show is what decisions check: the entry's own
# set and its inherited ones are the constraint sets of the permission.
test_effective_permissions_show_the_sets_decisions_check if {
	_shows_what_decisions_check("worker")
	_shows_what_decisions_check("helper")
	_shows_what_decisions_check("leaf")

	# And the decisions themselves: the root's allowlist, d1's limit (under
	# its own key) and leaf's approval all apply to leaf.
	d := authz.decision with input as {"agentId": "leaf", "action": "read", "resource": "mcp:github:issues", "now": _t, "ip": "192.0.2.1"}
		with data.kavach.agents as _eagents
		with data.kavach.delegations as _edelegations
	d.code == "ip_not_allowed"
	d2 := authz.decision with input as {"agentId": "leaf", "action": "read", "resource": "mcp:github:issues", "now": _t, "ip": "10.1.2.3", "calls": {"k1": 2}}
		with data.kavach.agents as _eagents
		with data.kavach.delegations as _edelegations
	d2.code == "rate_limited"
	d3 := authz.decision with input as {"agentId": "leaf", "action": "read", "resource": "mcp:github:issues", "now": _t, "ip": "10.1.2.3"}
		with data.kavach.agents as _eagents
		with data.kavach.delegations as _edelegations
	d3.code == "approval_required"
}

_shows_what_decisions_check(agent) if {
	[e] := _effective(agent)
	g := _edelegations[e.delegationId].permissions[0]
	c := {"perm": g, "source": e.delegationId, "links": array.concat(g.chain, [[e.delegationId, 0]])}
	checked := authz._constraint_sets(c) with data.kavach.agents as _eagents with data.kavach.delegations as _edelegations
	shown := array.concat([s | s := e.constraints], [s.constraints | some s in object.get(e, "inheritedConstraints", [])])
	sort([s.constraints | some s in checked]) == sort(shown)
}

# Trust constraints are inherited like the others: from the root
# delegator's own permission (live) and from the grants up the chain (as
# given), the child's own on top. What they check is the trust of the agent
# making the call, the delegate, never the delegator's.
_tagents := {
	"orch": {"ownerId": "u", "status": "active", "trust": {"level": "untrusted", "score": 5}, "permissions": [{
		"key": "o1", "resource": "mcp:github:*", "actions": ["read", "comment"],
		"constraints": {"minTrustLevel": "standard"},
	}]},
	"worker": {"ownerId": "u", "status": "active", "trust": {"level": "trusted", "score": 88}, "permissions": [], "incoming": ["d1"]},
	"helper": {"ownerId": "u", "status": "active", "trust": {"level": "standard", "score": 66}, "permissions": [], "incoming": ["d2"]},
}

_tdelegations := {
	"d1": {"id": "d1", "fromAgent": "orch", "toAgent": "worker", "status": "active", "expiresAt": 5000, "depth": 1, "maxDepth": 3, "permissions": [{
		"key": "k1", "resource": "mcp:github:issues", "actions": ["read", "comment"], "constraints": {"requireApproval": "trusted"},
		"chain": [], "inherited": [], "coveredBy": "o1",
	}]},
	"d2": {"id": "d2", "fromAgent": "worker", "toAgent": "helper", "status": "active", "expiresAt": 5000, "depth": 2, "maxDepth": 3, "permissions": [{
		"key": "k2", "resource": "mcp:github:issues", "actions": ["read"],
		"chain": [["d1", 0]], "inherited": [{"key": "k1", "constraints": {"requireApproval": "trusted"}}], "coveredBy": "k1",
	}]},
}

_tdcall(agent, trusts) := d if {
	agents := {id: a |
		some id, a in _tagents
		not trusts[id]
	}
	changed := {id: object.union(_tagents[id], {"trust": t}) | some id, t in trusts}
	d := authz.decision with input as {"agentId": agent, "action": "read", "resource": "mcp:github:issues", "now": _t}
		with data.kavach.agents as object.union(agents, changed)
		with data.kavach.delegations as _tdelegations
		with data.kavach.approvals as {}
}

test_delegated_trust_constraints_check_the_delegates_level if {
	# worker (trusted) meets the root's minimum (standard) and d1's approval
	# level (trusted), though its delegator is untrusted.
	w := _tdcall("worker", {})
	w.allowed
	w.consumes == false
	e := authz.explanation with input as {"agentId": "worker", "action": "read", "resource": "mcp:github:issues", "now": _t}
		with data.kavach.agents as _tagents
		with data.kavach.delegations as _tdelegations
	e.considered[0].result == "allowed"
	e.considered[0].reason == "the permission matches and all its constraints hold; agent trust level trusted (score 88) meets the required standard and is high enough to skip approval (required below trusted)"

	# helper (standard) meets the root's minimum, but d1's approval level,
	# inherited as given, asks a human (the root delegator's owner).
	h := _tdcall("helper", {})
	h.code == "approval_required"
	h.approvalOwner == "u"
	contains(h.reason, "below trusted (agent trust level standard (score 66))")

	# helper at limited: the root's own minimum, applied live, refuses first.
	l := _tdcall("helper", {"helper": {"level": "limited", "score": 41}})
	l.code == "trust_insufficient"
	l.reason == `permission "mcp:github:issues": agent trust level limited (score 41) is below the required standard`

	# The delegate's rise is what counts: helper at elevated needs no approval.
	_tdcall("helper", {"helper": {"level": "elevated", "score": 97}}).allowed

	# The delegator's trust does not: worker stays allowed with orch elevated or untrusted.
	_tdcall("worker", {"orch": {"level": "elevated", "score": 99}}).allowed
}

test_delegated_trust_constraints_in_effective_permissions if {
	[h] := authz.effective_permissions with input as {"agentId": "helper", "now": _t}
		with data.kavach.agents as _tagents
		with data.kavach.delegations as _tdelegations
	not h.constraints
	h.inheritedConstraints == [
		{"from": "orch", "constraints": {"minTrustLevel": "standard"}},
		{"from": "d1", "constraints": {"requireApproval": "trusted"}},
	]
}
