package core

import (
	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// The application layer speaks the API's shapes at its edge and the
// domain's inside; these map one to the other.

// APIAgent is an agent as the API shows it (never its token hash).
func APIAgent(a domain.Agent) api.Agent {
	return api.Agent{ID: a.ID, OwnerID: a.OwnerID, Name: a.Name, Type: a.Type, Status: a.Status,
		Permissions: APIPermissions(a.Permissions), Metadata: a.Metadata, ExpiresAt: api.NewTimePtr(a.ExpiresAt),
		CreatedAt: api.NewTime(a.CreatedAt), UpdatedAt: api.NewTime(a.UpdatedAt), RevokedAt: api.NewTimePtr(a.RevokedAt)}
}

// APIAgents maps APIAgent over a list.
func APIAgents(list []domain.Agent) []api.Agent { return mapAll(list, APIAgent) }

// APIPermissions are permissions as the API shows them: constraints as JSON objects.
func APIPermissions(list []domain.Permission) []api.Permission {
	if list == nil {
		return nil
	}
	out := make([]api.Permission, len(list))
	for i, p := range list {
		out[i] = api.Permission{Resource: p.Resource, Actions: p.Actions, Constraints: p.Constraints.Map()}
	}
	return out
}

// APIDelegation is a delegation as the API shows it.
func APIDelegation(d domain.Delegation) api.Delegation {
	grants := make([]api.Grant, len(d.Permissions))
	for i, g := range d.Permissions {
		grants[i] = api.Grant{Resource: g.Resource, Actions: g.Actions, Constraints: g.Constraints.Map(),
			Chain: make([]api.Link, len(g.Chain)), CoveredBy: g.CoveredBy}
		for j, l := range g.Chain {
			grants[i].Chain[j] = api.Link{DelegationID: l.DelegationID, Index: l.Index}
		}
		for _, in := range g.Inherited {
			grants[i].Inherited = append(grants[i].Inherited, api.Inherited{Key: in.Key, Constraints: in.Constraints.Map()})
		}
	}
	return api.Delegation{ID: d.ID, FromAgent: d.FromAgent, ToAgent: d.ToAgent, Permissions: grants,
		Depth: d.Depth, MaxDepth: d.MaxDepth, Status: d.Status, ExpiresAt: api.NewTime(d.ExpiresAt),
		CreatedAt: api.NewTime(d.CreatedAt), RevokedAt: api.NewTimePtr(d.RevokedAt)}
}

// APIDelegations maps APIDelegation over a list.
func APIDelegations(list []domain.Delegation) []api.Delegation { return mapAll(list, APIDelegation) }

// APIApproval is an approval request as the API shows it.
func APIApproval(a domain.Approval) api.Approval {
	return api.Approval{ID: a.ID, AgentID: a.AgentID, OwnerID: a.OwnerID, Action: a.Action, Resource: a.Resource,
		Arguments: a.Arguments, Status: a.Status, ExpiresAt: api.NewTime(a.ExpiresAt), CreatedAt: api.NewTime(a.CreatedAt),
		RespondedAt: api.NewTimePtr(a.RespondedAt), RespondedBy: a.RespondedBy, RespondedByName: a.RespondedByName,
		OnBehalfOf: a.OnBehalfOf, Note: a.Note, UsedAt: api.NewTimePtr(a.UsedAt)}
}

// APIApprovals maps APIApproval over a list.
func APIApprovals(list []domain.Approval) []api.Approval { return mapAll(list, APIApproval) }

// APIAuditEntry is an audit row as the API shows it.
func APIAuditEntry(e domain.AuditEntry) api.AuditEntry {
	return api.AuditEntry{ID: e.ID, Kind: e.Kind, AgentID: e.AgentID, OwnerID: e.OwnerID, Action: e.Action,
		Resource: e.Resource, Arguments: e.Arguments, Result: e.Result, Code: e.Code, Reason: e.Reason,
		IP: e.IP, UserAgent: e.UserAgent, DurationUS: e.DurationUS, ApprovalID: e.ApprovalID,
		Timestamp: api.NewTime(e.Timestamp), Actor: api.Actor(e.Actor), Changes: e.Changes,
		ChainID: e.Chain.ID, ChainSeq: e.Chain.Seq, PrevHash: e.Chain.PrevHash, Hash: e.Chain.Hash}
}

// APIKey is an API key as the API shows it (never its hash).
func APIKey(k domain.APIKey) api.APIKey {
	return api.APIKey{ID: k.ID, Name: k.Name, Roles: k.Roles, Status: k.Status, CreatedBy: k.CreatedBy,
		ExpiresAt: api.NewTimePtr(k.ExpiresAt), CreatedAt: api.NewTime(k.CreatedAt), RevokedAt: api.NewTimePtr(k.RevokedAt)}
}

// APIKeys maps APIKey over a list.
func APIKeys(list []domain.APIKey) []api.APIKey { return mapAll(list, APIKey) }

// mapAll maps every element of list; never nil, so an empty list is [].
func mapAll[T, U any](list []T, f func(T) U) []U {
	out := make([]U, len(list))
	for i, x := range list {
		out[i] = f(x)
	}
	return out
}
