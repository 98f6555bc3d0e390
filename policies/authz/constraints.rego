package kavach.authz

# Failures rank by how close they are to an allow (lower is closer): a
# permission's checks run from the farthest (its delegation chain, then its
# trust) to the closest (rate limits, then approval).
_fail(rank, code, reason) := {"rank": rank, "code": code, "reason": reason}

# The constraint sets that apply to a permission, each with the key its
# rate limit counts under: the permission's own; those inherited, as they
# were at delegation time, from the delegated permissions up its chain; and,
# as they are now, those of the root delegator's own permission the chain
# hangs from. A child can add constraints, never drop them, and a delegator
# tightening its own permission tightens every chain below it at once.
_constraint_sets(c) := array.flatten([
	[{"key": _key(c), "constraints": cs} | cs := c.perm.constraints; count(cs) > 0],
	object.get(c.perm, "inherited", []),
	[{"key": r.key, "constraints": r.constraints} |
		some r in _root_permissions(c)
		count(object.get(r, "constraints", {})) > 0
	],
])

# Checked in this order; the first failure is the permission's failure.
# Trust first: the agent has not earned the permission yet, whatever the
# request. Rate limits and approvals come last, so a call denied for another
# reason neither asks a human nor consumes quota.
_constraint_failure(c) := _fail(6, "trust_insufficient", sprintf(
	"permission %q: %s is below the required %s",
	[c.perm.resource, _trust_desc, _unmet_trust(c)[0]],
)) if {
	some s in _constraint_sets(c)
	level := s.constraints.minTrustLevel
	not _meets(level)
} else := _fail(5, "ip_not_allowed", _ip_reason(c)) if {
	some s in _constraint_sets(c)
	not _ip_allowed(s.constraints)
} else := _fail(4, "outside_time_window", sprintf(
	"permission %q allows calls only within its time window",
	[c.perm.resource],
)) if {
	some s in _constraint_sets(c)
	not _in_window(s.constraints)
} else := _fail(3, "argument_not_allowed", sprintf(
	"permission %q: argument value %q matches none of the allowed patterns",
	[c.perm.resource, _bad_arguments(c)[0]],
)) if {
	count(_bad_arguments(c)) > 0
} else := _fail(2, "rate_limited", sprintf(
	"permission %q allows %d calls per hour on %q; %d made in the last hour",
	[c.perm.resource, _exceeded(c)[0].max, input.resource, _calls(_exceeded(c)[0].key)],
)) if {
	count(_exceeded(c)) > 0
} else := _approval_failure(c) if {
	_needs_approval(c)
}

# --- minTrustLevel: the calling agent's own level must rank at least as high.
# For a delegated permission that is the delegate's level (the agent making
# the call), never the delegator's.

_unmet_trust(c) := [s.constraints.minTrustLevel |
	some s in _constraint_sets(c)
	not _meets(s.constraints.minTrustLevel)
]

# Trust levels, lowest first; a level's rank is its position.
_trust_ranks := {"untrusted": 0, "limited": 1, "standard": 2, "trusted": 3, "elevated": 4}

# The agent's rank, from the level the data holds (the sync writes it for
# every agent). An agent without one, or with a name this policy does not
# know, meets no level: a trust constraint then denies, or asks a human.
default _trust_rank := -1

_trust_rank := _trust_ranks[_agent.trust.level]

# A level that is no level is never met.
_meets(level) if _trust_rank >= _trust_ranks[level]

# What reasons say of the agent's trust.
default _trust_desc := "agent trust level unknown"

_trust_desc := sprintf("agent trust level %s (score %d)", [_agent.trust.level, _agent.trust.score])

# --- ipAllowlist: entries are CIDR prefixes (exact addresses are synced as /32 or /128).

_ip_allowed(cs) if not cs.ipAllowlist

_ip_allowed(cs) if {
	some prefix in cs.ipAllowlist
	net.cidr_contains(prefix, input.ip)
}

