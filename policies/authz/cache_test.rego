package kavach.authz_test

import data.kavach.authz

# What the sidecar reads from a decision besides the answer: whether it may
# be cached and until when (cache), and whether it must be decided again
# with the call counts under the agent's lock (consumes).

_cagents := {
	"forever": {
		"ownerId": "u", "status": "active", "expiresAt": null,
		"permissions": [
			{"key": "k1", "resource": "docs:*", "actions": ["read"]},
			{"key": "k2", "resource": "ops:*", "actions": ["run"], "constraints": {"ipAllowlist": ["10.0.0.0/8"]}},
			{"key": "k3", "resource": "api:*", "actions": ["call"], "constraints": {"maxCallsPerHour": 5}},
			{"key": "k4", "resource": "deploy:*", "actions": ["ship"], "constraints": {"requireApproval": true}},
		],
	},
	"mortal": {
		"ownerId": "u", "status": "active", "expiresAt": 3000,
		"permissions": [{"key": "k1", "resource": "docs:*", "actions": ["read"]}],
	},
	"revoked": {"ownerId": "u", "status": "revoked", "expiresAt": null, "permissions": []},
	"suspended": {"ownerId": "u", "status": "suspended", "expiresAt": null, "permissions": []},
	"earning": {
		"ownerId": "u", "status": "active", "expiresAt": null, "trust": {"level": "standard", "score": 70},
		"permissions": [
			{"key": "k5", "resource": "deploy:*", "actions": ["ship"], "constraints": {"requireApproval": "trusted"}},
			{"key": "k6", "resource": "prod:*", "actions": ["drop"], "constraints": {"minTrustLevel": "standard"}},
			{"key": "k7", "resource": "vault:*", "actions": ["open"], "constraints": {"minTrustLevel": "elevated"}},
		],
	},
	"expired": {"ownerId": "u", "status": "active", "expiresAt": 1000, "permissions": []},
	"sub": {"ownerId": "u", "status": "active", "expiresAt": null, "permissions": [], "incoming": ["d1"]},
}

_cdelegations := {"d1": {
	"id": "d1", "fromAgent": "forever", "toAgent": "sub", "status": "active", "expiresAt": 9000, "depth": 1, "maxDepth": 2,
	"permissions": [{"key": "k1", "resource": "docs:*", "actions": ["read"], "chain": [], "inherited": [], "coveredBy": "k1"}],
}}

_capprovals := {
	"apr_ok": {"agentId": "forever", "action": "ship", "resource": "deploy:x", "status": "approved", "expiresAt": 9000},
	"apr_pending": {"agentId": "forever", "action": "ship", "resource": "deploy:x", "status": "pending", "expiresAt": 9000},
}

_cdecide(inp, ext) := d if {
	d := authz.decision with input as object.union({"now": 2000}, inp)
		with data.kavach.agents as _cagents
		with data.kavach.delegations as _cdelegations
		with data.kavach.approvals as _capprovals
		with data.kavach.tokens as {}
		with data.kavach.ext.deny as ext
}

# No extension loaded: data.kavach.ext.deny is not defined at all (the
# example extensions, which opa test may load beside, are replaced).
_cplain(inp) := d if {
	d := authz.decision with input as object.union({"now": 2000}, inp)
		with data.kavach.agents as _cagents
		with data.kavach.delegations as _cdelegations
		with data.kavach.approvals as _capprovals
		with data.kavach.tokens as {}
		with data.kavach.ext as {}
}

test_denials_about_the_agent_hold_until_the_data_changes if {
	every inp in [
		{"tokenHash": "nope", "action": "read", "resource": "docs:x"},
		{"agentId": "nobody", "action": "read", "resource": "docs:x"},
		{"agentId": "revoked", "action": "read", "resource": "docs:x"},
		{"agentId": "suspended", "action": "read", "resource": "docs:x"},
		{"agentId": "expired", "action": "read", "resource": "docs:x"},
	] {
		d := _cplain(inp)
		d.cache == {"until": null}
		d.consumes == false

		# Decided before any extension is consulted.
		_cdecide(inp, {{"code": "x", "reason": "y"}}).cache == {"until": null}
	}
}

