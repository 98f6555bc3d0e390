package kavach.authz_test

import data.kavach.authz

_ext_agents := {"a": {"ownerId": "u", "status": "active", "permissions": [{"key": "k", "resource": "db:*", "actions": ["read", "drop"]}]}}

test_extension_denies_an_allowed_call if {
	d := authz.decision with input as {"agentId": "a", "action": "drop", "resource": "db:prod", "now": 1}
		with data.kavach.agents as _ext_agents
		with data.kavach.ext.deny as {{"code": "z_second", "reason": "b"}, {"code": "change_freeze", "reason": "no drops during the freeze"}}
	not d.allowed
	d.code == "change_freeze"
	d.reason == "no drops during the freeze"
}

test_extension_cannot_allow_or_change_a_core_deny if {
	d := authz.decision with input as {"agentId": "a", "action": "write", "resource": "db:prod", "now": 1}
		with data.kavach.agents as _ext_agents
		with data.kavach.ext.deny as {{"code": "x", "reason": "y"}}
	d.code == "no_permission"
}

test_malformed_extension_denials_are_ignored if {
	d := authz.decision with input as {"agentId": "a", "action": "read", "resource": "db:prod", "now": 1}
		with data.kavach.agents as _ext_agents
		with data.kavach.ext.deny as {"just a string", {"code": 1, "reason": "r"}}
	d.allowed
}

test_explanation if {
	e := authz.explanation with input as {"agentId": "helper", "action": "read", "resource": "mcp:github:issues", "now": 1000}
		with data.kavach.agents as object.union(_dagents, {"helper": object.union(_dagents.helper, {"permissions": [
			{"key": "h1", "resource": "mcp:slack:*", "actions": ["read"]},
			{"key": "h2", "resource": "mcp:github:issues", "actions": ["write"]},
		]})})
		with data.kavach.delegations as object.union(_ddelegations, {"dx": {"id": "dx"}})
	[v.result | some v in e.considered] == ["resource_mismatch", "action_mismatch", "allowed"]
	e.considered[2].delegationPath == [
		{"delegationId": "d1", "fromAgent": "orch", "toAgent": "worker"},
		{"delegationId": "d2", "fromAgent": "worker", "toAgent": "helper"},
	]
	failed := authz.explanation with input as {"agentId": "worker", "action": "execute", "resource": "mcp:deploy:staging", "now": 1000}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as _ddelegations
	[v.result | some v in failed.considered] == ["action_mismatch", "approval_required"]

	# A link whose delegation is gone shows its ID alone.
	gone := authz.explanation with input as {"agentId": "helper", "action": "read", "resource": "mcp:github:issues", "now": 1000}
		with data.kavach.agents as _dagents
		with data.kavach.delegations as object.remove(_ddelegations, ["d1"])
	gone.considered[0].delegationPath == [
		{"delegationId": "d1"},
		{"delegationId": "d2", "fromAgent": "worker", "toAgent": "helper"},
	]
}

test_explanation_names_extension_denials if {
	e := authz.explanation with input as {"agentId": "a", "action": "drop", "resource": "db:prod", "now": 1}
		with data.kavach.agents as _ext_agents
		with data.kavach.ext.deny as {{"code": "change_freeze", "reason": "frozen"}}
	e.extensionDenials == [{"code": "change_freeze", "reason": "frozen"}]
	e.considered[0].result == "allowed"
}
