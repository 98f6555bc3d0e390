package kavach.authz_test

import data.kavach.authz

# Wednesday 2026-03-04 10:30 UTC, and other instants, in nanoseconds.
_wed_1030 := 1772620200000000000

_wed_0830 := 1772613000000000000

_wed_2330 := 1772667000000000000

_thu_0130 := 1772674200000000000

_sat_1030 := 1772879400000000000

_agent(perms) := {"a": {"ownerId": "u", "status": "active", "permissions": perms}}

_perm(constraints) := {"key": "k1", "resource": "r:*", "actions": ["call"], "constraints": constraints}

_call(perms, extra) := d if {
	d := authz.decision with input as object.union({"agentId": "a", "action": "call", "resource": "r:x", "now": _wed_1030}, extra)
		with data.kavach.agents as _agent(perms)
		with data.kavach.delegations as {}
		with data.kavach.approvals as {}
}

_ccode(perms, extra) := _call(perms, extra).code

test_ip_allowlist if {
	p := [_perm({"ipAllowlist": ["10.0.0.0/8", "2001:db8::/32", "192.168.1.50/32"]})]
	_ccode(p, {"ip": "10.1.2.3"}) == "allowed"
	_ccode(p, {"ip": "2001:db8::7"}) == "allowed"
	_ccode(p, {"ip": "192.168.1.50"}) == "allowed"
	_ccode(p, {"ip": "192.168.1.51"}) == "ip_not_allowed"
	_ccode(p, {"ip": "2001:db9::1"}) == "ip_not_allowed"
	d := _call(p, {})
	d.code == "ip_not_allowed"
	contains(d.reason, "no client IP")
	contains(_call(p, {"ip": "11.0.0.1"}).reason, "11.0.0.1")
}

test_time_window_same_day if {
	p := [_perm({"timeWindow": {"start": "09:00", "end": "17:00"}})]
	_ccode(p, {}) == "allowed"
	_ccode(p, {"now": _wed_0830}) == "outside_time_window"
	_ccode(p, {"now": _wed_2330}) == "outside_time_window"
}

test_time_window_crossing_midnight if {
	p := [_perm({"timeWindow": {"start": "22:00", "end": "02:00"}})]
	_ccode(p, {"now": _wed_2330}) == "allowed"
	_ccode(p, {"now": _thu_0130}) == "allowed"
	_ccode(p, {}) == "outside_time_window"
}

test_time_window_days if {
	p := [_perm({"timeWindow": {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}})]
	_ccode(p, {}) == "allowed"
	_ccode(p, {"now": _sat_1030}) == "outside_time_window"

	# Thursday 01:30 belongs to Wednesday's night window.
	night := [_perm({"timeWindow": {"start": "22:00", "end": "02:00", "days": ["wed"]}})]
	_ccode(night, {"now": _thu_0130}) == "allowed"
	_ccode(night, {"now": _thu_0130 + ((24 * 3600) * 1000000000)}) == "outside_time_window"
}

test_time_window_timezone if {
	# 10:30 UTC is 19:30 in Tokyo.
	p := [_perm({"timeWindow": {"start": "19:00", "end": "20:00", "timezone": "Asia/Tokyo"}})]
	_ccode(p, {}) == "allowed"
	_ccode(p, {"now": _wed_0830}) == "outside_time_window"
}

test_time_window_whole_day if {
	_ccode([_perm({"timeWindow": {"start": "00:00", "end": "00:00"}})], {"now": _wed_2330}) == "allowed"
}

test_argument_patterns if {
	p := [_perm({"allowedArgPatterns": ["^src/.*\\.ts$", "^README\\.md$"]})]
	_ccode(p, {}) == "allowed"
	_ccode(p, {"arguments": {"path": "src/a.ts", "n": 3}}) == "allowed"
	_ccode(p, {"arguments": {"files": ["src/a.ts", "README.md"], "opts": {"base": "src/x/y.ts"}}}) == "allowed"
	d := _call(p, {"arguments": {"files": ["src/a.ts", "/etc/passwd"]}})
	d.code == "argument_not_allowed"
	contains(d.reason, "/etc/passwd")
}

