package service

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
	"unicode"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Agent types.
var agentTypes = map[string]bool{"autonomous": true, "delegated": true, "service": true}

// CreateAgent validates and stores a new agent, returning its token once.
func (s *Service) CreateAgent(ctx context.Context, req api.CreateAgentRequest) (api.AgentWithToken, error) {
	if err := checkID("ownerId", req.OwnerID); err != nil {
		return api.AgentWithToken{}, err
	}
	if err := checkName(req.Name); err != nil {
		return api.AgentWithToken{}, err
	}
	if req.Type == "" {
		req.Type = "autonomous"
	}
	if !agentTypes[req.Type] {
		return api.AgentWithToken{}, unprocessable("invalid_type", "type %q is not one of autonomous, delegated, service", req.Type)
	}
	perms := s.defaultPerms
	if req.Permissions != nil {
		var err error
		if perms, err = checkPermissions(req.Permissions); err != nil {
			return api.AgentWithToken{}, err
		}
	}
	now := s.now()
	expires := req.ExpiresAt
	if expires == nil && s.opts.TokenExpiry > 0 {
		t := now.Add(s.opts.TokenExpiry).UTC()
		expires = &t
	}
	if err := checkExpiry(expires, now); err != nil {
		return api.AgentWithToken{}, err
	}
	token, hash := newToken()
	a, err := s.write(ctx, func() (domain.Agent, error) {
		return s.store.CreateAgent(ctx, domain.Agent{
			OwnerID: req.OwnerID, Name: req.Name, Type: req.Type,
			Permissions: perms, ExpiresAt: expires, Metadata: req.Metadata, TokenHash: hash, CreatedAt: now,
		}, s.opts.MaxPerUser)
	})
	if err != nil {
		return api.AgentWithToken{}, err
	}
	s.log.Info("agent created", "agent", a.ID, "owner", a.OwnerID)
	return api.AgentWithToken{Agent: apiAgent(a), Token: token}, nil
}

// GetAgent returns one agent.
func (s *Service) GetAgent(ctx context.Context, id string) (api.Agent, error) {
	a, err := s.store.GetAgent(ctx, id)
	return apiAgent(a), storeError(err)
}

// ListAgents returns agents, optionally by owner and status.
func (s *Service) ListAgents(ctx context.Context, ownerID, status string) ([]api.Agent, error) {
	switch status {
	case "", domain.StatusActive, domain.StatusRevoked, domain.StatusExpired:
	default:
		return nil, invalid("invalid_status", "status %q is not one of active, revoked, expired", status)
	}
	agents, err := s.store.ListAgents(ctx, store.AgentFilter{OwnerID: ownerID, Status: status})
	return apiAgents(agents), storeError(err)
}

// UpdateAgent changes name, permissions (replaced whole), expiry or metadata.
func (s *Service) UpdateAgent(ctx context.Context, id string, req api.UpdateAgentRequest) (api.Agent, error) {
	var u store.AgentUpdate
	if req.Name != nil {
		if err := checkName(*req.Name); err != nil {
			return api.Agent{}, err
		}
		u.Name = req.Name
	}
	if req.Permissions != nil {
		perms, err := checkPermissions(*req.Permissions)
		if err != nil {
			return api.Agent{}, err
		}
		if perms == nil {
			perms = []domain.Permission{}
		}
		u.Permissions = &perms
	}
	if len(req.ExpiresAt) > 0 {
		if bytes.Equal(bytes.TrimSpace(req.ExpiresAt), []byte("null")) {
			u.ClearExpiry = true
		} else {
			var t time.Time
			if err := json.Unmarshal(req.ExpiresAt, &t); err != nil {
				return api.Agent{}, invalid("invalid_field", "expiresAt must be an RFC 3339 time or null")
			}
			if err := checkExpiry(&t, s.now()); err != nil {
				return api.Agent{}, err
			}
			u.ExpiresAt = &t
		}
	}
	if req.Metadata != nil {
		u.Metadata = req.Metadata
	}
	if u == (store.AgentUpdate{}) {
		return api.Agent{}, invalid("missing_field", "nothing to update: give name, permissions, expiresAt or metadata")
	}
	u.MaxActive = s.opts.MaxPerUser
	a, err := s.write(ctx, func() (domain.Agent, error) { return s.store.UpdateAgent(ctx, id, u) })
	return apiAgent(a), err
}