_ip_reason(_) := "the request has no client IP (context.ip) and the permission has an IP allowlist" if not input.ip

_ip_reason(c) := sprintf(
	"client IP %s is not in the allowlist of permission %q",
	[input.ip, c.perm.resource],
) if {
	input.ip
}

# --- timeWindow: {start, end: "HH:MM", timezone (IANA, default UTC), days: ["mon", …]}.

_in_window(cs) if not cs.timeWindow

_in_window(cs) if {
	w := cs.timeWindow
	tz := object.get(w, "timezone", "UTC")
	[h, m, _] := time.clock([_now, tz])
	now_min := (h * 60) + m
	start := _minutes(w.start)
	end := _minutes(w.end)
	_in_range(now_min, start, end)
	_day_allowed(w, now_min, start, end, tz)
}

_minutes(hhmm) := (to_number(substring(hhmm, 0, 2)) * 60) + to_number(substring(hhmm, 3, 2))

# start == end means the whole day; start > end crosses midnight.
_in_range(_, start, end) if start == end

_in_range(now_min, start, end) if {
	start < end
	now_min >= start
	now_min < end
}

_in_range(now_min, start, end) if {
	start > end
	now_min >= start
}

_in_range(now_min, start, end) if {
	start > end
	now_min < end
}

_day_allowed(w, _, _, _, _) if not w.days

# After midnight in a window that crossed it, the window belongs to the day it opened.
_day_allowed(w, now_min, start, end, tz) if {
	lower(substring(time.weekday([_opened(now_min, start, end), tz]), 0, 3)) in w.days
}

_opened(now_min, start, end) := _now - _day_ns if {
	start > end
	now_min < end
} else := _now

_day_ns := ((24 * 60) * 60) * 1000000000

# --- allowedArgPatterns: every string value in the arguments, at any depth, must match one.

_argument_strings contains v if {
	walk(input.arguments, [_, v])
	is_string(v)
}

_bad_arguments(c) := sort([v |
	some v in _argument_strings
	some s in _constraint_sets(c)
	s.constraints.allowedArgPatterns
	not _some_match(s.constraints.allowedArgPatterns, v)
])

_some_match(patterns, v) if {
	some p in patterns
	regex.match(p, v)
}

# --- maxCallsPerHour: every set's limit counts under its own key, so a limit
# inherited through several delegations is one quota, not one per delegation.

_rate_limits(c) := [{"key": s.key, "max": s.constraints.maxCallsPerHour} |
	some s in _constraint_sets(c)
	s.constraints.maxCallsPerHour
]

_exceeded(c) := [l |
	some l in _rate_limits(c)
	_calls(l.key) >= l.max
]

_calls(key) := object.get(object.get(input, "calls", {}), key, 0)

# --- requireApproval: an approved, unexpired, unused request for this agent,
# action and resource, passed as input.approvalId. true asks every time; a
# level name asks only while the calling agent's level ranks below it, so an
# agent earns autonomy as its trust grows.

_needs_approval(c) if {
	some s in _constraint_sets(c)
	_approval_needed(s.constraints.requireApproval)
}

_approval_needed(true) := true

_approval_needed(level) if {
	is_string(level)
	not _meets(level)
}

# The levels at which this permission's approval is waived because the
# agent's level reaches them (empty when none is): reasons say so.
_approval_waived(c) := [s.constraints.requireApproval |
	some s in _constraint_sets(c)
	is_string(s.constraints.requireApproval)
	_meets(s.constraints.requireApproval)
]

# The human to ask: the owner of the agent whose own permission the call
# exercises (for a delegated permission, the first delegator's owner).
_approval_owner(c) := _owner_id if c.source == "own"

_approval_owner(c) := data.kavach.agents[_root_delegator(c)].ownerId if c.source != "own"

_root_delegator(c) := data.kavach.delegations[c.links[0][0]].fromAgent

_approval := data.kavach.approvals[input.approvalId]

