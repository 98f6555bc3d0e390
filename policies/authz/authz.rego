# METADATA
# title: Kavach agent authorization
# description: |
#   Decides whether an agent may perform an action on a resource. Agent,
#   delegation and approval data live under data.kavach (synced from the
#   Kavach store); the caller supplies facts only: the agent ID or the SHA-256
#   hex of its bearer token, the action, the resource, the arguments, the
#   client IP, an approval ID, the current time in nanoseconds (input.now) and
#   the calls made in the last hour per permission key (input.calls).
# schemas:
#   - input: schema.input
#   - data.kavach.agents: schema.data.agents
#   - data.kavach.tokens: schema.data.tokens
#   - data.kavach.delegations: schema.data.delegations
#   - data.kavach.approvals: schema.data.approvals
package kavach.authz

import data.kavach.resources

# One ordered chain, the common cases first. While the agent is active and
# unexpired and no extension is loaded (_open), none of the denials that
# depend on the agent's record alone, nor an extension's, can apply, so
# the common decisions come first, each from one branch that touches as
# few rules as it can: an allow by an own permission without constraints
# (the first stored); a call no permission matches; an allow by a
# delegated permission without constraints through a live chain; an allow
# by the one own permission that matches, whose constraints hold without a
# human. Each gives exactly what the general branches below would: they
# only skip the wrapping, ranking and merging those do for any mix of
# candidates. Then the general chain: the first five denials depend on the
# agent's record alone: they hold until the data changes (an expired agent
# stays expired; a suspended one until the write that resumes it). The
# states an admin or containment sets (revoked, suspended) come before the
# one the clock brings (expired). Without extensions, the own allow and the
# call no permission matches depend on nothing but the data either: they
# hold until the agent expires (the cached branches require its expiresAt,
# which synced data always has). Extensions may depend on anything, so with
# them loaded these decisions come from the general branches, which are
# never cached. Every literal here is written out in place: a value handed
# through one more rule or function costs allocations on every decision.

# METADATA
# description: |
#   The decision document for one authorize request: allowed, code, reason,
#   agentId and ownerId; on an allow, the permission it relies on and what
#   that consumes; on approval_required, approvalRequired and approvalOwner.
#   Two more fields say how the sidecar may treat the decision. cache is
#   false when the decision must be evaluated every time, else
#   {"until": t}: it holds, as long as neither data nor policies change,
#   until the instant t (Unix nanoseconds; null: no such instant). consumes
#   is true when the decision depends on the call counts (input.calls) or
#   uses up quota or an approval: the sidecar decides it again under the
#   agent's lock, with the counts, and records what it uses.
# entrypoint: true
decision := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q", [p.resource, input.action, input.resource]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"permission": p.use,
	"cache": {"until": a.expiresAt},
	"consumes": false,
} if {
	_open
	a := _agent
	p := _matching_own[0]
	not p.constraints
} else := {
	"allowed": false,
	"code": "no_permission",
	"reason": sprintf("no permission of agent %q allows %q on %q", [agent_id, input.action, input.resource]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"cache": {"until": a.expiresAt},
	"consumes": false,
} if {
	_open
	a := _agent
	count(_matching_own) == 0
	count(_delegated_matching) == 0
} else := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q (delegated by %s)", [p.resource, input.action, input.resource, id]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"permission": {"key": p.key, "source": id, "resource": p.resource},
	"cache": false,
	"consumes": false,
} if {
	_open
	a := _agent
	count(_matching_own) == 0
	[id, i] := _delegated_matching[0]
	d := data.kavach.delegations[id]
	p := d.permissions[i]
	not p.constraints
	p.inherited == []

	# Every link active and unexpired, every delegator active and
	# unexpired (what _chain_failure finds no fault with), looked up at
	# each decision, so a change to any of them counts at once: the link
	# to this agent, then those up the chain.
	d.status == "active"
	_now < d.expiresAt
	delegator := data.kavach.agents[d.fromAgent]
	delegator.status == "active"
	not _expired(delegator)
	every link in p.chain {
		up := data.kavach.delegations[link[0]]
		up.status == "active"
		_now < up.expiresAt
		up_delegator := data.kavach.agents[up.fromAgent]
		up_delegator.status == "active"
		not _expired(up_delegator)
	}

	# The root delegator still holds the permission the chain was cut from,
	# without constraints (one: the sync never writes two permissions of an
	# agent with one key; data that does takes the general branches).
	[root_id, root_i] := p.links[0]
	root := data.kavach.delegations[root_id]
	key := root.permissions[root_i].coveredBy
	[own] := [own | some own in data.kavach.agents[root.fromAgent].permissions; own.key == key]
	not own.constraints
} else := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q", [p.resource, input.action, input.resource]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"permission": p.use,
	"cache": false,
	"consumes": true,
} if {
	_open
	a := _agent
	p := _sole_holding
	p.use.rateLimits[0].max == p.constraints.maxCallsPerHour
} else := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q", [p.resource, input.action, input.resource]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"permission": p.use,
	"cache": false,
	"consumes": false,
} if {
	_open
	a := _agent
	p := _sole_holding
	not p.constraints.maxCallsPerHour
	not p.use.rateLimits
} else := {
	"allowed": true,
	"code": "allowed",
	"reason": sprintf("permission %q allows %q on %q", [p.resource, input.action, input.resource]),
	"agentId": agent_id,
	"ownerId": a.ownerId,
	"permission": {"key": p.key, "source": "own", "resource": p.resource},
	"cache": {"until": a.expiresAt},
	"consumes": false,
} if {
	_open
	a := _agent
	p := _plain[0]
} else := _deny(
	"invalid_token",
	"the bearer token does not belong to any agent",
	{"until": null},
) if {
	not _by_id
	not _agent
} else := _deny("agent_not_found", sprintf("agent %q does not exist", [input.agentId]), {"until": null}) if {
	not _agent
} else := _held_back if {
	_agent.status != "active"
} else := _deny("agent_expired", sprintf("agent %q expired", [agent_id]), {"until": null}) if {
	is_number(_agent.expiresAt)
	_now >= _agent.expiresAt
} else := _ext_deny if {
	_extensions
	_can_allow
	count(_ext_denials) > 0
} else := _allow(_chosen) if {
	count(_granting) > 0
} else := _refuse(_best_failure) if {
	count(_failures) > 0
} else := _deny(
	"no_permission",
	sprintf("no permission of agent %q allows %q on %q", [agent_id, input.action, input.resource]),
	false,
)

