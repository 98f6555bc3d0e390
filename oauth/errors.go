package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an OAuth error response (RFC 6749 §5.2, RFC 7591 §3.2.2,
// RFC 6750 §3.1): a code, a description and the HTTP status to answer
// with.
type Error struct {
	Code        string
	Description string
	Status      int
	// Scope lists the scopes an insufficient_scope error needed.
	Scope string
	// Err is the cause, logged but never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Description, e.Err)
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Err }

func oauthErr(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...), Status: status}
}

// The OAuth error codes used here.
const (
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidClient           = "invalid_client"
	CodeInvalidGrant            = "invalid_grant"
	CodeUnauthorizedClient      = "unauthorized_client"
	CodeUnsupportedGrantType    = "unsupported_grant_type"
	CodeUnsupportedResponseType = "unsupported_response_type"
	CodeInvalidScope            = "invalid_scope"
	CodeInvalidTarget           = "invalid_target"
	CodeAccessDenied            = "access_denied"
	CodeServerError             = "server_error"
	CodeInvalidRedirectURI      = "invalid_redirect_uri"
	CodeInvalidClientMetadata   = "invalid_client_metadata"
	CodeInvalidToken            = "invalid_token"
	CodeInsufficientScope       = "insufficient_scope"
)

func errInvalidRequest(format string, args ...any) *Error {
	return oauthErr(http.StatusBadRequest, CodeInvalidRequest, format, args...)
}

func errInvalidGrant(format string, args ...any) *Error {
	return oauthErr(http.StatusBadRequest, CodeInvalidGrant, format, args...)
}

func errInvalidClient(format string, args ...any) *Error {
	return oauthErr(http.StatusUnauthorized, CodeInvalidClient, format, args...)
}

// asError turns any error into an *Error, internal faults into
// server_error.
func asError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return &Error{Code: CodeServerError, Description: "internal error", Status: http.StatusInternalServerError, Err: err}
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with an OAuth JSON error body, logging internal faults.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	oe := asError(err)
	if oe.Status >= 500 {
		s.log.ErrorContext(r.Context(), "oauth request failed", "path", r.URL.Path, "err", err)
	}
	body := map[string]string{"error": oe.Code}
	if oe.Description != "" {
		body["error_description"] = oe.Description
	}
	writeJSON(w, oe.Status, body)
}
