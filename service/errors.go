package service

import (
	"errors"
	"fmt"

	"github.com/kavach-dev/kavach/store"
)

// Kind classifies an error for the transport, which maps it to a status.
type Kind int

// Error kinds.
const (
	KindInternal      Kind = iota // a fault of ours
	KindInvalid                   // malformed request or missing field
	KindUnauthorized              // unusable credentials
	KindNotFound                  // unknown ID
	KindConflict                  // the resource's state forbids it
	KindUnprocessable             // well-formed but breaks a rule
	KindUnavailable               // not ready to answer yet
	KindForbidden                 // a valid credential that may not do this
	KindUnsupported               // a body that is not JSON
)

// Error is a client-facing error with a stable code.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(code, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unprocessable(code, format string, args ...any) *Error {
	return &Error{Kind: KindUnprocessable, Code: code, Message: fmt.Sprintf(format, args...)}
}

// storeError turns store sentinels into client errors; others pass through
// as internal faults.
func storeError(err error) error {
	var se *Error
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindNotFound, Code: "agent_not_found", Message: "no agent with that ID", Err: err}
	case errors.Is(err, store.ErrExpired):
		return &Error{Kind: KindConflict, Code: "approval_expired", Message: "the approval request has expired", Err: err}
	case errors.Is(err, store.ErrRevoked):
		return &Error{Kind: KindConflict, Code: "agent_revoked", Message: "the agent is revoked; revocation is permanent", Err: err}
	case errors.Is(err, store.ErrLimitReached):
		return &Error{Kind: KindConflict, Code: "agent_limit_reached", Message: "the owner has reached agents.maxPerUser active agents; revoke one first", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Kind: KindConflict, Code: "conflict", Message: "the write conflicts with the current state: " + err.Error(), Err: err}
	}
	return err
}

// notFound is a 404 with a code naming what was not found.
func notFound(code, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

func conflict(code, format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}