test_rate_limit if {
	p := [_perm({"maxCallsPerHour": 3})]
	d := _call(p, {"calls": {"k1": 2}})
	d.allowed
	d.permission == {"key": "k1", "source": "own", "resource": "r:*", "rateLimits": [{"key": "k1", "max": 3}]}
	r := _call(p, {"calls": {"k1": 3}})
	r.code == "rate_limited"
	contains(r.reason, "3 calls per hour")
	_ccode(p, {"calls": {"other": 9}}) == "allowed"
}

test_unlimited_permission_is_preferred if {
	p := [_perm({"maxCallsPerHour": 3}), {"key": "k2", "resource": "r:x", "actions": ["call"]}]
	d := _call(p, {})
	d.permission.key == "k2"
	not d.permission.rateLimits
}

test_any_satisfied_permission_allows if {
	p := [_perm({"ipAllowlist": ["10.0.0.0/8"]}), object.union(_perm({"timeWindow": {"start": "09:00", "end": "17:00"}}), {"key": "k2"})]
	_ccode(p, {"ip": "8.8.8.8"}) == "allowed"
	_ccode(p, {"ip": "8.8.8.8", "now": _wed_2330}) == "outside_time_window"
}

test_failure_closest_to_allow_is_reported if {
	p := [_perm({"ipAllowlist": ["10.0.0.0/8"]}), object.union(_perm({"requireApproval": true}), {"key": "k2"})]
	_ccode(p, {"ip": "8.8.8.8"}) == "approval_required"
}

test_constraints_checked_in_order if {
	# A call outside the IP range neither asks for approval nor counts against the limit.
	p := [_perm({"ipAllowlist": ["10.0.0.0/8"], "requireApproval": true, "maxCallsPerHour": 1})]
	_ccode(p, {"ip": "8.8.8.8"}) == "ip_not_allowed"
	_ccode(p, {"ip": "10.0.0.1", "calls": {"k1": 1}}) == "rate_limited"
	_ccode(p, {"ip": "10.0.0.1"}) == "approval_required"
}

_approvals := {
	"apr_ok": {"agentId": "a", "action": "call", "resource": "r:x", "status": "approved", "expiresAt": _wed_1030 + 1},
	"apr_pending": {"agentId": "a", "action": "call", "resource": "r:x", "status": "pending", "expiresAt": _wed_1030 + 1},
	"apr_denied": {"agentId": "a", "action": "call", "resource": "r:x", "status": "denied", "expiresAt": _wed_1030 + 1},
	"apr_used": {"agentId": "a", "action": "call", "resource": "r:x", "status": "used", "expiresAt": _wed_1030 + 1},
	"apr_old": {"agentId": "a", "action": "call", "resource": "r:x", "status": "approved", "expiresAt": _wed_1030},
	"apr_other": {"agentId": "a", "action": "call", "resource": "r:y", "status": "approved", "expiresAt": _wed_1030 + 1},
	"apr_action": {"agentId": "a", "action": "write", "resource": "r:x", "status": "approved", "expiresAt": _wed_1030 + 1},
	"apr_theirs": {"agentId": "b", "action": "call", "resource": "r:x", "status": "approved", "expiresAt": _wed_1030 + 1},
	"apr_theirs_pending": {"agentId": "b", "action": "call", "resource": "r:x", "status": "pending", "expiresAt": _wed_1030 + 1},
}

_with_approval(id) := d if {
	d := authz.decision with input as {"agentId": "a", "action": "call", "resource": "r:x", "now": _wed_1030, "approvalId": id}
		with data.kavach.agents as _agent([_perm({"requireApproval": true})])
		with data.kavach.delegations as {}
		with data.kavach.approvals as _approvals
}

test_approval_required if {
	d := _call([_perm({"requireApproval": true})], {})
	d.code == "approval_required"
	d.approvalRequired
	not d.allowed
}

test_approval_outcomes if {
	d := _with_approval("apr_ok")
	d.allowed
	d.permission.approvalId == "apr_ok"
	_with_approval("apr_pending").code == "approval_pending"
	_with_approval("apr_denied").code == "approval_denied"
	_with_approval("apr_used").code == "approval_used"
	_with_approval("apr_old").code == "approval_expired"
	_with_approval("apr_missing").code == "approval_not_found"
}

