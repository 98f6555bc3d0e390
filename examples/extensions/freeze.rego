# METADATA
# title: Example Kavach extension
# description: |
#   Extensions add deny rules, with their own codes and reasons, to calls the
#   core policy would allow. They live in package kavach.ext and read the same
#   input and data as the core policy, whose schemas (schemas/ in the Kavach
#   repository) type-check them: opa check --schema schemas.
# schemas:
#   - input: schema.input
#   - data.kavach.agents: schema.data.agents
package kavach.ext

# METADATA
# description: No destructive database calls during the release freeze.
deny contains {"code": "change_freeze", "reason": sprintf("%q on %q is frozen until %s", [input.action, input.resource, _freeze_end])} if {
	input.action in {"drop", "truncate", "delete"}
	startswith(input.resource, "db:prod")
	_now < time.parse_rfc3339_ns(_freeze_end)
}

# METADATA
# description: Service agents may not act outside their owner's team namespace.
deny contains {"code": "team_mismatch", "reason": "service agents act only on their team's resources"} if {
	agent := data.kavach.agents[data.kavach.authz.agent_id]
	agent.ownerId == "team-payments"
	not startswith(input.resource, "payments:")
}

_freeze_end := "2026-12-31T00:00:00Z"

_now := input.now if _has_now

_now := time.now_ns() if not _has_now

# A helper: "not is_number(input.now)" is undefined, not true, when input.now
# is missing.
_has_now if is_number(input.now)
