// Package grants makes the agents MCP OAuth grants act as: one delegated
// agent per (client, user), holding the permissions of the scopes granted.
package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/policy"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// Store is what grant agents read and write.
type Store interface {
	CreateAgent(ctx context.Context, a domain.Agent, maxActive int) (domain.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter, p store.Page) ([]domain.Agent, string, error)
	UpdateAgent(ctx context.Context, id string, u store.AgentUpdate) (domain.Agent, error)
}

// Grants is safe for concurrent use; it implements oauth.Agents.
type Grants struct {
	store Store
	rep   *replica.Replica
	// validate puts the agents grants create and update to the extensions'
	// deny_agent.
	validate *policy.Validator
	// maxPerUser caps an owner's active agents (agents.maxPerUser).
	maxPerUser int
	// grantMu serialises the creation of grant agents.
	grantMu sync.Mutex
	now     func() time.Time
	log     *slog.Logger
}

var _ oauth.Agents = (*Grants)(nil)

// New returns grant agents over st, written through rep and checked by v.
func New(st Store, rep *replica.Replica, v *policy.Validator, maxPerUser int, now func() time.Time, log *slog.Logger) *Grants {
	return &Grants{store: st, rep: rep, validate: v, maxPerUser: maxPerUser, now: now, log: log}
}

// grantClientKey marks a grant's agent, in its metadata, with the OAuth
// client it acts for.
const grantClientKey = "oauthClientId"

// GrantAgent makes (or updates) the delegated agent of one (client, user)
// pair: owned by the user, holding the permissions of every scope the user
// has granted the client, with no expiry of its own (its tokens expire).
// Each token acts only within its own scopes (the policy sees their keys),
// so adding a later consent's permissions gives no older token more, and
// two approvals racing leave the same agent whatever their order. It
// implements oauth.Agents.
func (s *Grants) GrantAgent(ctx context.Context, clientID, clientName, userID string, granted []api.Permission) (string, error) {
	if err := core.CheckID("userId", userID); err != nil {
		return "", err
	}
	perms, err := core.CheckPermissions(granted)
	if err != nil {
		return "", err
	}
	// One agent per pair: approvals for the same pair on this replica wait
	// for each other, so the second finds the first's agent.
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	held, found, err := s.clientAgent(ctx, clientID, userID)
	if err != nil {
		return "", err
	}
	if found {
		merged := mergePermissions(held.Permissions, perms)
		if err := core.CheckPermissionSet(merged); err != nil {
			return "", err
		}
		u := store.AgentUpdate{Permissions: &merged, MaxActive: s.maxPerUser}
		s.validate.OnUpdate(ctx, &u)
		_, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.UpdateAgent(ctx, held.ID, u) })
		if err != nil {
			return "", s.validate.Audit(ctx, core.StoreError(err))
		}
		s.log.Info("oauth grant agent updated", "agent", held.ID, "owner", userID, "client", clientID)
		return held.ID, nil
	}
	name := "MCP client " + clientName
	if clientName == "" {
		name = "MCP client " + clientID
	}
	if len(name) > core.MaxNameLen || core.HasControl(name) {
		name = "MCP client"
	}
	// The agent acts only through OAuth access tokens: its own token is
	// never shown to anyone.
	proposed := domain.Agent{OwnerID: userID, Name: name, Type: "delegated", Permissions: perms,
		Metadata: map[string]any{grantClientKey: clientID}, CreatedAt: s.now()}
	if err := s.validate.NewAgent(ctx, proposed); err != nil {
		return "", s.validate.Audit(ctx, err)
	}
	_, proposed.TokenHash = core.NewToken()
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.CreateAgent(ctx, proposed, s.maxPerUser) })
	if err != nil {
		return "", core.StoreError(err)
	}
	s.log.Info("oauth grant agent created", "agent", a.ID, "owner", userID, "client", clientID)
	return a.ID, nil
}

// clientAgent finds the user's active agent of an OAuth client, reading
// the user's active agents a page at a time.
func (s *Grants) clientAgent(ctx context.Context, clientID, userID string) (domain.Agent, bool, error) {
	p := store.Page{Limit: 1000}
	for {
		agents, next, err := s.store.ListAgents(ctx, store.AgentFilter{OwnerID: userID, Status: domain.StatusActive}, p)
		if err != nil {
			return domain.Agent{}, false, fmt.Errorf("grant agent: %w", err)
		}
		for _, a := range agents {
			if a.Type == "delegated" && a.Metadata[grantClientKey] == clientID {
				return a, true, nil
			}
		}
		if next == "" {
			return domain.Agent{}, false, nil
		}
		p.Cursor = next
	}
}

// mergePermissions adds perms to held: a permission with the same
// resource and actions is replaced (the scope's definition may have
// changed since), others are appended.
func mergePermissions(held, perms []domain.Permission) []domain.Permission {
	out := slices.Clone(held)
	for _, p := range perms {
		k := engine.PermissionKey(p.Resource, p.Actions)
		i := slices.IndexFunc(out, func(h domain.Permission) bool { return engine.PermissionKey(h.Resource, h.Actions) == k })
		if i >= 0 {
			out[i] = p
		} else {
			out = append(out, p)
		}
	}
	return out
}

// CheckScopes validates the permissions each configured scope grants, and
// their union: a user may grant any set of scopes at once, and the grant's
// agent then holds the union (exact repeats merged, as oauth does). Two
// scopes granting the same resource and actions with different
// constraints, or more permissions in all than an agent may hold, would
// make such an approval fail, so they are refused at start.
func CheckScopes(scopes map[string][]api.Permission) error {
	names := slices.Sorted(maps.Keys(scopes))
	type origin struct {
		scope string
		json  string
	}
	byKey := map[string]origin{}
	var union []domain.Permission
	for _, name := range names {
		perms, err := core.CheckPermissions(scopes[name])
		if err != nil {
			return fmt.Errorf("mcp.scopes.%s: %w", name, err)
		}
		for _, p := range perms {
			b, err := json.Marshal(p)
			if err != nil {
				return fmt.Errorf("mcp.scopes.%s: %w", name, err)
			}
			key := engine.PermissionKey(p.Resource, p.Actions)
			prev, seen := byKey[key]
			switch {
			case !seen:
				byKey[key] = origin{scope: name, json: string(b)}
				union = append(union, p)
			case prev.json != string(b):
				return fmt.Errorf("mcp.scopes: %s and %s both grant %v on %q, differently: a user granting both would hold "+
					"two permissions for one resource and set of actions; give them the same permission or merge them", prev.scope, name, p.Actions, p.Resource)
			}
		}
	}
	if len(union) > core.MaxPermissions {
		return fmt.Errorf("mcp.scopes: together they grant %d permissions; an agent may hold at most %d", len(union), core.MaxPermissions)
	}
	return nil
}
