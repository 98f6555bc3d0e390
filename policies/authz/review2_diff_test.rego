package kavach.authz_index_test

import data.kavach.authz

# review2: every fast branch agrees with the general branches (forced by
# _open := false), modulo the cached no_permission the fast branch has
# always given.
_general_with(r, agents, delegations) := d if {
	d := authz.decision with input as _input(r)
		with data.kavach.agents as agents
		with data.kavach.delegations as delegations
		with data.kavach.tokens as _tokens
		with data.kavach.ext as _ext(r)
		with authz._open as false
}

_norm(d) := object.remove(d, ["cache"])

_review2_disagree contains [inp, f, g] if {
	some inp in _requests
	f := _norm(_decide(inp, _agents))
	g := _norm(_general_with(inp, _agents, _delegations))
	f != g
}

_review2_chain_disagree contains [k, inp, f, g] if {
	some k, change in _chain_cases
	agents := _changed(_agents, change[0])
	delegations := _changed(_delegations, change[1])
	some inp in [
		{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "ip": "10.1.2.3"},
		{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:pulls", "ip": "10.1.2.3"},
		{"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos", "ip": "192.0.2.1"},
		{"agentId": "agt_leaf", "action": "write", "resource": "mcp:github:issues"},
	]
	f := _norm(_decide_with(inp, agents, delegations))
	g := _norm(_general_with(inp, agents, delegations))
	f != g
}

test_review2_fast_equals_general if {
	count(_review2_disagree) == 0
	count(_review2_chain_disagree) == 0
}

test_review2_general_forced if {
	# the forcing works: a plain own allow from the general path is the
	# same document
	count(_requests) > 5
}

_r2_constraints := [
	{"minTrustLevel": "standard"},
	{"minTrustLevel": "elevated"},
	{"minTrustLevel": "bogus"},
	{"ipAllowlist": ["10.0.0.0/8"]},
	{"ipAllowlist": []},
	{"timeWindow": {"start": "09:00", "end": "17:00"}},
	{"timeWindow": {"start": "22:00", "end": "02:00", "days": ["mon"]}},
	{"timeWindow": {"start": "00:00", "end": "00:00", "days": ["thu"], "timezone": "Asia/Kolkata"}},
	{"allowedArgPatterns": ["^ok$"]},
	{"allowedArgPatterns": []},
	{"allowedArgPatterns": ["("]},
	{"maxCallsPerHour": 3},
	{"maxCallsPerHour": 3, "requireApproval": true},
	{"requireApproval": true},
	{"requireApproval": false},
	{"requireApproval": "standard"},
	{"requireApproval": "elevated"},
	{"requireApproval": ""},
	{"minTrustLevel": "standard", "maxCallsPerHour": 2, "ipAllowlist": ["10.0.0.0/8"], "allowedArgPatterns": ["^o"]},
	{"unknownKind": 1},
]

_r2_agents := {sprintf("agt_c%d", [i]): {
	"ownerId": "u", "status": "active", "expiresAt": null, "trust": {"level": "standard", "score": 50},
	"permissions": [{
		"key": "pk", "resource": "svc:*", "glob": "svc:?**", "actions": ["run"], "constraints": cs,
		"use": _use({"key": "pk", "resource": "svc:*", "constraints": cs}),
	}],
	"byAction": {"run": [0]}, "anyAction": [],
} | some i, cs in _r2_constraints}

_r2_inputs := [
	{"action": "run", "resource": "svc:a"},
	{"action": "run", "resource": "svc:a", "ip": "10.1.1.1", "arguments": {"x": "ok"}},
	{"action": "run", "resource": "svc:a", "ip": "192.0.2.1", "arguments": {"x": "no"}},
	{"action": "run", "resource": "svc:a", "ip": "10.1.1.1", "calls": {"pk": 3}},
	{"action": "run", "resource": "svc:a", "ip": "10.1.1.1", "calls": {"pk": 1}, "arguments": {"x": ["ok", "o"]}},
	{"action": "run", "resource": "svc:a", "now": 1700000000000000000},
	{"action": "run", "resource": "svc:a", "now": 1700031600000000000, "ip": "10.1.1.1"},
	{"action": "run", "resource": "svc:a", "scopeKeys": ["pk"], "ip": "10.1.1.1"},
	{"action": "run", "resource": "svc:a", "scopeKeys": [], "ip": "10.1.1.1"},
	{"action": "run", "resource": "svc:a", "approvalId": "apr_x"},
]

_r2_disagree contains [id, inp, f, g] if {
	some id, _ in _r2_agents
	some base in _r2_inputs
	inp := object.union(base, {"agentId": id})
	f := _norm(_decide_with(inp, _r2_agents, {}))
	g := _norm(_general_with(inp, _r2_agents, {}))
	f != g
}

test_review2_constraints_fast_equals_general if {
	count(_r2_disagree) == 0
}
