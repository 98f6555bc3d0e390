package engine

import (
	"context"
	"math"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/storage"
)

// The decision cache holds only decisions that provably cannot change
// until the data changes or a known instant passes:
//
//   - invalid_token, agent_not_found, agent_revoked, agent_expired: they
//     depend on the agent's record alone (an expired agent stays expired);
//   - no_permission, when no policy extension is loaded: no permission
//     matches the action and resource, which does not depend on time,
//     counts, IP, arguments or approvals; it holds until the agent expires;
//   - an allow by an own permission without constraints, when no policy
//     extension is loaded (extensions may depend on anything): it holds
//     until the agent expires.
//
// Everything else (constraints, delegation chains, approvals, rate limits)
// is evaluated every time. The key carries the data revision, which every
// write to OPA's store and every policy reload bumps, so a write can never
// be answered from an older entry.

const cacheSize = 65536

type cacheKey struct {
	revision           uint64
	agentID, tokenHash string
	action, resource   string
	// scoped and scopes: an access token's scope limit, part of the input.
	scoped bool
	scopes string
}

type cacheEntry struct {
	d Decision
	// until is the Unix-nanosecond instant the entry stops holding.
	until int64
}

func newDecisionCache() *lru.Cache[cacheKey, cacheEntry] {
	c, _ := lru.New[cacheKey, cacheEntry](cacheSize) // only fails for size <= 0
	return c
}

func (e *Engine) cacheKey(in Input) cacheKey {
	return cacheKey{revision: e.revision.Load(), agentID: in.AgentID, tokenHash: in.TokenHash, action: in.Action, resource: in.Resource,
		scoped: in.ScopeKeys != nil, scopes: strings.Join(in.ScopeKeys, "\x00")}
}

// cacheable returns how long a fresh decision may be served from the
// cache; ok is false when it must not be cached at all.
func (e *Engine) cacheable(ctx context.Context, d Decision, extensions bool) (until int64, ok bool) {
	switch d.Code {
	case CodeInvalidToken, CodeAgentNotFound, CodeAgentRevoked, CodeAgentExpired:
		// Decided before any permission or extension is looked at.
		return math.MaxInt64, true
	case CodeNoPermission:
		if extensions {
			// An extension may deny with any code, this one included.
			return 0, false
		}
		return e.agentExpiry(ctx, d.AgentID)
	case CodeAllowed:
		p := d.Permission
		if extensions || p == nil || p.Source != "own" || len(p.RateLimits) > 0 || p.ApprovalID != "" || !e.plain(ctx, d.AgentID, p.Key) {
			return 0, false
		}
		return e.agentExpiry(ctx, d.AgentID)
	}
	return 0, false
}

func (e *Engine) agentExpiry(ctx context.Context, agentID string) (int64, bool) {
	v, err := storage.ReadOne(ctx, e.data, join(agentsPath, agentID, "expiresAt"))
	if err != nil {
		return 0, false
	}
	s := stringOfNumber(v)
	if s == "" {
		return math.MaxInt64, true // no expiry
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// plain reports whether the agent's own permission with this key has no
// constraints (the allow did not depend on any).
func (e *Engine) plain(ctx context.Context, agentID, key string) bool {
	v, err := storage.ReadOne(ctx, e.data, join(agentsPath, agentID, "permissions"))
	if err != nil {
		return false
	}
	perms, ok := asArray(v)
	if !ok {
		return false
	}
	for _, p := range perms {
		k, constrained, ok := permissionFacts(p)
		if ok && k == key {
			return !constrained
		}
	}
	return false
}
