package kavach.ext_test

import data.kavach.authz

_agents := {
	"a": {"ownerId": "u", "status": "active", "permissions": [{"key": "k", "resource": "db:*", "actions": ["*"]}]},
	"p": {"ownerId": "team-payments", "status": "active", "permissions": [{"key": "k", "resource": "*", "actions": ["read"]}]},
}

_dec(inp) := d if {
	d := authz.decision with input as inp with data.kavach.agents as _agents
}

# 2026-11-23, inside the freeze; 2027-01-05, after it.
_in_freeze := 1795392000000000000

_after := 1799107200000000000

test_freeze_denies_drops_on_production if {
	d := _dec({"agentId": "a", "action": "drop", "resource": "db:prod:users", "now": _in_freeze})
	not d.allowed
	d.code == "change_freeze"
}

test_freeze_applies_without_input_now if {
	# Stock OPA callers may leave "now" out: the evaluation time is used.
	d := authz.decision with input as {"agentId": "a", "action": "drop", "resource": "db:prod:users"}
		with data.kavach.agents as _agents
		with time.now_ns as _in_freeze
	d.code == "change_freeze"
}

test_freeze_ends if _dec({"agentId": "a", "action": "drop", "resource": "db:prod:users", "now": _after}).allowed

test_freeze_spares_staging if _dec({"agentId": "a", "action": "drop", "resource": "db:staging", "now": _in_freeze}).allowed

test_team_namespace if {
	_dec({"agentId": "p", "action": "read", "resource": "payments:ledger", "now": _after}).allowed
	_dec({"agentId": "p", "action": "read", "resource": "hr:salaries", "now": _after}).code == "team_mismatch"
}

test_team_namespace_by_token if {
	d := authz.decision with input as {"tokenHash": "hp", "action": "read", "resource": "hr:salaries", "now": _after}
		with data.kavach.agents as _agents
		with data.kavach.tokens as {"hp": "p"}
	d.code == "team_mismatch"
}

test_extension_cannot_allow if {
	_dec({"agentId": "a", "action": "read", "resource": "mail:inbox", "now": _after}).code == "no_permission"
}