# The agent is active and unexpired, and no extension is loaded: the first
# five denials cannot apply, nor can an extension's (data.kavach.ext.deny
# is what _extensions reads, without one more rule).
_open if {
	a := _agent
	a.status == "active"
	not _expired(a)
	not data.kavach.ext.deny
}

# An agent revoked, or suspended: one test on the common path for both.
_held_back := _deny("agent_revoked", sprintf("agent %q has been revoked", [agent_id]), {"until": null}) if {
	_agent.status == "revoked"
} else := _deny(
	"agent_suspended",
	sprintf("agent %q is suspended until an admin resumes it", [agent_id]),
	{"until": null},
) if {
	_agent.status == "suspended"
}

# METADATA
# description: |
#   The ID of the agent the request is about, resolved from input.agentId or
#   the token hash ("" if none): for extensions, which see the same input.
# scope: document
default agent_id := ""

agent_id := input.agentId if {
	is_string(input.agentId)
} else := data.kavach.tokens[input.tokenHash]

# A helper rule, because "not is_string(input.x)" is undefined, not true,
# when input.x is missing.
_by_id if is_string(input.agentId)

default _owner_id := ""

_owner_id := _agent.ownerId

# Agents are looked up by key, never iterated: cost does not grow with their number.
_agent := data.kavach.agents[agent_id]

# The sidecar passes the time so that decisions are reproducible; stock OPA
# callers that omit it get the evaluation time.
_now := input.now if {
	is_number(input.now)
} else := time.now_ns()

_deny(code, reason, cache) := {
	"allowed": false,
	"code": code,
	"reason": reason,
	"agentId": agent_id,
	"ownerId": _owner_id,
	"cache": cache,
	"consumes": false,
}

# Extensions can act on decisions only through data.kavach.ext.deny: where
# it is defined at all (even empty for this input), extensions are loaded.
_extensions if data.kavach.ext.deny

# User extensions (package kavach.ext) may add denials, never allows: they
# are consulted only for a call the core policy would allow. Each denial is
# {"code": string, "reason": string}; the first by code wins. Such a
# denial is never cached, whatever its code.
_ext_denials := sort([[d.code, d.reason] |
	some d in data.kavach.ext.deny
	is_string(d.code)
	is_string(d.reason)
])

_ext_deny := _deny(_ext_denials[0][0], _ext_denials[0][1], false)

_expired(a) if {
	is_number(a.expiresAt)
	_now >= a.expiresAt
}

# Own permissions first, then delegated ones, in stored order. A delegated
# permission carries the links of its chain, root first, ending with the
# delegation that granted it to this agent.
_own := [{"perm": p, "source": "own", "links": []} | some p in _agent.permissions]

_delegated := [{"perm": p, "source": id, "links": array.concat(p.chain, [[id, i]])} |
	some id in _agent.incoming
	d := data.kavach.delegations[id]
	d.toAgent == agent_id
	some i, p in d.permissions
]

_candidates := array.concat(_own, _delegated)

# Every matching permission is considered, not only the first stored. Only
# matching ones are wrapped for the checks that follow: most of an agent's
# permissions fail the cheap action and resource tests. Synced data (it
# carries the action index) has a glob for every pattern, which OPA
# compiles once and caches, and which matches what resources.match does
# for a resource without empty segments; otherwise that rule decides.
_matching_own := [p |
	some i in object.get(a.byAction, input.action, a.anyAction)
	p := a.permissions[i]
	glob.match(p.glob, [":"], input.resource)
] if {
	not _scoped
	a := _agent
	a.byAction
	not regex.match(`^$|^:|::|:$`, input.resource)
} else := [p |
	some i in _own_candidates
	p := _agent.permissions[i]
	glob.match(p.glob, [":"], input.resource)
] if {
	_agent.byAction
	_well_formed
} else := [p |
	some i in _own_candidates
	p := _agent.permissions[i]
	resources.match(p.resource, input.resource)
]

