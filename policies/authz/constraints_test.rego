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
