# Example validation hooks. Beside deny (for decisions), an extension may
# veto writes: deny_agent sees an agent as a create or an update would leave
# it, deny_delegation a delegation as it would be created. Each yields
# messages; any message refuses the write with 422 policy_violation, writes
# nothing, and is audited. Their inputs have their own schemas
# (schemas/deny_agent_input.json, schemas/deny_delegation_input.json), named
# on each rule below. (The package's METADATA is in freeze.rego: OPA takes
# one per package.)
package kavach.ext

# The owners whose agents may not be service agents, nor receive
# delegations as one.
_no_service_owners := {"team-contractors", "team-interns"}

# 30 days, in nanoseconds.
_max_lifetime := ((30 * 24) * 60) * 60000000000

# METADATA
# description: No permission of an agent may name every resource in a segment.
# scope: document
# schemas:
#   - input: schema.deny_agent_input
deny_agent contains sprintf("permissions[%d]: resource %q has a wildcard segment; name the resources", [i, p.resource]) if {
	some i, p in input.agent.permissions
	_wildcard(p.resource)
}

# Every agent expires within 30 days of being written.
deny_agent contains "expiresAt is required: agents must expire within 30 days" if {
	not is_string(input.agent.expiresAt)
}

deny_agent contains sprintf("expiresAt %s is more than 30 days away", [input.agent.expiresAt]) if {
	time.parse_rfc3339_ns(input.agent.expiresAt) - input.now > _max_lifetime
}

# Some owners may not have service agents.
deny_agent contains sprintf("owner %q may not have service agents", [input.agent.ownerId]) if {
	input.agent.type == "service"
	input.agent.ownerId in _no_service_owners
}

# METADATA
# description: No delegated permission may name every resource in a segment.
# scope: document
# schemas:
#   - input: schema.deny_delegation_input
deny_delegation contains sprintf("permissions[%d]: resource %q has a wildcard segment; name the resources", [i, p.resource]) if {
	some i, p in input.delegation.permissions
	_wildcard(p.resource)
}

# Delegations end within 30 days.
deny_delegation contains sprintf("expiresAt %s is more than 30 days away", [input.delegation.expiresAt]) if {
	time.parse_rfc3339_ns(input.delegation.expiresAt) - input.now > _max_lifetime
}

# Another owner's service agent may not receive delegations.
deny_delegation contains sprintf("agent %q is a service agent of owner %q: it takes no delegations from owner %q", [
	input.to.id, input.to.ownerId, input.from.ownerId,
]) if {
	input.to.type == "service"
	input.to.ownerId != input.from.ownerId
}

# A resource pattern is "*" or holds a "*" segment ("mcp:*", "admin:*:delete").
_wildcard(resource) if "*" in split(resource, ":")
