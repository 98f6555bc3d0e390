package service

import (
	"errors"
	"fmt"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/store"
)

func invalid(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Invalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unprocessable(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Unprocessable, Code: code, Message: fmt.Sprintf(format, args...)}
}

// storeError turns store sentinels into client errors; others pass through
// as internal faults.
func storeError(err error) error {
	var se *apperr.Error
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, store.ErrNotFound):
		return &apperr.Error{Kind: apperr.NotFound, Code: "agent_not_found", Message: "no agent with that ID", Err: err}
	case errors.Is(err, store.ErrExpired):
		return &apperr.Error{Kind: apperr.Conflict, Code: "approval_expired", Message: "the approval request has expired", Err: err}
	case errors.Is(err, store.ErrRevoked):
		return &apperr.Error{Kind: apperr.Conflict, Code: "agent_revoked", Message: "the agent is revoked; revocation is permanent", Err: err}
	case errors.Is(err, store.ErrLimitReached):
		return &apperr.Error{Kind: apperr.Conflict, Code: "agent_limit_reached", Message: "the owner has reached agents.maxPerUser active agents; revoke one first", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &apperr.Error{Kind: apperr.Conflict, Code: "conflict", Message: "the write conflicts with the current state: " + err.Error(), Err: err}
	}
	return err
}

// notFound is a 404 with a code naming what was not found.
func notFound(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.NotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func conflict(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Conflict, Code: code, Message: fmt.Sprintf(format, args...)}
}
