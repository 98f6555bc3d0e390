// Package credentials authenticates callers (API keys, KAVACH_ADMIN_KEY,
// agent tokens, MCP access tokens) and manages API keys.
package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Store is what credentials read and write.
type Store interface {
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	AgentByTokenHash(ctx context.Context, hash string) (domain.Agent, error)
	CreateKey(ctx context.Context, k domain.APIKey) (domain.APIKey, error)
	BootstrapKey(ctx context.Context, k domain.APIKey) (domain.APIKey, bool, error)
	GetKey(ctx context.Context, id string) (domain.APIKey, error)
	KeyByHash(ctx context.Context, hash string) (domain.APIKey, error)
	ListKeys(ctx context.Context, p store.Page) ([]domain.APIKey, string, error)
	EachKey(ctx context.Context, fn func(domain.APIKey) error) error
	RevokeKey(ctx context.Context, id string) (domain.APIKey, error)
}

// Options configure credentials.
type Options struct {
	// AdminKey, if set, is an admin credential accepted as given and never
	// stored (KAVACH_ADMIN_KEY); at least MinAdminKeyLen characters.
	AdminKey string
	// Roles are the roles an API key may hold: those the API policy
	// declares (access.Policy.Roles).
	Roles []string
}

// Credentials is safe for concurrent use.
type Credentials struct {
	store        Store
	opts         Options
	keys         keyCache
	adminKeyHash []byte // SHA-256 of Options.AdminKey; nil if none
	now          func() time.Time
	log          *slog.Logger

	// tokens verifies MCP OAuth access tokens (nil: MCP is off).
	tokens    AccessTokens
	scopeKeys map[string][]string // scope → permission keys
}

// New returns the credentials over st. The admin key is kept only as its
// hash.
func New(st Store, opts Options, now func() time.Time, log *slog.Logger) (*Credentials, error) {
	c := &Credentials{store: st, opts: opts, now: now, log: log}
	if opts.AdminKey != "" {
		if len(opts.AdminKey) < MinAdminKeyLen {
			return nil, fmt.Errorf("KAVACH_ADMIN_KEY must be at least %d characters", MinAdminKeyLen)
		}
		sum := sha256.Sum256([]byte(opts.AdminKey))
		c.adminKeyHash = sum[:]
		c.opts.AdminKey = "" // not kept in memory longer than needed
	}
	return c, nil
}

// LoadKeys replaces the key cache with every key in the store (for the
// replica's full load).
func (s *Credentials) LoadKeys(ctx context.Context) error { return s.keys.loadKeys(ctx, s.store) }

// Put caches one key (for the replica's change feed).
func (s *Credentials) Put(k domain.APIKey) { s.keys.put(k) }

// KeyPrefix marks Kavach API keys (kvk_), as core.TokenPrefix marks agent tokens.
const KeyPrefix = "kvk_"

// keyLen is "kvk_" plus 32 random bytes in unpadded base64url.
const keyLen = len(KeyPrefix) + 43

// MinAdminKeyLen is the shortest KAVACH_ADMIN_KEY accepted.
const MinAdminKeyLen = 32

// Principal is an authenticated caller.
type Principal struct {
	// Actor is what the audit trail records.
	Actor domain.Actor
	// Roles of an API key (admin for KAVACH_ADMIN_KEY); none for agents.
	Roles []string
	// AgentToken is the bearer of an agent principal: a Kavach agent token
	// or an MCP access token.
	AgentToken string
}

// IsAgent reports whether the caller presented an agent's credential.
func (p Principal) IsAgent() bool { return p.Actor.Type == domain.ActorAgent }

// Anonymous is the principal of a request without credential.
var Anonymous = Principal{Actor: domain.Actor{Type: domain.ActorAnonymous}}

// keyCache holds every API key by hash; the change feed keeps it current
// on every replica, and this replica's own writes update it at once.
type keyCache struct {
	mu     sync.RWMutex
	byHash map[string]domain.APIKey
	hashOf map[string]string // id → hash
}

func (c *keyCache) get(hash string) (domain.APIKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.byHash[hash]
	return k, ok
}

func (c *keyCache) put(k domain.APIKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHash == nil {
		c.byHash, c.hashOf = map[string]domain.APIKey{}, map[string]string{}
	}
	c.byHash[k.Hash], c.hashOf[k.ID] = k, k.Hash
}

