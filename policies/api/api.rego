# METADATA
# title: Kavach API access
# description: |
#   Who may call which route of Kavach's own HTTP API, in the spirit of OPA's
#   system.authz. Routes are named (agents.create, authorize, …), not paths.
#   The caller is input.principal: {"type": "anonymous"}, {"type": "agent"}
#   (an agent's own token, or an MCP access token) or {"type": "key",
#   "roles": [...]} (an API key; KAVACH_ADMIN_KEY is a key with role admin).
#   The sidecar evaluates `decision` at start-up for every route it serves
#   and every principal shape, one role at a time, and answers requests from
#   that table: a key may do what any one of its roles may. So decide from
#   input.route, input.principal.type and input.principal.roles only.
package kavach.api

# METADATA
# description: The roles an API key may hold.
roles := {"admin", "approver", "auditor", "decider", "metrics"}

# METADATA
# description: Routes open without a credential, as their RFCs or probes need.
public := {
	"health",
	"ready",
	"oauth.metadata",
	"oauth.resource_metadata",
	"oauth.register",
	"oauth.authorize",
	"oauth.token",
	"oauth.revoke",
	"oauth.introspect",
	"oauth.jwks",
}

# METADATA
# description: |
#   Route → the roles besides admin that may call it. admin may call every
#   route listed here.
grants := {
	"agents.create": set(),
	"agents.list": {"auditor"},
	"agents.get": {"auditor"},
	"agents.update": set(),
	"agents.rotate": set(),
	"agents.revoke": set(),
	"agents.resume": set(),
	"agents.trust": {"auditor", "decider"},
	"agents.delegations": {"auditor"},
	"agents.effective_permissions": {"auditor", "decider"},
	"authorize": {"decider"},
	"delegations.create": set(),
	"delegations.get": {"auditor"},
	"delegations.revoke": set(),
	"approvals.list": {"approver", "auditor"},
	"approvals.get": {"approver", "auditor"},
	"approvals.approve": {"approver"},
	"approvals.deny": {"approver"},
	"keys.create": set(),
	"keys.list": set(),
	"keys.get": set(),
	"keys.revoke": set(),
	"policies.get": {"auditor"},
	"bundle.get": set(),
	"audit.query": {"auditor"},
	"audit.export": {"auditor"},
	"anomalies.list": {"auditor"},
	"events.stream": {"auditor"},
	"webhooks.deliveries": set(),
	"metrics": {"metrics"},
	"oauth.requests.get": {"approver"},
	"oauth.requests.approve": {"approver"},
	"oauth.requests.deny": {"approver"},
	"oauth.verify": {"decider"},
	"oauth.keys.rotate": set(),
	"oauth.disabled": {"approver", "auditor", "decider"},
}

# METADATA
# description: Every route this policy decides.
routes := public | object.keys(grants)

# METADATA
# description: |
#   Routes an agent may call with its own credential, for itself only: its
#   own decisions (no agentId) and its own effective permissions.
agent_self := {"authorize", "agents.effective_permissions"}

# METADATA
# description: |
#   The decision for one call: allow, and a code saying why (public, self,
#   role) or why not (unknown_route, unauthenticated, forbidden).
# entrypoint: true
default decision := {"allow": false, "code": "forbidden"}

decision := {"allow": true, "code": "public"} if {
	input.route in public
} else := {"allow": false, "code": "unknown_route"} if {
	not grants[input.route]
} else := {"allow": false, "code": "unauthenticated"} if {
	input.principal.type == "anonymous"
} else := {"allow": true, "code": "self"} if {
	input.principal.type == "agent"
	input.route in agent_self
} else := {"allow": true, "code": "role"} if {
	input.principal.type == "key"
	some role in input.principal.roles
	_may(role, input.route)
}

_may("admin", _)

_may(role, route) if role in grants[route]