# An approval given for another call, or another agent's, is a denial of
# its own: approval_mismatch, whatever the approval's state; another
# agent's approval is not described.
test_approval_mismatch if {
	other := _with_approval("apr_other")
	other.code == "approval_mismatch"
	other.reason == `approval "apr_other" was given for "call" on "r:y", not for this call`
	_with_approval("apr_action").code == "approval_mismatch"
	theirs := _with_approval("apr_theirs")
	theirs.code == "approval_mismatch"
	theirs.reason == `approval "apr_theirs" belongs to another agent`
	not theirs.allowed
	_with_approval("apr_theirs_pending").code == "approval_mismatch"
}

# --- Trust: minTrustLevel and requireApproval with a level, against the
# calling agent's level as the data holds it.

_trusted_agent(level, score, perms) := {"a": {"ownerId": "u", "status": "active", "permissions": perms, "trust": {"level": level, "score": score}}}

_tcall(level, score, perms, extra) := d if {
	d := authz.decision with input as object.union({"agentId": "a", "action": "call", "resource": "r:x", "now": _wed_1030}, extra)
		with data.kavach.agents as _trusted_agent(level, score, perms)
		with data.kavach.delegations as {}
		with data.kavach.approvals as _approvals
}

_texplain(level, score, perms) := e if {
	e := authz.explanation with input as {"agentId": "a", "action": "call", "resource": "r:x", "now": _wed_1030}
		with data.kavach.agents as _trusted_agent(level, score, perms)
		with data.kavach.delegations as {}
		with data.kavach.approvals as _approvals
}

test_min_trust_level_denies_below_and_allows_at_or_above if {
	p := [_perm({"minTrustLevel": "standard"})]
	d := _tcall("limited", 52, p, {})
	not d.allowed
	d.code == "trust_insufficient"
	d.reason == `permission "r:*": agent trust level limited (score 52) is below the required standard`
	d.cache == false
	d.consumes == false
	_tcall("untrusted", 10, p, {}).code == "trust_insufficient"
	every level in ["standard", "trusted", "elevated"] {
		a := _tcall(level, 90, p, {})
		a.allowed
		a.reason == `permission "r:*" allows "call" on "r:x"`
		a.cache == false
	}
}

# The lowest level is met by every agent that has a level.
test_min_trust_level_untrusted_is_always_met if _tcall("untrusted", 0, [_perm({"minTrustLevel": "untrusted"})], {}).allowed

# Data without a trust level (written by hand), or with a name the policy
# does not know, meets no level: trust constraints deny, or ask a human.
test_unknown_trust_meets_no_level if {
	p := [_perm({"minTrustLevel": "untrusted"})]
	d := _call(p, {})
	d.code == "trust_insufficient"
	d.reason == `permission "r:*": agent trust level unknown is below the required untrusted`
	_tcall("sovereign", 99, p, {}).code == "trust_insufficient"
	_tcall("elevated", 99, [_perm({"minTrustLevel": "sovereign"})], {}).code == "trust_insufficient"
	_call([_perm({"requireApproval": "limited"})], {}).code == "approval_required"
	_tcall("elevated", 99, [_perm({"requireApproval": "sovereign"})], {}).code == "approval_required"
}

# A call refused for trust neither asks a human nor uses quota; trust is
# checked before every other constraint.
test_trust_is_checked_first if {
	p := [_perm({"minTrustLevel": "trusted", "ipAllowlist": ["10.0.0.0/8"], "requireApproval": true, "maxCallsPerHour": 1})]
	every extra in [{}, {"ip": "8.8.8.8"}, {"ip": "10.0.0.1", "calls": {"k1": 1}}, {"ip": "10.0.0.1"}] {
		d := _tcall("standard", 70, p, extra)
		d.code == "trust_insufficient"
		not d.approvalRequired
		d.consumes == false
	}
	_tcall("trusted", 85, p, {"ip": "8.8.8.8"}).code == "ip_not_allowed"
	_tcall("trusted", 85, p, {"ip": "10.0.0.1", "calls": {"k1": 1}}).code == "rate_limited"
	_tcall("trusted", 85, p, {"ip": "10.0.0.1"}).code == "approval_required"
}

