// Package agents is the agent lifecycle: create, read, list, update,
// rotate, revoke, and resume after a suspension.
package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/policy"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// Store is what the agent lifecycle writes and reads.
type Store interface {
	CreateAgent(ctx context.Context, a domain.Agent, maxActive int) (domain.Agent, error)
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter, p store.Page) ([]domain.Agent, string, error)
	UpdateAgent(ctx context.Context, id string, u store.AgentUpdate) (domain.Agent, error)
	RotateToken(ctx context.Context, id, tokenHash string) (domain.Agent, error)
	RevokeAgent(ctx context.Context, id string) (domain.Agent, error)
	ResumeAgent(ctx context.Context, id string) (domain.Agent, error)
}

// Options are the seeds' agents options.
type Options struct {
	// MaxPerUser caps an owner's active agents; 0 means no cap.
	MaxPerUser int
	// TokenExpiry is the default lifetime of a new agent; 0 means none.
	TokenExpiry time.Duration
	// MaxMetadataBytes caps an agent's metadata as JSON; 0 means
	// DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	// DefaultPermissions apply when a create request has no permissions
	// field; checked by core.CheckPermissions.
	DefaultPermissions []domain.Permission
}

// Agents is safe for concurrent use.
type Agents struct {
	store Store
	rep   *replica.Replica
	// validate puts every create and update to the extensions' deny_agent.
	validate *policy.Validator
	opts     Options
	now      func() time.Time
	log      *slog.Logger
}

// DefaultMaxMetadataBytes is the metadata cap when none is configured.
const DefaultMaxMetadataBytes = 16 << 10

// New returns the agent lifecycle over st, writing through rep, every
// create and update checked by v.
func New(st Store, rep *replica.Replica, v *policy.Validator, opts Options, now func() time.Time, log *slog.Logger) *Agents {
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	return &Agents{store: st, rep: rep, validate: v, opts: opts, now: now, log: log}
}

// checkMetadata bounds an agent's metadata, so that reading agents (one,
// or a list of them) stays small.
func (s *Agents) checkMetadata(m map[string]any) error {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return core.Invalid("invalid_field", "metadata is not a JSON object")
	}
	if len(b) > s.opts.MaxMetadataBytes {
		return core.Unprocessable("metadata_too_large", "metadata is %d bytes of JSON; the limit is %d (agents.maxMetadataBytes)",
			len(b), s.opts.MaxMetadataBytes)
	}
	return nil
}

// Agent types.
var agentTypes = map[string]bool{"autonomous": true, "delegated": true, "service": true}

// CreateAgent validates and stores a new agent, returning its token once.
func (s *Agents) CreateAgent(ctx context.Context, req api.CreateAgentRequest) (api.AgentWithToken, error) {
	if err := core.CheckID("ownerId", req.OwnerID); err != nil {
		return api.AgentWithToken{}, err
	}
	if err := core.CheckName(req.Name); err != nil {
		return api.AgentWithToken{}, err
	}
	if req.Type == "" {
		req.Type = "autonomous"
	}
	if !agentTypes[req.Type] {
		return api.AgentWithToken{}, core.Unprocessable("invalid_type", "type %q is not one of autonomous, delegated, service", req.Type)
	}
	perms := s.opts.DefaultPermissions
	if req.Permissions != nil {
		var err error
		if perms, err = core.CheckPermissions(req.Permissions); err != nil {
			return api.AgentWithToken{}, err
		}
	}
	if err := s.checkMetadata(req.Metadata); err != nil {
		return api.AgentWithToken{}, err
	}
	now := s.now()
	expires := req.ExpiresAt.Std()
	if expires == nil && s.opts.TokenExpiry > 0 {
		t := now.Add(s.opts.TokenExpiry).UTC()
		expires = &t
	}
	if err := core.CheckExpiry(expires, now); err != nil {
		return api.AgentWithToken{}, err
	}
	proposed := domain.Agent{OwnerID: req.OwnerID, Name: req.Name, Type: req.Type,
		Permissions: perms, ExpiresAt: expires, Metadata: req.Metadata, CreatedAt: now}
	if err := s.validate.NewAgent(ctx, proposed); err != nil {
		return api.AgentWithToken{}, s.validate.Audit(ctx, err)
	}
	token, hash := core.NewToken()
	proposed.TokenHash = hash
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) {
		return s.store.CreateAgent(ctx, proposed, s.opts.MaxPerUser)
	})
	if err != nil {
		return api.AgentWithToken{}, err
	}
	s.log.Info("agent created", "agent", a.ID, "owner", a.OwnerID)
	return api.AgentWithToken{Agent: core.APIAgent(a), Token: token}, nil
}

