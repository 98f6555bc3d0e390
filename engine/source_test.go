package engine

import (
	"context"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// memSource is a Source over slices, for tests and benchmarks.
type memSource struct {
	agents      []domain.Agent
	delegations []domain.Delegation
	approvals   []domain.Approval
	gen         func(i int) domain.Agent
	n           int
}

func (m memSource) EachAgent(_ context.Context, fn func(domain.Agent) error) error {
	for _, a := range m.agents {
		if err := fn(a); err != nil {
			return err
		}
	}
	for i := range m.n {
		if err := fn(m.gen(i)); err != nil {
			return err
		}
	}
	return nil
}

func (m memSource) EachDelegation(_ context.Context, fn func(domain.Delegation) error) error {
	for _, d := range m.delegations {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func (m memSource) EachApproval(_ context.Context, _ time.Duration, fn func(domain.Approval) error) error {
	for _, a := range m.approvals {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}