# Among several matching permissions, a failure the request could fix (an
# IP address) is closer to an allow than trust the agent has yet to earn.
test_trust_failure_ranks_below_request_failures if {
	p := [_perm({"minTrustLevel": "elevated"}), object.union(_perm({"ipAllowlist": ["10.0.0.0/8"]}), {"key": "k2"})]
	_tcall("limited", 50, p, {"ip": "8.8.8.8"}).code == "ip_not_allowed"
	_tcall("limited", 50, p, {"ip": "10.0.0.1"}).allowed
	_tcall("limited", 50, [_perm({"minTrustLevel": "elevated"})], {"ip": "8.8.8.8"}).code == "trust_insufficient"
}

# requireApproval with a level asks a human only while the agent's level
# ranks below it: agents earn autonomy. true asks always, false never.
test_require_approval_below_a_level if {
	p := [_perm({"requireApproval": "trusted"})]
	every level in ["untrusted", "limited", "standard"] {
		d := _tcall(level, 70, p, {})
		d.code == "approval_required"
		d.approvalRequired
		d.consumes == true
		d.reason == sprintf(
			`permission "r:*" requires human approval while the agent's trust level is below trusted (agent trust level %s (score 70)); an approval request was created`,
			[level],
		)
	}
	every level in ["trusted", "elevated"] {
		d := _tcall(level, 96, p, {})
		d.allowed
		d.consumes == false
		not d.permission.approvalId
	}

	# Below the level, an approval works as it does under true, and is used.
	ok := _tcall("standard", 70, p, {"approvalId": "apr_ok"})
	ok.allowed
	ok.permission.approvalId == "apr_ok"
	ok.consumes == true
	_tcall("standard", 70, p, {"approvalId": "apr_pending"}).code == "approval_pending"

	# At the level, an approval it is sent is ignored, not used up.
	skip := _tcall("trusted", 85, p, {"approvalId": "apr_ok"})
	skip.allowed
	not skip.permission.approvalId
	skip.consumes == false

	# true and false keep their meaning, whatever the level.
	_tcall("elevated", 100, [_perm({"requireApproval": true})], {}).code == "approval_required"
	_tcall("untrusted", 0, [_perm({"requireApproval": false})], {}).allowed
}

# An approval true is asked for whatever the level, and the reasons say
# nothing of trust then.
test_require_approval_true_wins_over_a_met_level if {
	p := [_perm({"requireApproval": true, "minTrustLevel": "trusted"})]
	d := _tcall("elevated", 99, p, {})
	d.code == "approval_required"
	d.reason == `permission "r:*" requires human approval; an approval request was created`
	e := _texplain("elevated", 99, p)
	e.considered[0].result == "approval_required"
	e.considered[0].reason == d.reason
	a := _tcall("elevated", 99, p, {"approvalId": "apr_ok"})
	a.allowed
	a.permission.approvalId == "apr_ok"
}

# A permission that consumes nothing is preferred: one whose approval the
# agent's level waives is such a permission.
test_waived_approval_is_preferred_to_a_rate_limit if {
	p := [_perm({"maxCallsPerHour": 5}), object.union(_perm({"requireApproval": "standard"}), {"key": "k2"})]
	d := _tcall("standard", 65, p, {})
	d.permission.key == "k2"
	d.consumes == false
	_tcall("limited", 45, p, {}).permission.key == "k1"
}

test_explanation_names_trust_when_it_decides if {
	low := _texplain("limited", 52, [_perm({"minTrustLevel": "standard"})])
	low.considered[0].result == "trust_insufficient"
	low.considered[0].reason == `permission "r:*": agent trust level limited (score 52) is below the required standard`

	high := _texplain("trusted", 85, [_perm({"minTrustLevel": "standard", "requireApproval": "trusted"})])
	high.considered[0].result == "allowed"
	high.considered[0].reason == "the permission matches and all its constraints hold; agent trust level trusted (score 85) meets the required standard and is high enough to skip approval (required below trusted)"

	ask := _texplain("standard", 70, [_perm({"requireApproval": "trusted"})])
	ask.considered[0].result == "approval_required"
	contains(ask.considered[0].reason, "below trusted (agent trust level standard (score 70))")

	# Trust that decides nothing is not mentioned.
	plain := _texplain("trusted", 85, [_perm({"maxCallsPerHour": 5})])
	plain.considered[0].reason == "the permission matches and all its constraints hold"
}
