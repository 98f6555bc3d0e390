package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/store"
)

// The app's side of an authorization: having authenticated the human, it
// reads the pending request, then approves it (for a user, with the
// granted scopes) or denies it, and sends the browser to the returned URL.

// PendingRequest is what the app shows the human for consent.
type PendingRequest struct {
	ClientID    string   `json:"clientId"`
	ClientName  string   `json:"clientName"`
	RedirectURI string   `json:"redirectUri"`
	Scopes      []string `json:"scopes"`
	Resource    string   `json:"resource"`
	Status      string   `json:"status"`
	ExpiresAt   api.Time `json:"expiresAt"`
}

func (s *Server) pending(ctx context.Context, handle string) (store.OAuthRequest, error) {
	r, err := s.st.GetOAuthRequest(ctx, hash(handle))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.now().Before(r.ExpiresAt)) {
		return r, apperr.New(apperr.NotFound, "request_not_found", "no authorization request with that handle, or it has expired")
	}
	if err != nil {
		return r, fmt.Errorf("oauth: request: %w", err)
	}
	return r, nil
}

// Request returns a pending (or decided, not yet expired) request.
func (s *Server) Request(ctx context.Context, handle string) (PendingRequest, error) {
	r, err := s.pending(ctx, handle)
	if err != nil {
		return PendingRequest{}, err
	}
	c, err := s.client(ctx, r.ClientID)
	if err != nil {
		return PendingRequest{}, fmt.Errorf("oauth: request's client: %w", err)
	}
	return PendingRequest{ClientID: c.ID, ClientName: c.Name, RedirectURI: r.RedirectURI, Scopes: r.Scopes,
		Resource: r.Resource, Status: r.Status, ExpiresAt: api.NewTime(r.ExpiresAt)}, nil
}

func decideError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		return apperr.New(apperr.NotFound, "request_not_found", "no authorization request with that handle, or it has expired")
	case errors.Is(err, store.ErrConflict):
		return apperr.New(apperr.Conflict, "request_decided", "the authorization request was already decided")
	}
	return fmt.Errorf("oauth: decide request: %w", err)
}

// Approve grants a pending request to userID with scopes (nil means all
// requested; otherwise a subset of them), makes or updates the (client,
// user) agent, and returns the URL to send the browser to: the client's
// redirect URI with code, state and iss.
func (s *Server) Approve(ctx context.Context, handle, userID string, scopes []string) (string, error) {
	if userID == "" {
		return "", apperr.New(apperr.Invalid, "invalid_user", "userId is required")
	}
	r, err := s.pending(ctx, handle)
	if err != nil {
		return "", err
	}
	if r.Status != store.OAuthPending {
		return "", apperr.New(apperr.Conflict, "request_decided", "the authorization request was already decided")
	}
	if scopes == nil {
		scopes = r.Scopes
	}
	scopes = spaceList(strings.Join(scopes, " "))
	if !subset(scopes, r.Scopes) {
		return "", apperr.New(apperr.Invalid, "invalid_scope", "granted scopes must be among the requested ones %v", r.Scopes)
	}
	c, err := s.client(ctx, r.ClientID)
	if err != nil {
		return "", fmt.Errorf("oauth: request's client: %w", err)
	}
	agentID, err := s.agents.GrantAgent(ctx, c.ID, c.Name, userID, s.permissions(scopes))
	if err != nil {
		return "", fmt.Errorf("oauth: grant agent: %w", err)
	}
	code := randomToken()
	r, err = s.st.ApproveOAuthRequest(ctx, hash(handle), store.OAuthCode{Hash: hash(code), UserID: userID, AgentID: agentID,
		Scopes: scopes, ExpiresAt: s.now().Add(s.cfg.CodeTTL)})
	if err != nil {
		return "", decideError(err)
	}
	return withParams(r.RedirectURI, url.Values{"code": {code}, "state": {r.State}, "iss": {s.cfg.Issuer}}), nil
}

// Deny refuses a pending request and returns the URL to send the browser
// to: the client's redirect URI with error=access_denied, state and iss.
func (s *Server) Deny(ctx context.Context, handle string) (string, error) {
	if _, err := s.pending(ctx, handle); err != nil {
		return "", err
	}
	r, err := s.st.DenyOAuthRequest(ctx, hash(handle))
	if err != nil {
		return "", decideError(err)
	}
	return s.errorRedirect(r.RedirectURI, CodeAccessDenied, "the user denied the request", r.State), nil
}

// permissions is the union of the scopes' permissions, without repeats.
func (s *Server) permissions(scopes []string) []Permission {
	out := []Permission{}
	seen := map[string]bool{}
	for _, sc := range scopes {
		for _, p := range s.cfg.Scopes[sc] {
			key, err := json.Marshal(p)
			if err == nil && seen[string(key)] {
				continue
			}
			seen[string(key)] = true
			out = append(out, p)
		}
	}
	return out
}
