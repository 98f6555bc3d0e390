package core

import (
	"errors"
	"fmt"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/store"
)

// Invalid is a malformed request or a missing field (400).
func Invalid(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Invalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unprocessable is a well-formed request that breaks a rule (422).
func Unprocessable(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Unprocessable, Code: code, Message: fmt.Sprintf(format, args...)}
}

// StoreError turns store sentinels into client errors; others pass through
// as internal faults.
func StoreError(err error) error {
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

// NotFound is a 404 with a code naming what was not found.
func NotFound(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.NotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Conflict is a request the resource's state forbids (409).
func Conflict(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Conflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unauthorized is a credential that cannot be used (401).
func Unauthorized(code, format string, args ...any) *apperr.Error {
	return &apperr.Error{Kind: apperr.Unauthorized, Code: code, Message: fmt.Sprintf(format, args...)}
}
