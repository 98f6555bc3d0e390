package replica

import (
	"context"
	"errors"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Lookups is what engine.CachedData reads through on a miss.
type Lookups interface {
	PolicyAgent(ctx context.Context, id string) (domain.Agent, error)
	AgentIDByTokenHash(ctx context.Context, hash string) (string, error)
	GetDelegation(ctx context.Context, id string) (domain.Delegation, error)
	GetApproval(ctx context.Context, id string) (domain.Approval, error)
}

// Lookup adapts the store to engine.Lookup: one entity by key, not found
// as found = false.
func Lookup(st Lookups) engine.Lookup { return lookup{st} }

type lookup struct{ st Lookups }

func found[T any](v T, err error) (T, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		var zero T
		return zero, false, nil
	}
	return v, err == nil, err
}

func (l lookup) Agent(ctx context.Context, id string) (domain.Agent, bool, error) {
	return found(l.st.PolicyAgent(ctx, id))
}

func (l lookup) AgentIDByToken(ctx context.Context, hash string) (string, bool, error) {
	return found(l.st.AgentIDByTokenHash(ctx, hash))
}

func (l lookup) Delegation(ctx context.Context, id string) (domain.Delegation, bool, error) {
	return found(l.st.GetDelegation(ctx, id))
}

func (l lookup) Approval(ctx context.Context, id string) (domain.Approval, bool, error) {
	return found(l.st.GetApproval(ctx, id))
}
