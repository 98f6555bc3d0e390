package kavach.authz

# A delegated permission counts only while every link of its chain is active
# and unexpired, every delegator along it is active (neither revoked nor
# suspended) and unexpired, and the root delegator still holds the very
# permission the chain was cut from.
_chain_failure(c) := _fail(7, "delegation_revoked", _revoked_reason(c.perm.resource, _revoked_links(c)[0])) if {
	count(_revoked_links(c)) > 0
} else := _fail(7, "delegation_expired", sprintf(
	"permission %q was delegated through %s, which has expired or whose delegator has expired",
	[c.perm.resource, _expired_links(c)[0]],
)) if {
	count(_expired_links(c)) > 0
} else := _fail(7, "delegation_revoked", sprintf(
	"permission %q was delegated through %s, but the delegator no longer holds the permission it was delegated from",
	[c.perm.resource, c.links[0][0]],
)) if {
	count(c.links) > 0
	count(_root_permissions(c)) == 0
}

# METADATA
# description: |
#   True when a delegated permission's chain holds: every link active and
#   unexpired, every delegator along it active and unexpired, and the root
#   delegator still holding the permission it was cut from. c is
#   {"perm": the delegated permission, "links": [[delegation ID, index], ...],
#   root first}. The delegation check (kavach.delegation) asks it of what a
#   delegator holds, so a broken chain cannot be re-delegated.
chain_intact(c) if not _chain_failure(c)

_revoked_links(c) := [id | some [id, _] in c.links; _link_revoked(id)]

_expired_links(c) := [id | some [id, _] in c.links; _link_expired(id)]

_link_revoked(id) if not data.kavach.delegations[id]

_link_revoked(id) if data.kavach.delegations[id].status != "active"

_link_revoked(id) if not data.kavach.agents[data.kavach.delegations[id].fromAgent]

# A delegator revoked or suspended: a suspended one's delegations stop
# counting until it is resumed.
_link_revoked(id) if data.kavach.agents[data.kavach.delegations[id].fromAgent].status != "active"

# The first broken link decides the reason; only a suspended delegator's is
# told apart, since resuming it restores the chain.
_revoked_reason(resource, id) := sprintf(
	"permission %q was delegated through %s, whose delegator is suspended",
	[resource, id],
) if {
	data.kavach.delegations[id].status == "active"
	data.kavach.agents[data.kavach.delegations[id].fromAgent].status == "suspended"
} else := sprintf(
	"permission %q was delegated through %s, which is revoked or whose delegator is revoked",
	[resource, id],
)

_link_expired(id) if _now >= data.kavach.delegations[id].expiresAt

_link_expired(id) if _expired(data.kavach.agents[data.kavach.delegations[id].fromAgent])

# The root delegator's own permission the chain hangs from, found by the key
# recorded at delegation time (keys are unique within an agent's
# permissions): empty once that permission is gone or changed.
_root_permissions(c) := [own |
	[id, i] := c.links[0]
	d := data.kavach.delegations[id]
	key := d.permissions[i].coveredBy
	some own in data.kavach.agents[d.fromAgent].permissions
	own.key == key
]

# METADATA
# description: |
#   The agent's permissions that count now: its own and those delegated
#   through intact chains, each marked with its source.
# scope: document
effective_permissions := array.concat(
	[_describe(c) | some c in _own],
	[_describe(c) | some c in _delegated; not _chain_failure(c)],
) if {
	_agent.status == "active"
	not _expired(_agent)
}

effective_permissions := [] if _agent.status != "active"

effective_permissions := [] if _expired(_agent)

_describe(c) := object.union(
	{"resource": c.perm.resource, "actions": c.perm.actions, "source": "own"},
	{"constraints": c.perm.constraints | count(object.get(c.perm, "constraints", {})) > 0},
) if {
	c.source == "own"
}

# A delegated entry has the one shape of constraints too: its own set, as
# the delegation gave it, in constraints; every other set that must hold as
# well, in inheritedConstraints. The sets cannot be merged into one object
# without changing what they mean (each rate limit counts under its own
# key; two IP allowlists or argument pattern lists must each be met).
_describe(c) := object.union_n([
	{
		"resource": c.perm.resource,
		"actions": c.perm.actions,
		"source": "delegation",
		"delegationId": c.source,
		"fromAgent": data.kavach.delegations[c.source].fromAgent,
		"depth": data.kavach.delegations[c.source].depth,
		"expiresAt": data.kavach.delegations[c.source].expiresAt,
	},
	{"constraints": c.perm.constraints | count(object.get(c.perm, "constraints", {})) > 0},
	{"inheritedConstraints": sets | sets := _inherited_sets(c); count(sets) > 0},
]) if {
	c.source != "own"
}

# The constraint sets a delegated permission carries besides its own, root
# first, each with where it comes from: the root delegator's own
# permission, as it is now ("from" the agent), then the permission each
# delegation up the chain gave ("from" the delegation). Delegations never
# change, so these are the sets _constraint_sets checks: the inherited
# snapshot holds the same sets, without their origin.
_inherited_sets(c) := array.concat(
	[{"from": _root_delegator(c), "constraints": r.constraints} |
		some r in _root_permissions(c)
		count(object.get(r, "constraints", {})) > 0
	],
	[{"from": id, "constraints": p.constraints} |
		some k, [id, i] in c.links
		k < count(c.links) - 1
		p := data.kavach.delegations[id].permissions[i]
		count(object.get(p, "constraints", {})) > 0
	],
)
