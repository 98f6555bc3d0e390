package kavach.authz

import data.kavach.resources

# METADATA
# description: |
#   Why the decision came out as it did: every permission of the agent
#   (own and delegated) with its delegation path and the outcome of checking
#   it against this request. Evaluated only when asked (?explain=true).
# entrypoint: true
explanation := {
	"considered": [_consider(c) | some c in _candidates],
	"extensionDenials": [{"code": d[0], "reason": d[1]} | some d in _ext_denials; _can_allow],
}

_consider(c) := object.union(
	{
		"resource": c.perm.resource,
		"actions": c.perm.actions,
		"source": c.source,
		"delegationPath": [_link_view(id) | some [id, _] in c.links],
	},
	_verdict(c),
)

_link_view(id) := {"delegationId": id, "fromAgent": d.fromAgent, "toAgent": d.toAgent} if {
	d := data.kavach.delegations[id]
} else := {"delegationId": id}

_verdict(c) := {"result": "out_of_scope", "reason": "the access token's scopes do not grant this permission"} if {
	_scoped
	not _in_scope(c)
} else := {
	"result": "action_mismatch",
	"reason": sprintf("%q is not among the permission's actions", [input.action]),
} if {
	not resources.action_match(c.perm.actions, input.action)
} else := {
	"result": "resource_mismatch",
	"reason": sprintf("%q does not match %q", [input.resource, c.perm.resource]),
} if {
	not resources.match(c.perm.resource, input.resource)
} else := {"result": f.code, "reason": f.reason} if {
	f := _failure(c)
} else := {
	"result": "allowed",
	"reason": sprintf("the permission matches and all its constraints hold%s", [_trust_note(c)]),
}

_in_scope(c) if {
	c.source == "own"
	c.perm.key in input.scopeKeys
}
