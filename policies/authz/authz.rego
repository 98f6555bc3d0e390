# METADATA
# title: Kavach agent authorization
# description: |
#   Decides whether an agent may perform an action on a resource. Agent data
#   lives under data.kavach (synced from the Kavach store); the caller supplies
#   facts only: the agent ID or the SHA-256 hex of its bearer token, the action,
#   the resource and the current time in nanoseconds (input.now).
package kavach.authz

# METADATA
# description: The decision document for one authorize request.
# entrypoint: true
decision := {
	"allowed": _outcome.allowed,
	"code": _outcome.code,
	"reason": _outcome.reason,
	"agentId": _agent_id,
	"ownerId": _owner_id,
}

default _agent_id := ""

_agent_id := input.agentId if _by_id

_agent_id := data.kavach.tokens[input.tokenHash] if not _by_id

# A helper rule, because "not is_string(input.x)" is undefined, not true,
# when input.x is missing.
_by_id if is_string(input.agentId)

default _owner_id := ""

_owner_id := _agent.ownerId

# Agents are looked up by key, never iterated: cost does not grow with their number.
_agent := data.kavach.agents[_agent_id]

# The sidecar passes the time so that decisions are reproducible; stock OPA
# callers that omit it get the evaluation time.
_now := input.now if _has_now

_now := time.now_ns() if not _has_now

_has_now if is_number(input.now)

_outcome := _deny("invalid_token", "the bearer token does not belong to any agent") if {
	not _by_id
	not _agent
} else := _deny("agent_not_found", sprintf("agent %q does not exist", [input.agentId])) if {
	not _agent
} else := _deny("agent_revoked", sprintf("agent %q has been revoked", [_agent_id])) if {
	_agent.status == "revoked"
} else := _deny("agent_expired", sprintf("agent %q expired", [_agent_id])) if {
	is_number(_agent.expiresAt)
	_now >= _agent.expiresAt
} else := _allow(_granting[0]) if {
	count(_granting) > 0
} else := _deny("no_permission", sprintf(
	"permission %q matches %q on %q but has constraints (%s) that this version does not enforce",
	[_constrained[0].resource, input.action, input.resource, concat(", ", sort(object.keys(_constrained[0].constraints)))],
)) if {
	count(_constrained) > 0
} else := _deny("no_permission", sprintf("no permission of agent %q allows %q on %q", [_agent_id, input.action, input.resource]))

_deny(code, reason) := {"allowed": false, "code": code, "reason": reason}

_allow(p) := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q", [p.resource, input.action, input.resource]),
}

# Every matching permission is considered, not only the first stored.
_matching := [p |
	some p in _agent.permissions
	_action_match(p.actions, input.action)
	_resource_match(p.resource, input.resource)
]

# Constraints are enforced by a later version; until then a constrained
# permission fails closed instead of allowing more than it says.
_granting := [p | some p in _matching; not _has_constraints(p)]

_constrained := [p | some p in _matching; _has_constraints(p)]

_has_constraints(p) if count(p.constraints) > 0

_action_match(actions, _) if "*" in actions

_action_match(actions, action) if action in actions

# A bare "*" matches any resource.
_resource_match("*", _)

# A trailing "*" matches one or more remaining segments.
_resource_match(pattern, resource) if {
	p := split(pattern, ":")
	r := split(resource, ":")
	last := count(p) - 1
	last > 0
	p[last] == "*"
	count(r) > last
	every i, seg in array.slice(p, 0, last) {
		_segment_match(seg, r[i])
	}
	every seg in array.slice(r, last, count(r)) {
		seg != ""
	}
}

# Same number of segments; "*" matches exactly one.
_resource_match(pattern, resource) if {
	p := split(pattern, ":")
	r := split(resource, ":")
	count(p) == count(r)
	every i, seg in p {
		_segment_match(seg, r[i])
	}
}

_segment_match("*", s) if s != ""

_segment_match(seg, s) if {
	seg != "*"
	seg == s
}
