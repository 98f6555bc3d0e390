package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/store"
)

// AccessTokens verifies MCP OAuth access tokens; *oauth.Server does.
type AccessTokens interface {
	Verify(ctx context.Context, raw, resource string, requiredScopes []string) (oauth.Claims, error)
}

// UseAccessTokens lets POST /v1/authorize take MCP OAuth access tokens as
// bearers, deciding as the grant's agent limited to the permissions of the
// token's scopes (scopes: each scope's permissions, as configured). Call it
// before serving.
func (s *Service) UseAccessTokens(v AccessTokens, scopes map[string][]api.Permission) {
	s.tokens = v
	s.scopeKeys = map[string][]string{}
	for name, perms := range scopes {
		for _, p := range perms {
			s.scopeKeys[name] = append(s.scopeKeys[name], engine.PermissionKey(p.Resource, p.Actions))
		}
	}
}

// keysOf lists the permission keys a token's scopes grant: never nil, so
// a token whose scopes grant nothing is limited to nothing.
func (s *Service) keysOf(scopes []string) []string {
	keys := []string{}
	for _, sc := range scopes {
		for _, k := range s.scopeKeys[sc] {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// grantClientKey marks a grant's agent, in its metadata, with the OAuth
// client it acts for.
const grantClientKey = "oauthClientId"

var _ oauth.Agents = (*Service)(nil)

// GrantAgent makes (or updates) the delegated agent of one (client, user)
// pair: owned by the user, holding the permissions of every scope the user
// has granted the client, with no expiry of its own (its tokens expire).
// Each token acts only within its own scopes (the policy sees their keys),
// so adding a later consent's permissions gives no older token more, and
// two approvals racing leave the same agent whatever their order. It
// implements oauth.Agents.
func (s *Service) GrantAgent(ctx context.Context, clientID, clientName, userID string, granted []api.Permission) (string, error) {
	if err := checkID("userId", userID); err != nil {
		return "", err
	}
	perms, err := checkPermissions(granted)
	if err != nil {
		return "", err
	}
	// One agent per pair: approvals for the same pair on this replica wait
	// for each other, so the second finds the first's agent.
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	agents, err := s.store.ListAgents(ctx, store.AgentFilter{OwnerID: userID, Status: domain.StatusActive})
	if err != nil {
		return "", fmt.Errorf("grant agent: %w", err)
	}
	for _, a := range agents {
		if a.Type != "delegated" || a.Metadata[grantClientKey] != clientID {
			continue
		}
		merged := mergePermissions(a.Permissions, perms)
		if err := checkPermissionSet(merged); err != nil {
			return "", err
		}
		_, err := s.write(ctx, func() (domain.Agent, error) {
			return s.store.UpdateAgent(ctx, a.ID, store.AgentUpdate{Permissions: &merged, MaxActive: s.opts.MaxPerUser})
		})
		if err != nil {
			return "", storeError(err)
		}
		s.log.Info("oauth grant agent updated", "agent", a.ID, "owner", userID, "client", clientID)
		return a.ID, nil
	}
	name := "MCP client " + clientName
	if clientName == "" {
		name = "MCP client " + clientID
	}
	if len(name) > maxNameLen || hasControl(name) {
		name = "MCP client"
	}
	// The agent acts only through OAuth access tokens: its own token is
	// never shown to anyone.
	_, hash := newToken()
	a, err := s.write(ctx, func() (domain.Agent, error) {
		return s.store.CreateAgent(ctx, domain.Agent{
			OwnerID: userID, Name: name, Type: "delegated", Permissions: perms,
			Metadata: map[string]any{grantClientKey: clientID}, TokenHash: hash, CreatedAt: s.now(),
		}, s.opts.MaxPerUser)
	})
	if err != nil {
		return "", storeError(err)
	}
	s.log.Info("oauth grant agent created", "agent", a.ID, "owner", userID, "client", clientID)
	return a.ID, nil
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
		perms, err := checkPermissions(scopes[name])
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
	if len(union) > maxPermissions {
		return fmt.Errorf("mcp.scopes: together they grant %d permissions; an agent may hold at most %d", len(union), maxPermissions)
	}
	return nil
}

// isAccessToken tells a JWT from a Kavach agent token (kv_…).
func isAccessToken(bearer string) bool {
	return !strings.HasPrefix(bearer, TokenPrefix) && strings.Count(bearer, ".") == 2
}

// agentOfAccessToken verifies an MCP access token and returns its grant's
// agent and the permission keys its scopes grant. A bad, expired or
// revoked token is unauthorized (401), at once on every replica:
// revocation is checked in the database.
func (s *Service) agentOfAccessToken(ctx context.Context, bearer string) (string, []string, error) {
	if s.tokens == nil {
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "malformed_token",
			Message: "the bearer token is not a Kavach agent token, and the MCP authorization server (mcp.enabled) is off"}
	}
	c, err := s.tokens.Verify(ctx, bearer, "", nil)
	var oe *oauth.Error
	switch {
	case errors.As(err, &oe):
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "invalid_token", Message: oe.Description, Err: err}
	case err != nil:
		return "", nil, fmt.Errorf("verify access token: %w", err)
	case c.AgentID == "":
		return "", nil, &apperr.Error{Kind: apperr.Unauthorized, Code: "invalid_token", Message: "the access token names no agent"}
	}
	return c.AgentID, s.keysOf(c.Scopes), nil
}