_approval_failure(c) := object.union(
	_fail(1, "approval_required", sprintf(
		"permission %q requires human approval%s; an approval request was created",
		[c.perm.resource, _approval_why(c)],
	)),
	{"extra": {"approvalRequired": true, "approvalOwner": _approval_owner(c), "consumes": true}},
) if {
	not input.approvalId
} else := _approval_fail("approval_not_found", sprintf("approval %q does not exist", [input.approvalId])) if {
	not _approval
} else := _approval_fail("approval_mismatch", sprintf("approval %q belongs to another agent", [input.approvalId])) if {
	# Someone else's approval says nothing of what it was for.
	_approval.agentId != agent_id
} else := _approval_fail("approval_mismatch", sprintf(
	"approval %q was given for %q on %q, not for this call",
	[input.approvalId, _approval.action, _approval.resource],
)) if {
	not _approval_matches
} else := _approval_fail("approval_expired", sprintf("approval %q has expired", [input.approvalId])) if {
	_now >= _approval.expiresAt
} else := _approval_fail("approval_pending", sprintf("approval %q is still pending", [input.approvalId])) if {
	_approval.status == "pending"
} else := _approval_fail("approval_denied", sprintf("approval %q was denied", [input.approvalId])) if {
	_approval.status == "denied"
} else := _approval_fail("approval_used", sprintf("approval %q has already been used", [input.approvalId])) if {
	_approval.status != "approved"
}

# Why approval is needed, when trust decides it: "" when the permission asks
# every time.
_approval_why(c) := "" if {
	some s in _constraint_sets(c)
	s.constraints.requireApproval == true
} else := sprintf(" while the agent's trust level is below %s (%s)", [_approval_levels(c)[0], _trust_desc])

_approval_levels(c) := [s.constraints.requireApproval |
	some s in _constraint_sets(c)
	is_string(s.constraints.requireApproval)
	not _meets(s.constraints.requireApproval)
]

# What trust decided in favour of a permission that holds, for explanations:
# the minimum levels the agent meets, the approvals its level waives. ""
# when trust decided nothing. (An allow's reason leaves it out: it would cost
# every constrained allow a pass over its constraint sets.)
_trust_note(c) := "" if {
	count(_trust_notes(c)) == 0
} else := sprintf("; %s %s", [_trust_desc, concat(" and ", _trust_notes(c))])

_trust_notes(c) := array.concat(
	[sprintf("meets the required %s", [l]) |
		some s in _constraint_sets(c)
		l := s.constraints.minTrustLevel
	],
	[sprintf("is high enough to skip approval (required below %s)", [l]) |
		not _needs_approval(c)
		some l in _approval_waived(c)
	],
)

# Approval failures come after the rate limits, which a first evaluation
# checks without the call counts: a decision that ends on one consumes (see
# decision), so the sidecar decides it again with the counts.
_approval_fail(code, reason) := object.union(_fail(1, code, reason), {"extra": {"consumes": true}})

_approval_matches if {
	_approval.action == input.action
	_approval.resource == input.resource
}

_key(c) := object.get(c.perm, "key", "")

# A constraint set allows the call without asking a human: each of its
# constraints holds, checked by kind (the first argument picks the one
# definition that applies). For the single own permission of
# _sole_holding, whose only set is its own; key is what its rate limit
# counts under. A kind this policy does not know never holds here.
_set_holds(cs, key) if {
	every kind, value in cs {
		_holds(kind, value, key)
	}
}

_holds("minTrustLevel", level, _) if _meets(level)

_holds("ipAllowlist", prefixes, _) if {
	some prefix in prefixes
	net.cidr_contains(prefix, input.ip)
}

_holds("timeWindow", w, _) if _in_window({"timeWindow": w})

_holds("allowedArgPatterns", patterns, _) if {
	every v in _argument_strings {
		_some_match(patterns, v)
	}
}

_holds("maxCallsPerHour", max_calls, key) if _calls(key) < max_calls

_holds("requireApproval", false, _)

_holds("requireApproval", level, _) if {
	is_string(level)
	_meets(level)
}
