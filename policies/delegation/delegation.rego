# METADATA
# title: Kavach delegation checks
# description: |
#   Decides whether a new delegation may be created: every delegated
#   permission must be covered by a permission the delegator holds now (own,
#   or delegated to it through an intact chain), the chain may not grow past
#   the smallest maxDepth along it, and it may not loop back. Input:
#   {fromAgent, toAgent, permissions, maxDepth, now}.
# schemas:
#   - input: schema.delegation_input
#   - data.kavach.agents: schema.data.agents
#   - data.kavach.delegations: schema.data.delegations
package kavach.delegation

import data.kavach.authz
import data.kavach.resources

# METADATA
# description: The verdict on a delegation request, with what to store.
# entrypoint: true
check := {"ok": false, "code": "self_delegation", "reason": "an agent cannot delegate to itself"} if {
	input.fromAgent == input.toAgent
} else := {"ok": false, "code": "delegation_escalation", "reason": sprintf(
	"permissions[%d] (%q: %s) is not covered by any permission agent %q holds now",
	[
		_uncovered[0], input.permissions[_uncovered[0]].resource,
		concat(", ", input.permissions[_uncovered[0]].actions), input.fromAgent,
	],
)} if {
	count(_uncovered) > 0
} else := {"ok": false, "code": "delegation_cycle", "reason": sprintf(
	"agent %q already delegates, directly or up the chain, to agent %q: the delegation would form a cycle",
	[input.toAgent, input.fromAgent],
)} if {
	input.toAgent in _upstream
} else := {"ok": false, "code": "delegation_depth_exceeded", "reason": sprintf(
	"the chain would be %d deep, but the smallest maxDepth along it is %d",
	[_depth, _max_depth],
)} if {
	_depth > _max_depth
} else := {"ok": true, "code": "ok", "reason": "", "depth": _depth, "maxDepth": _max_depth, "grants": _grants}

_from := data.kavach.agents[input.fromAgent]

# What the delegator holds now. Chains are checked exactly as decisions check
# them (authz.chain_intact), so a broken chain cannot be re-delegated.
_held := array.concat(
	[{"perm": p, "links": [], "depth": 0} | some p in _from.permissions],
	[h |
		some id in _from.incoming
		d := data.kavach.delegations[id]
		d.toAgent == input.fromAgent
		some i, p in d.permissions
		c := {"perm": p, "links": array.concat(p.chain, [[id, i]])}
		authz.chain_intact(c)
		h := object.union(c, {"depth": d.depth, "maxDepth": d.maxDepth})
	],
)

_covering(rp) := [h |
	some h in _held
	resources.covers(h.perm.resource, rp.resource)
	resources.actions_cover(h.perm.actions, rp.actions)
]

_uncovered := [i | some i, rp in input.permissions; count(_covering(rp)) == 0]

# The shallowest covering permission: own ones (depth 0) first.
_best(rp) := sort([[h.depth, i, h] | some i, h in _covering(rp)])[0][2]

_grants := [g |
	some rp in input.permissions
	h := _best(rp)
	g := {
		"resource": rp.resource,
		"actions": rp.actions,
		"constraints": object.get(rp, "constraints", {}),
		"inherited": _inherit(h),
		"chain": h.links,
		"coveredBy": h.perm.key,
		"depth": h.depth + 1,
		"maxDepth": object.get(h, "maxDepth", input.maxDepth),
	}
]

# What a new grant inherits as a snapshot: nothing from an own permission
# (its constraints apply live: decisions read the root permission's
# constraints as they are now), and from a delegated one its own inherited
# sets plus its own constraints.
_inherit(h) := [] if count(h.links) == 0

_inherit(h) := array.concat(
	object.get(h.perm, "inherited", []),
	[{"key": h.perm.key, "constraints": cs} | cs := h.perm.constraints; count(cs) > 0],
) if {
	count(h.links) > 0
}

_depth := max([g.depth | some g in _grants])

_max_depth := min(array.concat([input.maxDepth], [g.maxDepth | some g in _grants]))

# The delegating agent and every delegator up the chains it draws on.
_upstream contains input.fromAgent

_upstream contains from if {
	some g in _grants
	some [id, _] in g.chain
	from := data.kavach.delegations[id].fromAgent
}
