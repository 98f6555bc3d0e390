package engine

import (
	"encoding/json"
	"math"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision cache holds only the decisions the policy marks as holding
// until the data changes or a known instant passes: the cache field of
// data.kavach.authz.decision (policies/authz/authz.rego says which, and
// why). Everything else is evaluated every time. The key carries the data
// revision, which every write to OPA's store and every policy reload bumps,
// so a write can never be answered from an older entry.

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

// cacheable returns until when a fresh decision may be served from the
// cache, as its cache field says; ok is false when it must not be cached.
func cacheable(d Decision) (until int64, ok bool) {
	return d.cacheUntil, d.cacheable
}

// decodeCache reads a decision's cache field: false, or {"until": t} with t
// a Unix-nanosecond instant or null (no instant: math.MaxInt64). Anything
// else is not cacheable.
func decodeCache(v ast.Value) (until int64, ok bool) {
	obj, isObj := v.(ast.Object)
	if !isObj {
		return 0, false
	}
	t := obj.Get(fieldUntil)
	if t == nil {
		return 0, false
	}
	switch u := t.Value.(type) {
	case ast.Null:
		return math.MaxInt64, true
	case ast.Number:
		n, err := json.Number(u).Int64()
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