func (c *keyCache) replace(keys []domain.APIKey) {
	c.mu.Lock()
	c.byHash, c.hashOf = map[string]domain.APIKey{}, map[string]string{}
	c.mu.Unlock()
	for _, k := range keys {
		c.put(k)
	}
}

func (c *keyCache) loadKeys(ctx context.Context, st Store) error {
	var keys []domain.APIKey
	if err := st.EachKey(ctx, func(k domain.APIKey) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return fmt.Errorf("load API keys: %w", err)
	}
	c.replace(keys)
	return nil
}

// newKey returns a fresh API key and the hash that is stored instead.
func newKey() (key, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, core.HashToken(key)
}

func wellFormedKey(s string) bool {
	if len(s) != keyLen || !strings.HasPrefix(s, KeyPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(KeyPrefix):])
	return err == nil && len(b) == 32
}

// Authenticate resolves a bearer credential. An API key is looked up by
// the hash of what was sent, in memory; with fresh it is read again from
// the database, so a key revoked on another replica a moment ago is
// refused here too. Agent credentials (kv_… tokens, MCP access tokens)
// are returned unresolved: a decision resolves them, and every other use
// goes through AgentOf.
func (s *Credentials) Authenticate(ctx context.Context, bearer string, fresh bool) (Principal, error) {
	if s.adminKeyHash != nil {
		sum := sha256.Sum256([]byte(bearer))
		if subtle.ConstantTimeCompare(sum[:], s.adminKeyHash) == 1 {
			return Principal{Actor: domain.Actor{Type: domain.ActorAdminEnv, ID: "KAVACH_ADMIN_KEY", Name: "KAVACH_ADMIN_KEY"},
				Roles: []string{"admin"}}, nil
		}
	}
	switch {
	case strings.HasPrefix(bearer, KeyPrefix):
		return s.authenticateKey(ctx, bearer, fresh)
	case strings.HasPrefix(bearer, core.TokenPrefix):
		if !core.WellFormedToken(bearer) {
			return Principal{}, core.Unauthorized("malformed_credential", "the bearer is not a well-formed Kavach agent token (kv_ followed by 43 base64url characters)")
		}
		return Principal{Actor: domain.Actor{Type: domain.ActorAgent}, AgentToken: bearer}, nil
	case core.IsAccessToken(bearer):
		return Principal{Actor: domain.Actor{Type: domain.ActorAgent}, AgentToken: bearer}, nil
	}
	return Principal{}, core.Unauthorized("malformed_credential", "the bearer is neither a Kavach API key (kvk_…), an agent token (kv_…) nor an MCP access token")
}

func (s *Credentials) authenticateKey(ctx context.Context, bearer string, fresh bool) (Principal, error) {
	if !wellFormedKey(bearer) {
		return Principal{}, core.Unauthorized("malformed_credential", "the bearer is not a well-formed Kavach API key (kvk_ followed by 43 base64url characters)")
	}
	hash := core.HashToken(bearer)
	k, ok := s.keys.get(hash)
	if fresh || !ok {
		// Unknown here may be a key created on another replica a moment ago.
		var err error
		k, err = s.store.KeyByHash(ctx, hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Principal{}, core.Unauthorized("invalid_key", "the API key is not known")
		case err != nil:
			return Principal{}, fmt.Errorf("look up API key: %w", err)
		}
		s.keys.put(k)
	}
	now := s.now()
	switch {
	case k.RevokedAt != nil:
		return Principal{}, core.Unauthorized("key_revoked", "the API key %s was revoked", k.ID)
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return Principal{}, core.Unauthorized("key_expired", "the API key %s expired at %s", k.ID, api.FormatTime(*k.ExpiresAt))
	}
	return Principal{Actor: domain.Actor{Type: domain.ActorKey, ID: k.ID, Name: k.Name}, Roles: k.Roles}, nil
}