// RotateAgent issues a new token; the old one is refused from the moment
// this returns. The expiry is unchanged.
func (s *Service) RotateAgent(ctx context.Context, id string) (api.AgentWithToken, error) {
	token, hash := newToken()
	a, err := s.write(ctx, func() (domain.Agent, error) { return s.store.RotateToken(ctx, id, hash) })
	if err != nil {
		return api.AgentWithToken{}, err
	}
	s.log.Info("agent token rotated", "agent", a.ID)
	return api.AgentWithToken{Agent: apiAgent(a), Token: token}, nil
}

// RevokeAgent revokes permanently; repeating it is harmless.
func (s *Service) RevokeAgent(ctx context.Context, id string) (api.Agent, error) {
	a, err := s.write(ctx, func() (domain.Agent, error) { return s.store.RevokeAgent(ctx, id) })
	if err == nil {
		s.log.Info("agent revoked", "agent", a.ID)
	}
	return apiAgent(a), err
}

func checkID(field, v string) error {
	if v == "" {
		return invalid("missing_field", "%s is required", field)
	}
	if len(v) > maxIDLen {
		return invalid("invalid_field", "%s is longer than %d bytes", field, maxIDLen)
	}
	if hasControl(v) {
		return invalid("invalid_field", "%s contains a control character", field)
	}
	return nil
}

// hasControl reports control characters (NUL among them: PostgreSQL text
// cannot hold it, and no identifier or resource needs any).
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func checkName(name string) error {
	if name == "" {
		return invalid("missing_field", "name is required")
	}
	if len(name) > maxNameLen {
		return invalid("invalid_field", "name is longer than %d bytes", maxNameLen)
	}
	if hasControl(name) {
		return invalid("invalid_field", "name contains a control character")
	}
	return nil
}

func checkPermissions(perms []api.Permission) ([]domain.Permission, error) {
	if len(perms) > maxPermissions {
		return nil, unprocessable("too_many_permissions", "an agent may hold at most %d permissions", maxPermissions)
	}
	if perms == nil {
		return nil, nil
	}
	out := make([]domain.Permission, len(perms))
	for i, p := range perms {
		var err error
		if out[i], err = validatePermission(p); err != nil {
			return nil, unprocessable("invalid_permission", "permissions[%d]: %v", i, err)
		}
		// Duplicates are reported where they appear, before later
		// permissions are looked at.
		if err := checkPermissionSet(out[:i+1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkPermissionSet checks a set of valid permissions: its size, and one
// permission per resource pattern and set of actions, since its key
// (rate-limit counts, delegation roots) must name one permission.
func checkPermissionSet(perms []domain.Permission) error {
	if len(perms) > maxPermissions {
		return unprocessable("too_many_permissions", "an agent may hold at most %d permissions", maxPermissions)
	}
	seen := map[string]int{}
	for i, p := range perms {
		key := engine.PermissionKey(p.Resource, p.Actions)
		if j, dup := seen[key]; dup {
			return unprocessable("duplicate_permission", "permissions[%d] and permissions[%d] both grant %v on %q; merge their constraints into one", j, i, p.Actions, p.Resource)
		}
		seen[key] = i
	}
	return nil
}

// maxExpiry keeps expiries within what the policy's nanosecond clock
// (int64, until 2262) can compare.
func maxExpiry() time.Time { return time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }

func checkExpiry(t *time.Time, now time.Time) error {
	if t == nil {
		return nil
	}
	if !t.After(now) {
		return unprocessable("invalid_expiry", "expiresAt %s is not in the future", t.Format(time.RFC3339))
	}
	if !t.Before(maxExpiry()) {
		return unprocessable("invalid_expiry", "expiresAt %s is too far away: it must be before %s", t.Format(time.RFC3339), maxExpiry().Format(time.RFC3339))
	}
	return nil
}
