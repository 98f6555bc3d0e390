// Package apperr is the one error type the application layer (service,
// oauth's consent API) and the HTTP edge share: a Kind the transport maps
// to a status, a stable machine code and a message for humans. The HTTP
// edges (sidecar.Server.fail for the API, webui for the pages) turn a Kind
// into a status with HTTPStatus; nothing else writes an error status.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error for the transport.
type Kind int

// The kinds of error.
const (
	Internal         Kind = iota // a fault of ours
	Invalid                      // malformed request or missing field
	Unauthorized                 // unusable credentials
	NotFound                     // unknown ID or path
	Conflict                     // the resource's state forbids it
	Unprocessable                // well-formed but breaks a rule
	Unavailable                  // not ready to answer yet
	Forbidden                    // a valid credential that may not do this
	Unsupported                  // a body that is not JSON
	TooLarge                     // a body over the limit
	TooMany                      // too many at once; retry later
	Misdirected                  // a Host this server does not answer for
	MethodNotAllowed             // a known path, another method
)

// Error is a client-facing error with a stable code.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// Err is the cause, for logs; never shown to the client.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind with code and a formatted message.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap is New with a cause kept for the log.
func Wrap(err error, kind Kind, code, format string, args ...any) *Error {
	e := New(kind, code, format, args...)
	e.Err = err
	return e
}

// As returns err's *Error, if it holds one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// statuses maps each kind of error to its HTTP status.
var statuses = map[Kind]int{
	Invalid:          http.StatusBadRequest,
	Unauthorized:     http.StatusUnauthorized,
	NotFound:         http.StatusNotFound,
	Conflict:         http.StatusConflict,
	Unprocessable:    http.StatusUnprocessableEntity,
	Unavailable:      http.StatusServiceUnavailable,
	Forbidden:        http.StatusForbidden,
	Unsupported:      http.StatusUnsupportedMediaType,
	TooLarge:         http.StatusRequestEntityTooLarge,
	TooMany:          http.StatusTooManyRequests,
	Misdirected:      http.StatusMisdirectedRequest,
	MethodNotAllowed: http.StatusMethodNotAllowed,
}

// HTTPStatus is the HTTP status of an error of kind k.
func HTTPStatus(k Kind) int {
	if st, ok := statuses[k]; ok {
		return st
	}
	return http.StatusInternalServerError
}
