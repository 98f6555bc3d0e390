package kavach.ext_test

import data.kavach.ext

# 2026-11-23T00:00:00Z, and times 10 and 40 days after it.
_now := 1795392000000000000

_in_10_days := "2026-12-03T00:00:00.000Z"

_in_40_days := "2027-01-02T00:00:00.000Z"

_agent := {
	"id": "",
	"ownerId": "team-payments",
	"name": "ledger reader",
	"type": "autonomous",
	"status": "active",
	"permissions": [{"resource": "mcp:ledger:entries", "actions": ["read"]}],
	"metadata": {},
	"expiresAt": _in_10_days,
	"createdAt": "2026-11-23T00:00:00.000Z",
	"updatedAt": "2026-11-23T00:00:00.000Z",
}

_agent_input(changes) := {
	"operation": "create",
	"agent": object.union(_agent, changes),
	"actor": {"type": "key", "id": "key_1", "name": "ci"},
	"now": _now,
}

_perms(resources) := [{"resource": r, "actions": ["read"]} | some r in resources]

test_a_fine_agent_passes if {
	count(ext.deny_agent) == 0 with input as _agent_input({})
	count(ext.deny_agent) == 0 with input as _agent_input({"permissions": _perms(["mcp:github:repos", "db:prod:users"])})
}

test_wildcard_resources_are_refused if {
	ext.deny_agent == {`permissions[0]: resource "*" has a wildcard segment; name the resources`} with input as _agent_input({"permissions": _perms(["*"])})
	ext.deny_agent == {
		`permissions[1]: resource "mcp:github:*" has a wildcard segment; name the resources`,
		`permissions[2]: resource "admin:*:delete" has a wildcard segment; name the resources`,
	} with input as _agent_input({"permissions": _perms(["mcp:github:repos", "mcp:github:*", "admin:*:delete"])})
}

test_wildcard_resources_are_refused_on_update if {
	inp := object.union(_agent_input({"id": "agt_1", "permissions": _perms(["*"])}), {"operation": "update"})
	count(ext.deny_agent) == 1 with input as inp
}

test_agents_expire_within_30_days if {
	ext.deny_agent == {"expiresAt 2027-01-02T00:00:00.000Z is more than 30 days away"} with input as _agent_input({"expiresAt": _in_40_days})
	ext.deny_agent == {"expiresAt is required: agents must expire within 30 days"} with input as _agent_input({"expiresAt": null})
}

test_some_owners_have_no_service_agents if {
	ext.deny_agent == {`owner "team-contractors" may not have service agents`} with input as _agent_input({"type": "service", "ownerId": "team-contractors"})
	count(ext.deny_agent) == 0 with input as _agent_input({"type": "service"})
	count(ext.deny_agent) == 0 with input as _agent_input({"ownerId": "team-contractors"})
}

test_every_broken_rule_is_reported if {
	count(ext.deny_agent) == 3 with input as _agent_input({"type": "service", "ownerId": "team-interns", "permissions": _perms(["*"]), "expiresAt": null})
}

_summary(id, owner, type) := {"id": id, "ownerId": owner, "name": id, "type": type, "status": "active", "metadata": {}, "expiresAt": null}

_delegation_input(changes, to) := {
	"delegation": object.union(
		{
			"fromAgent": "agt_a", "toAgent": to.id, "permissions": _perms(["mcp:ledger:entries"]),
			"expiresAt": _in_10_days, "maxDepth": 1, "depth": 1,
		},
		changes,
	),
	"from": _summary("agt_a", "team-payments", "autonomous"),
	"to": to,
	"actor": {"type": "admin_env"},
	"now": _now,
}

_peer := _summary("agt_b", "team-payments", "delegated")

test_a_fine_delegation_passes if {
	count(ext.deny_delegation) == 0 with input as _delegation_input({}, _peer)
	count(ext.deny_delegation) == 0 with input as _delegation_input({}, _summary("agt_s", "team-payments", "service"))
}

test_delegated_wildcards_are_refused if {
	ext.deny_delegation == {`permissions[0]: resource "mcp:*" has a wildcard segment; name the resources`} with input as _delegation_input({"permissions": _perms(["mcp:*"])}, _peer)
}

test_delegations_end_within_30_days if {
	ext.deny_delegation == {"expiresAt 2027-01-02T00:00:00.000Z is more than 30 days away"} with input as _delegation_input({"expiresAt": _in_40_days}, _peer)
}

test_no_delegation_to_another_owners_service_agent if {
	ext.deny_delegation == {`agent "agt_s" is a service agent of owner "team-ops": it takes no delegations from owner "team-payments"`} with input as _delegation_input({}, _summary("agt_s", "team-ops", "service"))
	count(ext.deny_delegation) == 0 with input as _delegation_input({}, _summary("agt_o", "team-ops", "autonomous"))
}
