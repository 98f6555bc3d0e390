package kavach.authz_index_test

import data.kavach.authz

# Every fast branch agrees with the general branches (forced by
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

# Every fast branch agrees with the general branches, on every request of
# the index tests and with every link of a chain broken in turn.
test_fast_branches_equal_general if {
	every inp in _requests {
		_norm(_decide(inp, _agents)) == _norm(_general_with(inp, _agents, _delegations))
	}
	every change in _chain_cases {
		every inp in [
			{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:repos", "ip": "10.1.2.3"},
			{"agentId": "agt_leaf", "action": "read", "resource": "mcp:github:pulls", "ip": "10.1.2.3"},
			{"agentId": "agt_sub", "action": "read", "resource": "mcp:github:repos", "ip": "192.0.2.1"},
			{"agentId": "agt_leaf", "action": "write", "resource": "mcp:github:issues"},
		] {
			_norm(_decide_with(inp, _changed(_agents, change[0]), _changed(_delegations, change[1]))) == _norm(_general_with(inp, _changed(_agents, change[0]), _changed(_delegations, change[1])))
		}
	}
}

test_fast_general_forced if {
	# the forcing works: a plain own allow from the general path is the
	# same document
	count(_requests) > 5
}

_constrained_constraints := [
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

_constrained_agents := {sprintf("agt_c%d", [i]): {
	"ownerId": "u", "status": "active", "expiresAt": null, "trust": {"level": "standard", "score": 50},
	"permissions": [{
		"key": "pk", "resource": "svc:*", "glob": "svc:?**", "actions": ["run"], "constraints": cs,
		"use": _use({"key": "pk", "resource": "svc:*", "constraints": cs}),
	}],
	"byAction": {"run": [0]}, "anyAction": [],
} |
	some i, cs in _constrained_constraints
}

_constrained_inputs := [
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

# And for own permissions with every kind of constraint.
test_fast_constraints_equal_general if {
	every id, _ in _constrained_agents {
		every base in _constrained_inputs {
			_norm(_decide_with(object.union(base, {"agentId": id}), _constrained_agents, {})) == _norm(_general_with(object.union(base, {"agentId": id}), _constrained_agents, {}))
		}
	}
}
