package kavach.api_test

import data.kavach.api

_key(roles) := {"type": "key", "roles": roles}

test_public_routes_need_no_credential if {
	every route in api.public {
		api.decision == {"allow": true, "code": "public"} with input as {"route": route, "principal": {"type": "anonymous"}}
	}
}

test_everything_else_needs_a_credential if {
	every route, _ in api.grants {
		api.decision.code == "unauthenticated" with input as {"route": route, "principal": {"type": "anonymous"}}
	}
}

test_admin_may_call_every_route if {
	every route, _ in api.grants {
		api.decision == {"allow": true, "code": "role"} with input as {"route": route, "principal": _key(["admin"])}
	}
}

test_unknown_route_is_refused_even_to_admin if {
	api.decision == {"allow": false, "code": "unknown_route"} with input as {"route": "agents.delete_all", "principal": _key(["admin"])}
}

_cases := [
	# [route, roles, allowed]
	["agents.create", ["decider"], false],
	["agents.create", ["approver", "auditor", "decider", "metrics"], false],
	["agents.update", ["auditor"], false],
	["agents.list", ["auditor"], true],
	["agents.list", ["decider"], false],
	["authorize", ["decider"], true],
	["authorize", ["approver"], false],
	["authorize", ["auditor"], false],
	["agents.effective_permissions", ["decider"], true],
	["approvals.approve", ["approver"], true],
	["approvals.approve", ["auditor"], false],
	["approvals.approve", ["decider"], false],
	["approvals.list", ["auditor"], true],
	["audit.export", ["auditor"], true],
	["audit.export", ["approver"], false],
	["keys.create", ["auditor", "approver", "decider"], false],
	["bundle.get", ["auditor"], false],
	["metrics", ["metrics"], true],
	["metrics", ["decider"], false],
	["oauth.requests.approve", ["approver"], true],
	["oauth.requests.approve", ["decider"], false],
	["oauth.verify", ["decider"], true],
	["oauth.keys.rotate", ["approver"], false],
	["delegations.create", ["decider"], false],
	["anomalies.list", ["auditor"], true],
	["anomalies.list", ["decider"], false],
	["anomalies.list", ["approver"], false],
	["events.stream", ["auditor"], true],
	["events.stream", ["decider"], false],
	["events.stream", ["approver"], false],
	["webhooks.deliveries", ["auditor"], false],
	["webhooks.deliveries", ["decider"], false],
	["webhooks.deliveries", ["admin"], true],
	["agents.trust", ["auditor"], true],
	["agents.trust", ["decider"], true],
	["agents.trust", ["approver"], false],
	["agents.resume", ["auditor", "approver", "decider", "metrics"], false],
	# a key may do what any one of its roles may
	["approvals.approve", ["decider", "approver"], true],
	# a key without roles may do nothing
	["agents.list", [], false],
]

test_roles if {
	every c in _cases {
		api.decision.allow == c[2] with input as {"route": c[0], "principal": _key(c[1])}
	}
}

test_refusal_code_is_forbidden if {
	api.decision == {"allow": false, "code": "forbidden"} with input as {"route": "agents.create", "principal": _key(["decider"])}
}

test_agents_may_only_decide_and_read_for_themselves if {
	every route, _ in api.grants {
		_agent_allowed(route) == _is_self(route)
	}
}

_agent_allowed(route) := allowed if {
	allowed := api.decision.allow with input as {"route": route, "principal": {"type": "agent"}}
}

default _is_self(_) := false

_is_self(route) if route in api.agent_self

test_agent_self_code if {
	api.decision == {"allow": true, "code": "self"} with input as {"route": "authorize", "principal": {"type": "agent"}}
}

test_every_grant_names_known_roles if {
	every _, rs in api.grants {
		every r in rs {
			r in api.roles
		}
	}
}

test_public_and_granted_routes_do_not_overlap if {
	every route in api.public {
		not api.grants[route]
	}
}

test_routes_are_public_and_granted_ones if {
	api.routes == api.public | object.keys(api.grants)
	"authorize" in api.routes
	"health" in api.routes
}