// AgentOf resolves an agent principal to its agent's ID: a token must name
// an agent that is active and unexpired.
func (s *Credentials) AgentOf(ctx context.Context, p Principal) (string, error) {
	var a domain.Agent
	var err error
	if core.IsAccessToken(p.AgentToken) {
		var id string
		if id, _, err = s.AgentOfAccessToken(ctx, p.AgentToken); err != nil {
			return "", err
		}
		// A valid token of a grant agent revoked since is no credential.
		a, err = s.store.GetAgent(ctx, id)
	} else {
		a, err = s.store.AgentByTokenHash(ctx, core.HashToken(p.AgentToken))
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", core.Unauthorized("invalid_token", "the agent token is not known")
	case err != nil:
		return "", fmt.Errorf("look up agent token: %w", err)
	case a.Status == domain.StatusRevoked:
		return "", core.Unauthorized("agent_revoked", "the token's agent is revoked")
	case a.Status == domain.StatusExpired:
		return "", core.Unauthorized("agent_expired", "the token's agent has expired")
	}
	return a.ID, nil
}

// CreateKey creates an API key and returns its secret, shown only here.
func (s *Credentials) CreateKey(ctx context.Context, req api.CreateKeyRequest) (api.KeyWithSecret, error) {
	if err := core.CheckName(req.Name); err != nil {
		return api.KeyWithSecret{}, err
	}
	if len(req.Roles) == 0 {
		return api.KeyWithSecret{}, core.Invalid("missing_field", "roles is required: one or more of %s", strings.Join(s.opts.Roles, ", "))
	}
	for i, r := range req.Roles {
		if !slices.Contains(s.opts.Roles, r) {
			return api.KeyWithSecret{}, core.Unprocessable("invalid_role", "role %q is not one of %s", r, strings.Join(s.opts.Roles, ", "))
		}
		if slices.Contains(req.Roles[:i], r) {
			return api.KeyWithSecret{}, core.Unprocessable("invalid_role", "role %q is given twice", r)
		}
	}
	if err := core.CheckExpiry(req.ExpiresAt.Std(), s.now()); err != nil {
		return api.KeyWithSecret{}, err
	}
	secret, hash := newKey()
	k, err := s.store.CreateKey(ctx, domain.APIKey{Name: req.Name, Roles: req.Roles, ExpiresAt: req.ExpiresAt.Std(), Hash: hash})
	if err != nil {
		return api.KeyWithSecret{}, err
	}
	s.keys.put(k)
	s.log.Info("API key created", "key", k.ID, "name", k.Name, "roles", k.Roles)
	return api.KeyWithSecret{APIKey: core.APIKey(k), Key: secret}, nil
}

// BootstrapAdminKey creates an admin key when the database holds none and
// returns its secret; "" when keys exist already.
func (s *Credentials) BootstrapAdminKey(ctx context.Context) (string, domain.APIKey, error) {
	secret, hash := newKey()
	k, created, err := s.store.BootstrapKey(store.WithActor(ctx, domain.Actor{Type: domain.ActorSystem, Name: "bootstrap"}),
		domain.APIKey{Name: "bootstrap-admin", Roles: []string{"admin"}, Hash: hash})
	if err != nil || !created {
		return "", k, err
	}
	s.keys.put(k)
	return secret, k, nil
}

// ListKeys returns one page of API keys, oldest first (never a secret).
func (s *Credentials) ListKeys(ctx context.Context, q core.PageQuery) (api.KeyList, error) {
	p, err := q.Page("key_")
	if err != nil {
		return api.KeyList{}, err
	}
	keys, next, err := s.store.ListKeys(ctx, p)
	if err != nil {
		return api.KeyList{}, err
	}
	return api.KeyList{Keys: core.APIKeys(keys), NextCursor: next}, nil
}

// GetKey returns one API key.
func (s *Credentials) GetKey(ctx context.Context, id string) (api.APIKey, error) {
	k, err := s.store.GetKey(ctx, id)
	return core.APIKey(k), keyError(err)
}

// RevokeKey revokes an API key: this replica refuses it from the moment
// this returns, others at their next request that needs it fresh, and
// on the change feed for decisions.
func (s *Credentials) RevokeKey(ctx context.Context, id string) (api.APIKey, error) {
	k, err := s.store.RevokeKey(ctx, id)
	if err != nil {
		return api.APIKey{}, keyError(err)
	}
	s.keys.put(k)
	s.log.Info("API key revoked", "key", k.ID, "name", k.Name)
	return core.APIKey(k), nil
}

func keyError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apperr.Error{Kind: apperr.NotFound, Code: "key_not_found", Message: "no API key with that ID", Err: err}
	}
	return err
}