// GetAgent returns one agent.
func (s *Agents) GetAgent(ctx context.Context, id string) (api.Agent, error) {
	a, err := s.store.GetAgent(ctx, id)
	return core.APIAgent(a), core.StoreError(err)
}

// ListAgents returns one page of agents, oldest first, optionally by owner
// and status.
func (s *Agents) ListAgents(ctx context.Context, ownerID, status string, q core.PageQuery) (api.AgentList, error) {
	switch status {
	case "", domain.StatusActive, domain.StatusSuspended, domain.StatusRevoked, domain.StatusExpired:
	default:
		return api.AgentList{}, core.Invalid("invalid_status", "status %q is not one of active, suspended, revoked, expired", status)
	}
	p, err := q.Page("agt_")
	if err != nil {
		return api.AgentList{}, err
	}
	agents, next, err := s.store.ListAgents(ctx, store.AgentFilter{OwnerID: ownerID, Status: status}, p)
	if err != nil {
		return api.AgentList{}, core.StoreError(err)
	}
	return api.AgentList{Agents: core.APIAgents(agents), NextCursor: next}, nil
}

// UpdateAgent changes name, permissions (replaced whole), expiry or metadata.
func (s *Agents) UpdateAgent(ctx context.Context, id string, req api.UpdateAgentRequest) (api.Agent, error) {
	var u store.AgentUpdate
	if req.Name != nil {
		if err := core.CheckName(*req.Name); err != nil {
			return api.Agent{}, err
		}
		u.Name = req.Name
	}
	if req.Permissions != nil {
		perms, err := core.CheckPermissions(*req.Permissions)
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
				return api.Agent{}, core.Invalid("invalid_field", "expiresAt must be an RFC 3339 time or null")
			}
			if err := core.CheckExpiry(&t, s.now()); err != nil {
				return api.Agent{}, err
			}
			u.ExpiresAt = &t
		}
	}
	if req.Metadata != nil {
		if err := s.checkMetadata(*req.Metadata); err != nil {
			return api.Agent{}, err
		}
		u.Metadata = req.Metadata
	}
	if u.Name == nil && u.Permissions == nil && u.ExpiresAt == nil && !u.ClearExpiry && u.Metadata == nil {
		return api.Agent{}, core.Invalid("missing_field", "nothing to update: give name, permissions, expiresAt or metadata")
	}
	u.MaxActive = s.opts.MaxPerUser
	s.validate.OnUpdate(ctx, &u)
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.UpdateAgent(ctx, id, u) })
	return core.APIAgent(a), s.validate.Audit(ctx, err)
}

// RotateAgent issues a new token; the old one is refused from the moment
// this returns. The expiry is unchanged.
func (s *Agents) RotateAgent(ctx context.Context, id string) (api.AgentWithToken, error) {
	token, hash := core.NewToken()
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.RotateToken(ctx, id, hash) })
	if err != nil {
		return api.AgentWithToken{}, err
	}
	s.log.Info("agent token rotated", "agent", a.ID)
	return api.AgentWithToken{Agent: core.APIAgent(a), Token: token}, nil
}

// RevokeAgent revokes permanently; repeating it is harmless.
func (s *Agents) RevokeAgent(ctx context.Context, id string) (api.Agent, error) {
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.RevokeAgent(ctx, id) })
	if err == nil {
		s.log.Info("agent revoked", "agent", a.ID)
	}
	return core.APIAgent(a), err
}

// ResumeAgent lifts a suspension (anomaly.suspendOn): the agent is active
// again from the moment this returns. An agent not suspended is returned
// unchanged; a revoked one is 409 agent_revoked. A suspended agent may be
// updated, rotated and revoked like any other before it is resumed.
func (s *Agents) ResumeAgent(ctx context.Context, id string) (api.Agent, error) {
	a, err := s.rep.WriteAgent(ctx, func() (domain.Agent, error) { return s.store.ResumeAgent(ctx, id) })
	if err == nil {
		s.log.Info("agent resumed", "agent", a.ID, "status", a.Status)
	}
	return core.APIAgent(a), err
}
