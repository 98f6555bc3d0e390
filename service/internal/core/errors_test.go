package core

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/store"
)

// Store sentinels reach the client with these kinds and codes, which
// clients match on.
func TestStoreErrorCodes(t *testing.T) {
	for _, tt := range []struct {
		err  error
		kind apperr.Kind
		code string
	}{
		{store.ErrNotFound, apperr.NotFound, "agent_not_found"},
		{store.ErrExpired, apperr.Conflict, "approval_expired"},
		{store.ErrRevoked, apperr.Conflict, "agent_revoked"},
		{store.ErrLimitReached, apperr.Conflict, "agent_limit_reached"},
		{store.ErrConflict, apperr.Conflict, "conflict"},
	} {
		e, ok := apperr.As(StoreError(fmt.Errorf("wrapped: %w", tt.err)))
		if !ok || e.Kind != tt.kind || e.Code != tt.code || !errors.Is(e, tt.err) {
			t.Errorf("StoreError(%v) = %+v; want kind %d, code %q, wrapping it", tt.err, e, tt.kind, tt.code)
		}
	}
	other := errors.New("disk on fire")
	if got := StoreError(other); got != other { //nolint:errorlint // the very same value must pass through, not a wrapper
		t.Errorf("StoreError(%v) = %v; want it unchanged (an internal fault)", other, got)
	}
}