test_plain_own_allow_holds_until_the_agent_expires if {
	d := _cplain({"agentId": "mortal", "action": "read", "resource": "docs:x"})
	d.allowed
	d.cache == {"until": 3000}
	d.consumes == false
	_cplain({"agentId": "forever", "action": "read", "resource": "docs:x"}).cache == {"until": null}
}

test_no_permission_holds_until_the_agent_expires if {
	d := _cplain({"agentId": "mortal", "action": "write", "resource": "docs:x"})
	d.code == "no_permission"
	d.cache == {"until": 3000}
	d.consumes == false
	_cplain({"agentId": "forever", "action": "write", "resource": "docs:x"}).cache == {"until": null}
	_cplain({"agentId": "sub", "action": "write", "resource": "docs:x"}).cache == {"until": null}
}

# Extensions may depend on anything: loaded, even with no denial for this
# call, they make allows and no_permission uncacheable.
test_extensions_turn_the_cache_off if {
	_cdecide({"agentId": "mortal", "action": "read", "resource": "docs:x"}, set()).cache == false
	_cdecide({"agentId": "mortal", "action": "write", "resource": "docs:x"}, set()).cache == false
}

# An extension's denial is never cached, even under a code the core policy
# caches when it decides it itself.
test_extension_denials_are_never_cached if {
	d := _cdecide({"agentId": "mortal", "action": "read", "resource": "docs:x"}, {{"code": "agent_revoked", "reason": "not today"}})
	d.code == "agent_revoked"
	d.cache == false
	d.consumes == false
}

test_constrained_and_delegated_allows_are_not_cached if {
	ip := _cplain({"agentId": "forever", "action": "run", "resource": "ops:x", "ip": "10.1.2.3"})
	ip.allowed
	ip.cache == false
	ip.consumes == false
	sub := _cplain({"agentId": "sub", "action": "read", "resource": "docs:x"})
	sub.allowed
	sub.cache == false
	sub.consumes == false
}

test_allows_that_use_quota_or_an_approval_consume if {
	rate := _cplain({"agentId": "forever", "action": "call", "resource": "api:x"})
	rate.allowed
	rate.permission.rateLimits == [{"key": "k3", "max": 5}]
	rate.consumes == true
	rate.cache == false
	approved := _cplain({"agentId": "forever", "action": "ship", "resource": "deploy:x", "approvalId": "apr_ok"})
	approved.allowed
	approved.consumes == true
	approved.cache == false
}

test_approval_failures_consume if {
	every inp in [
		{"agentId": "forever", "action": "ship", "resource": "deploy:x"},
		{"agentId": "forever", "action": "ship", "resource": "deploy:x", "approvalId": "apr_pending"},
		{"agentId": "forever", "action": "ship", "resource": "deploy:x", "approvalId": "apr_missing"},
	] {
		d := _cplain(inp)
		startswith(d.code, "approval_")
		d.consumes == true
		d.cache == false
	}
}

test_other_failures_neither_consume_nor_cache if {
	every inp in [
		{"agentId": "forever", "action": "run", "resource": "ops:x", "ip": "192.0.2.1"},
		{"agentId": "forever", "action": "call", "resource": "api:x", "calls": {"k3": 5}},
	] {
		d := _cplain(inp)
		not d.allowed
		d.consumes == false
		d.cache == false
	}
}

# A decision trust decides is evaluated every time: a level change is a
# data write, but an uncached decision does not even depend on that.
# Approval a level asks for consumes, as under true; waived, nothing does.
test_decisions_trust_decides_are_not_cached if {
	every c in [
		[{"agentId": "earning", "action": "ship", "resource": "deploy:x"}, "approval_required", true],
		[{"agentId": "earning", "action": "drop", "resource": "prod:x"}, "allowed", false],
		[{"agentId": "earning", "action": "open", "resource": "vault:x"}, "trust_insufficient", false],
	] {
		d := _cplain(c[0])
		d.code == c[1]
		d.consumes == c[2]
		d.cache == false
	}
	waived := authz.decision with input as {"agentId": "earning", "action": "ship", "resource": "deploy:x", "now": 2000}
		with data.kavach.agents as {"earning": object.union(_cagents.earning, {"trust": {"level": "trusted", "score": 81}})}
		with data.kavach.ext as {}
	waived.allowed
	waived.consumes == false
	waived.cache == false
}
