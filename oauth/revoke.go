package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kavach-dev/kavach/store"
)

// Revocation (RFC 7009) and introspection (RFC 7662), both for
// authenticated clients and only about their own tokens.

func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	err := parseForm(w, r)
	var c store.OAuthClient
	if err == nil {
		c, err = s.authenticateClient(r)
	}
	if err == nil {
		err = s.Revoke(r.Context(), c.ID, r.PostForm.Get("token"), r.PostForm.Get("token_type_hint"))
	}
	if err != nil {
		s.writeTokenError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// Revoke revokes a token issued to clientID: a refresh token revokes its
// whole grant, an access token itself. Unknown tokens, and other clients'
// tokens, are ignored (RFC 7009 §2.2).
func (s *Server) Revoke(ctx context.Context, clientID, token, hint string) error {
	if token == "" {
		return errInvalidRequest("token is required")
	}
	switch hint {
	case "", "access_token", "refresh_token":
	default:
		return oauthErr(http.StatusBadRequest, "unsupported_token_type", "token_type_hint %q is not supported", hint)
	}
	_, g, err := s.st.GetOAuthRefreshToken(ctx, hash(token))
	switch {
	case err == nil:
		if g.ClientID != clientID {
			return nil
		}
		if err := s.st.RevokeOAuthGrant(ctx, g.ID); err != nil {
			return fmt.Errorf("oauth: revoke grant: %w", err)
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("oauth: revoke: %w", err)
	}
	c, err := s.accessToken(ctx, token)
	var oe *Error
	if errors.As(err, &oe) || (err == nil && c.ClientID != clientID) {
		return nil // unknown, expired, revoked, forged or another client's: nothing to revoke
	}
	if err != nil {
		return fmt.Errorf("oauth: revoke: %w", err)
	}
	if err := s.st.RevokeOAuthAccessToken(ctx, c.JTI); err != nil {
		return fmt.Errorf("oauth: revoke access token: %w", err)
	}
	return nil
}

// Introspection is the RFC 7662 answer.
type Introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  any    `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	ExpiresAt int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	JTI       string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	// AgentID is the Kavach agent the token acts as.
	AgentID string `json:"kavach_agent,omitempty"`
}

func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	err := parseForm(w, r)
	var c store.OAuthClient
	if err == nil {
		c, err = s.authenticateClient(r)
	}
	var in Introspection
	if err == nil {
		in, err = s.Introspect(r.Context(), c.ID, r.PostForm.Get("token"))
	}
	if err != nil {
		s.writeTokenError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, in)
}

// Introspect describes a token issued to clientID. Anything invalid,
// revoked, expired or another client's is {"active": false}.
func (s *Server) Introspect(ctx context.Context, clientID, token string) (Introspection, error) {
	if token == "" {
		return Introspection{}, errInvalidRequest("token is required")
	}
	rt, g, err := s.st.GetOAuthRefreshToken(ctx, hash(token))
	switch {
	case err == nil:
		if g.ClientID != clientID || rt.RevokedAt != nil || rt.UsedAt != nil || !s.now().Before(rt.ExpiresAt) {
			return Introspection{}, nil
		}
		return Introspection{Active: true, Scope: strings.Join(g.Scopes, " "), ClientID: g.ClientID, Subject: g.UserID,
			Audience: g.Resource, Issuer: s.cfg.Issuer, ExpiresAt: rt.ExpiresAt.Unix(), IssuedAt: rt.CreatedAt.Unix(),
			TokenType: "refresh_token", AgentID: g.AgentID}, nil
	case !errors.Is(err, store.ErrNotFound):
		return Introspection{}, fmt.Errorf("oauth: introspect: %w", err)
	}
	c, err := s.Verify(ctx, token, "", nil)
	var oe *Error
	if errors.As(err, &oe) || errors.Is(err, ErrNoToken) {
		return Introspection{}, nil
	}
	if err != nil {
		return Introspection{}, err
	}
	if c.ClientID != clientID {
		return Introspection{}, nil
	}
	var aud any = c.Audience
	if len(c.Audience) == 1 {
		aud = c.Audience[0]
	}
	return Introspection{Active: true, Scope: strings.Join(c.Scopes, " "), ClientID: c.ClientID, Subject: c.Subject, Audience: aud,
		Issuer: s.cfg.Issuer, ExpiresAt: c.ExpiresAt.Unix(), IssuedAt: c.IssuedAt.Unix(), JTI: c.JTI,
		TokenType: "Bearer", AgentID: c.AgentID}, nil
}