# An MCP access token limits its agent to the permissions of the token's
# scopes: the sidecar passes their keys (input.scopeKeys), and delegated
# permissions, which no scope grants, do not count. Other callers pass none.
_own_candidates := [i |
	some i in _action_candidates
	_agent.permissions[i].key in input.scopeKeys
] if {
	is_array(input.scopeKeys)
} else := object.get(_agent.byAction, input.action, _agent.anyAction) if {
	_agent.byAction
} else := _action_candidates

_scoped if is_array(input.scopeKeys)

# The positions of the own permissions that apply to the action, in stored
# order. The sync indexes them by action (anyAction: those granting "*"),
# so a decision visits one or two permissions, however many the agent has;
# data without the index (written by hand, say) is filtered here.
_action_candidates := object.get(_agent.byAction, input.action, _agent.anyAction) if {
	_agent.byAction
} else := [i |
	some i, p in _agent.permissions
	resources.action_match(p.actions, input.action)
]

_matching := array.concat(
	[{"perm": p, "source": "own", "links": []} | some p in _matching_own],
	[{"perm": p, "source": id, "links": array.concat(p.chain, [[id, i]])} |
		some [id, i] in _delegated_matching
		p := data.kavach.delegations[id].permissions[i]
	],
)

# The delegated permissions that apply to the request, as [delegation ID,
# position], in order: by delegation as the agent lists them, then by
# position. The sync indexes each delegation's permissions by action as it
# does an agent's own (byAction, anyAction); data without the index is
# filtered here.
_delegated_matching := [[id, i] |
	not _scoped
	some id in _agent.incoming
	d := data.kavach.delegations[id]
	d.toAgent == agent_id
	some i in _grant_candidates(d)
	_resource_match(d.permissions[i])
]

_grant_candidates(d) := object.get(d.byAction, input.action, d.anyAction) if {
	d.byAction
} else := [i |
	some i, p in d.permissions
	resources.action_match(p.actions, input.action)
]

# The sync precomputes each pattern as a glob (p.glob), which OPA compiles
# once and caches; for a resource with empty segments, which globs would
# treat differently, the segment-by-segment rule decides.
_resource_match(p) := glob.match(p.glob, [":"], input.resource) if {
	is_string(p.glob)
	_well_formed
} else if {
	resources.match(p.resource, input.resource)
}

# Not empty, and no empty segment anywhere: one test covers all four.
_well_formed if not regex.match(`^$|^:|::|:$`, input.resource)

# An own permission without constraints allows outright: the common case
# skips every further check.
_plain := [p | some p in _matching_own; not p.constraints]

_can_allow if count(_plain) > 0

_can_allow if count(_granting) > 0

_granting := [c | some c in _matching; not _failure(c)]

# Prefer a permission that consumes nothing (no quota, no approval).
_free := [c | some c in _granting; count(_rate_limits(c)) == 0; not _needs_approval(c)]

_chosen := {"perm": _plain[0], "source": "own", "links": []} if {
	count(_plain) > 0
} else := _free[0] if {
	count(_free) > 0
} else := _granting[0]

# The common constrained allow: the one permission that applies is the
# agent's own, and its constraints hold without asking a human. It is then
# the one _chosen picks; its rate limit, if any, is all it consumes, and
# what the allow reports of it is the use the sync made ready.
_sole_holding := p if {
	[p] := _matching_own
	count(_delegated_matching) == 0
	_set_holds(p.constraints, p.key)
}

# Any other allow is evaluated every time.
_allow(c) := {
	"allowed": true,
	"code": "allowed",
	"reason": _allow_reason(c),
	"agentId": agent_id,
	"ownerId": _owner_id,
	"permission": object.union({"key": _key(c), "source": c.source, "resource": c.perm.resource}, _consumes(c)),
	"cache": false,
	"consumes": count(_consumes(c)) > 0,
}

_allow_reason(c) := sprintf("permission %q allows %q on %q%s", [c.perm.resource, input.action, input.resource, _via(c)])

_via(c) := "" if c.source == "own"

_via(c) := sprintf(" (delegated by %s)", [c.source]) if c.source != "own"

_consumes(c) := object.union(
	{"rateLimits": ls | ls := _rate_limits(c); count(ls) > 0},
	{"approvalId": input.approvalId | _needs_approval(c)},
)

# The failure closest to an allow wins: an approval the caller can ask for
# says more than a wrong IP address. Ties go to the first stored permission.
_failures := [[f.rank, i, f] | some i, c in _matching; f := _failure(c)]

_best_failure := sort(_failures)[0][2]

# A constraint's failure is evaluated every time. An approval failure is
# decided after the rate limits, which were checked without the counts
# until the sidecar passes them: it consumes (see decision).
_refuse(f) := object.union(_deny(f.code, f.reason, false), object.get(f, "extra", {}))

_failure(c) := f if {
	f := _chain_failure(c)
} else := f if {
	f := _constraint_failure(c)
}
